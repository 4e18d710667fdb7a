-- API keys: only a hash of each secret is kept. `revision` orders changes (issue, revoke) so
-- every replica reads the ones it has not seen; `prefix` is the visible start of the key.
CREATE SEQUENCE api_key_revision;
CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    owner_id     TEXT NOT NULL,
    scope        TEXT NOT NULL,
    description  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    revision     BIGINT NOT NULL
);
CREATE INDEX api_keys_revision ON api_keys (revision);
