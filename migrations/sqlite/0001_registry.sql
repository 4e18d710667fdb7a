-- Agents are stored as one JSON document each (lossless: protocol metadata is kept verbatim);
-- discovery is answered from the in-memory index, so only the lookups the store itself makes
-- are indexed here.
CREATE TABLE agents (
    id          TEXT PRIMARY KEY NOT NULL,
    owner_id    TEXT NOT NULL,
    name        TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    document    TEXT NOT NULL
);
CREATE INDEX agents_owner_id ON agents (owner_id);

-- When each endpoint was last seen, written in batches off the request path, so a restart
-- never revives an endpoint that was already dead.
CREATE TABLE endpoint_liveness (
    endpoint_id   TEXT PRIMARY KEY NOT NULL,
    agent_id      TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    last_seen_at  INTEGER NOT NULL
);
CREATE INDEX endpoint_liveness_agent_id ON endpoint_liveness (agent_id);

-- The change log: one row per change, numbered by the registry-wide revision.
CREATE TABLE changes (
    revision  INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id  TEXT NOT NULL,
    kind      TEXT NOT NULL,
    at        INTEGER NOT NULL
);

CREATE TABLE idempotency_keys (
    owner_id      TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (owner_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
