-- The outbox table of one service schema, owned by libs/consumer/outbox and
-- recorded in <schema>.outbox_schema_version. Unqualified names land in the
-- service's schema (search_path).

-- A handed-over table (see below) still owns the index name.
DO $$
BEGIN
    IF to_regclass('outbox_handover') IS NOT NULL THEN
        DROP INDEX IF EXISTS outbox_unpublished;
    END IF;
END
$$;

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

-- A service that created its own outbox table before the library owned it
-- hands it over by renaming it to outbox_handover in one of its own
-- migrations (which run first). Its rows move here in their order,
-- published or not, so nothing waiting to be published is lost and
-- de-duplication keeps working (msg_id is unchanged).
DO $$
BEGIN
    IF to_regclass('outbox_handover') IS NOT NULL THEN
        INSERT INTO outbox (msg_id, subject, data, header, created_at, published_at)
            SELECT msg_id, subject, data, header, created_at, published_at
            FROM outbox_handover ORDER BY seq;
        DROP TABLE outbox_handover;
    END IF;
END
$$;
