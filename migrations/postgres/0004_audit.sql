-- The audit trail: who changed what, when and from where. Append-only: rows are inserted with
-- the change they describe and removed only by retention.
CREATE TABLE audit_events (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    source     TEXT,
    action     TEXT NOT NULL,
    agent_id   UUID,
    key_id     UUID,
    revision   BIGINT,
    summary    TEXT NOT NULL
);
CREATE INDEX audit_events_agent_id ON audit_events (agent_id, id);
CREATE INDEX audit_events_at ON audit_events (at);
