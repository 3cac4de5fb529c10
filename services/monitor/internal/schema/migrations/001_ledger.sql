-- The delivery ledger. Tables live in the "monitor" schema (search_path is
-- set by postgres.Migrate). Partitions of webhook_events are created and
-- dropped by the monitor at run time (ledger.Store.MaintainPartitions),
-- because their bounds depend on the clock and the retention horizon.

-- webhook_events is the seed's table, extended: one row per accepted raw
-- event. The seed's single "status" column became one row per consumer in
-- deliveries; an event's status is derived from them (see docs/monitor.md).
-- The primary key includes received_at because PostgreSQL requires the
-- partition key in every unique constraint; a redelivered message carries the
-- same envelope, hence the same (id, received_at), so it never makes a
-- second row.
CREATE TABLE webhook_events (
    id              text        NOT NULL, -- the raw event's message id (Nats-Msg-Id)
    portal          text        NOT NULL, -- member_id, the stable tenant key
    domain          text        NOT NULL DEFAULT '',
    event_type      text        NOT NULL, -- e.g. ONCRMDEALUPDATE
    entity_id       text        NOT NULL DEFAULT '',
    source          text        NOT NULL, -- push, offline, reconcile, replay
    replay_of       text        NOT NULL DEFAULT '', -- original id when source = replay
    received_at     timestamptz NOT NULL,
    event_ts        timestamptz,
    trace_id        text        NOT NULL DEFAULT '',
    handler_id      text        NOT NULL DEFAULT '',
    route           text        NOT NULL DEFAULT '',
    client_endpoint text        NOT NULL DEFAULT '',
    content_type    text        NOT NULL DEFAULT '',
    payload         bytea,                -- the redacted raw body
    stream_seq      bigint      NOT NULL DEFAULT 0,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);

-- Rows outside every daily partition (clock skew, events older than the
-- horizon) land here instead of failing the batch.
CREATE TABLE webhook_events_default PARTITION OF webhook_events DEFAULT;

CREATE INDEX webhook_events_received_idx ON webhook_events (received_at, id);
CREATE INDEX webhook_events_portal_idx ON webhook_events (portal, received_at);
CREATE INDEX webhook_events_type_idx ON webhook_events (event_type, received_at);
CREATE INDEX webhook_events_entity_idx ON webhook_events (entity_id, received_at) WHERE entity_id <> '';
CREATE INDEX webhook_events_replay_idx ON webhook_events (replay_of) WHERE replay_of <> '';

-- deliveries: one row per (event, consumer), folded from outcomes and dead
-- letters. No foreign key: an outcome may be recorded before its event.
CREATE TABLE deliveries (
    event_id         text        NOT NULL,
    consumer         text        NOT NULL,
    portal           text        NOT NULL DEFAULT '',
    event_type       text        NOT NULL DEFAULT '',
    entity_id        text        NOT NULL DEFAULT '',
    status           text        NOT NULL, -- pending, done, error, dead, skipped
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text        NOT NULL DEFAULT '',
    error_kind       text        NOT NULL DEFAULT '',
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    duration_ms      double precision NOT NULL DEFAULT 0, -- of the last attempt
    trace_id         text        NOT NULL DEFAULT '',
    dead_reason      text        NOT NULL DEFAULT '',
    dead_at          timestamptz,
    dead_stream_seq  bigint,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, consumer)
);
CREATE INDEX deliveries_updated_idx ON deliveries (updated_at);
CREATE INDEX deliveries_problem_idx ON deliveries (status, updated_at) WHERE status IN ('pending', 'error', 'dead');
CREATE INDEX deliveries_dead_idx ON deliveries (dead_at, consumer) WHERE dead_at IS NOT NULL;

-- last_seen: the newest event per portal, event type and source. Silence and
-- probe alerts and the portal health view read it instead of scanning events.
CREATE TABLE last_seen (
    portal           text        NOT NULL,
    event_type       text        NOT NULL,
    source           text        NOT NULL,
    domain           text        NOT NULL DEFAULT '',
    last_received_at timestamptz NOT NULL,
    last_event_id    text        NOT NULL,
    total            bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (portal, event_type, source)
);

-- outcome_counts: attempts per minute, consumer, portal and kind (done,
-- retry, dead, skipped, dead_letter), for error-rate alerts and stats.
CREATE TABLE outcome_counts (
    bucket     timestamptz NOT NULL,
    consumer   text        NOT NULL,
    portal     text        NOT NULL,
    kind       text        NOT NULL,
    error_kind text        NOT NULL DEFAULT '',
    n          bigint      NOT NULL,
    PRIMARY KEY (bucket, consumer, portal, kind, error_kind)
);

-- replays: every republish an operator asked for.
CREATE TABLE replays (
    id            text        PRIMARY KEY, -- the new message id
    original_id   text        NOT NULL,    -- the first event of the chain
    replayed_from text        NOT NULL,    -- the event republished (may itself be a replay)
    consumer      text        NOT NULL DEFAULT '', -- set when a consumer's dead letter was replayed
    requested_at  timestamptz NOT NULL,
    stream_seq    bigint      NOT NULL DEFAULT 0
);
CREATE INDEX replays_original_idx ON replays (original_id);

-- alerts: the persisted state of every alert instance (rule + target).
CREATE TABLE alerts (
    key         text        PRIMARY KEY, -- rule/target
    rule        text        NOT NULL,
    kind        text        NOT NULL,
    target      text        NOT NULL,
    state       text        NOT NULL, -- firing, resolved
    message     text        NOT NULL DEFAULT '',
    value       double precision NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL,
    resolved_at timestamptz,
    updated_at  timestamptz NOT NULL,
    notified    jsonb       NOT NULL DEFAULT '{}'::jsonb -- sink name -> state last delivered
);
CREATE INDEX alerts_state_idx ON alerts (state, updated_at);
