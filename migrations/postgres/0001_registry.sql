-- Agents are stored as one JSON document each (text, so protocol metadata keeps its exact form);
-- discovery is answered from each replica's in-memory index, so only the lookups the store
-- itself makes are indexed here.
CREATE TABLE agents (
    id          UUID PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    name        TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    document    TEXT NOT NULL
);
CREATE INDEX agents_owner_id ON agents (owner_id);

-- When each endpoint was last seen, written in batches off the request path.
CREATE TABLE endpoint_liveness (
    endpoint_id   UUID PRIMARY KEY,
    agent_id      UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    last_seen_at  BIGINT NOT NULL
);
CREATE INDEX endpoint_liveness_agent_id ON endpoint_liveness (agent_id);

-- The change log: one row per change, numbered by the registry-wide revision. Writers take a
-- transaction-level advisory lock, so revisions commit in order and a reader following the
-- log by revision never skips one that commits late.
CREATE SEQUENCE registry_revision;
CREATE TABLE changes (
    revision  BIGINT PRIMARY KEY,
    agent_id  UUID NOT NULL,
    kind      TEXT NOT NULL,
    at        BIGINT NOT NULL
);

CREATE TABLE idempotency_keys (
    owner_id      TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    agent_id      UUID NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (owner_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
