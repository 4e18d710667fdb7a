-- API keys: only a hash of each secret is kept. `revision` orders changes (issue, revoke) so
-- every replica reads the ones it has not seen; `prefix` is the visible start of the key.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    owner_id     TEXT NOT NULL,
    scope        TEXT NOT NULL,
    description  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    revision     INTEGER NOT NULL
);
CREATE INDEX api_keys_revision ON api_keys (revision);
