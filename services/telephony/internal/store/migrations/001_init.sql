-- telephony's mirror of finished calls. Unqualified names land in the
-- telephony schema. The outbox table is libs/consumer/outbox's (see 002).

CREATE TABLE calls (
    member_id       text        NOT NULL,
    call_id         text        NOT NULL,
    -- Codes and types stay strings: CALL_FAILED_CODE has 603-S and OTHER.
    call_type       text        NOT NULL DEFAULT '',
    failed_code     text        NOT NULL DEFAULT '',
    failed_reason   text        NOT NULL DEFAULT '',
    portal_user_id  bigint,
    portal_number   text,
    phone_number    text,
    duration_sec    bigint,
    start_date      text,
    cost            text,
    cost_currency   text,
    crm_entity_type text,
    crm_entity_id   bigint,
    crm_activity_id bigint,
    record_file_id  bigint,
    -- record_status: present, none (expected but never appeared), not_expected.
    record_status   text        NOT NULL,
    record_url      text        NOT NULL DEFAULT '',
    -- fields is the voximplant.statistic.get row as received.
    fields          jsonb       NOT NULL,
    snapshot_hash   text        NOT NULL,
    source_event_id text        NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, call_id)
);
