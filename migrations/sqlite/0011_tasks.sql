-- Tasks sent through the gateway and their execution logs. A task's mutable columns change
-- only with an event appended in the same transaction; `last_seq` numbers its events.
CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    owner_id         TEXT NOT NULL,
    actor            TEXT NOT NULL,
    capability       TEXT,
    request          TEXT NOT NULL,
    state            TEXT NOT NULL,
    agent_id         TEXT,
    endpoint_id      TEXT,
    protocol         TEXT,
    output           TEXT,
    error_code       TEXT,
    error_detail     TEXT,
    idempotency_key  TEXT,
    request_hash     TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    deadline_at      INTEGER NOT NULL,
    finished_at      INTEGER,
    last_seq         INTEGER NOT NULL
);
CREATE UNIQUE INDEX tasks_idempotency ON tasks (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_owner_created ON tasks (owner_id, created_at, id);
CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_in_flight ON tasks (deadline_at) WHERE state IN ('submitted', 'working');
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE task_events (
    task_id  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    data     TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);
