-- Dashboard sign-in sessions. The cookie holds a random session id; only its
-- SHA-256 is stored, so a database dump signs nobody in. A session ends at
-- expires_at, on sign-out, or when every session is revoked (without
-- rotating the API token).
CREATE TABLE sessions (
    id_sha256  bytea       PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_expires ON sessions (expires_at);
