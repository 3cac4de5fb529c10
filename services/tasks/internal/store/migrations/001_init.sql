-- tasks' mirror of Bitrix24 tasks with their checklists. Unqualified names
-- land in the tasks schema. The outbox table is libs/consumer/outbox's (see 002).

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
