-- deal-sync's mirror of Bitrix24 deals and its own-write registry.
-- Unqualified names land in the deal_sync schema. The transactional outbox
-- table is libs/consumer/outbox's (see 002).

CREATE TABLE deals (
    member_id       text        NOT NULL,
    deal_id         bigint      NOT NULL,
    -- fields is every field as crm.deal.get returned it, UF_CRM_* included.
    fields          jsonb       NOT NULL,
    snapshot_hash   text        NOT NULL,
    deleted         boolean     NOT NULL DEFAULT false,
    title           text,
    stage_id        text,
    category_id     bigint,
    opportunity     text,
    currency_id     text,
    assigned_by_id  bigint,
    date_modify     timestamptz,
    source_event_id text        NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, deal_id)
);

-- own_writes records every write deal-sync makes to a portal, before it is
-- made, so the event it causes is recognised as an echo and skipped.
CREATE TABLE own_writes (
    command_id  text        PRIMARY KEY,
    member_id   text        NOT NULL,
    deal_id     bigint      NOT NULL,
    fields      jsonb       NOT NULL,
    fingerprint text        NOT NULL,
    -- pending: about to be written (or the write's result is unknown);
    -- written: the portal confirmed it; noop: nothing needed writing.
    status      text        NOT NULL,
    origin      text        NOT NULL DEFAULT '',
    written_at  timestamptz NOT NULL DEFAULT now(),
    consumed_at timestamptz
);
CREATE INDEX own_writes_open ON own_writes (member_id, deal_id, written_at) WHERE consumed_at IS NULL;
