-- tasks' mirror of Bitrix24 tasks with their checklists, and its outbox.
-- Unqualified names land in the tasks schema.

CREATE TABLE tasks (
    member_id       text        NOT NULL,
    task_id         bigint      NOT NULL,
    -- fields is the tasks.task.get object (camelCase, as sent).
    fields          jsonb       NOT NULL,
    -- checklist is task.checklistitem.getlist's rows (events never say
    -- when a checklist changes, so it is fetched with every task).
    checklist       jsonb       NOT NULL DEFAULT '[]',
    snapshot_hash   text        NOT NULL,
    deleted         boolean     NOT NULL DEFAULT false,
    title           text,
    status          text,
    responsible_id  bigint,
    deadline        text,
    source_event_id text        NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, task_id)
);

CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    msg_id       text NOT NULL,
    subject      text NOT NULL,
    data         bytea NOT NULL,
    header       jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
