-- Events __NAME__ has handled; the primary key makes a redelivery a no-op.
CREATE TABLE events (
    member_id   text        NOT NULL,
    event_id    text        NOT NULL,
    event       text        NOT NULL,
    entity_id   text        NOT NULL DEFAULT '',
    domain      text        NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, event_id)
);
