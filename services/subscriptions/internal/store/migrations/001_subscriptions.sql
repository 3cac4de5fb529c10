-- Reconciliation watermarks: the newest modification time already turned
-- into events, per portal and entity type.
CREATE TABLE watermarks (
    member_id   text        NOT NULL,
    entity      text        NOT NULL,
    modified_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, entity)
);

-- Offline-queue batches reserved (event.offline.get clear=0) but not yet
-- cleared: re-read by process_id after a crash, so nothing reserved is lost.
CREATE TABLE offline_batches (
    member_id   text        PRIMARY KEY,
    process_id  text        NOT NULL,
    reserved_at timestamptz NOT NULL DEFAULT now()
);

-- Audit of install and uninstall decisions (no secrets).
CREATE TABLE installs (
    id              bigserial   PRIMARY KEY,
    member_id       text        NOT NULL,
    domain          text        NOT NULL DEFAULT '',
    client_endpoint text        NOT NULL DEFAULT '',
    event           text        NOT NULL,
    accepted        boolean     NOT NULL,
    reason          text        NOT NULL DEFAULT '',
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX installs_member_at ON installs (member_id, at DESC);

-- Synthetic probes: event.test sent, ONAPPTEST received.
CREATE TABLE probes (
    probe_id    text        PRIMARY KEY,
    member_id   text        NOT NULL,
    sent_at     timestamptz NOT NULL,
    received_at timestamptz
);
CREATE INDEX probes_member_sent ON probes (member_id, sent_at DESC);

-- Last subscription check per portal.
CREATE TABLE sync_status (
    member_id  text        PRIMARY KEY,
    checked_at timestamptz NOT NULL,
    drift      integer     NOT NULL,
    repaired   integer     NOT NULL,
    error      text        NOT NULL DEFAULT ''
);
