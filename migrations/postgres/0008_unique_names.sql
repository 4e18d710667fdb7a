-- Names an agent holds alone (an ACP name; an MCP server's name and version): granted when
-- the agent is registered, released when it is removed. The primary key refuses a second
-- holder across every replica; `registry_put` raises AR001 (a stale write) when a name is
-- taken, so the writer catches up with the change log and decides again.
CREATE TABLE unique_names (
    namespace  text NOT NULL,
    name       text NOT NULL,
    agent_id   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    PRIMARY KEY (namespace, name)
);
CREATE INDEX unique_names_agent_id ON unique_names (agent_id);

DROP FUNCTION registry_put(
    bigint, uuid, text, text, text, text, text, bigint, text, uuid[], uuid[], bigint[], text, text, text, bigint,
    text, text, text
);

CREATE FUNCTION registry_put(
    lock_key bigint, agent uuid, owner text, agent_name text, created text, updated text,
    doc_prefix text, expected bigint, change_kind text, endpoint_ids uuid[], seen_ids uuid[],
    seen_at bigint[], idem_owner text, idem_key text, idem_hash text, idem_at bigint,
    actor text, source text, summary text, claim_spaces text[], claim_names text[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    rev bigint;
    doc text;
    now_ms bigint;
    granted bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    rev := nextval('registry_revision');
    doc := doc_prefix || rev::text || '}';
    now_ms := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    IF idem_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (owner_id, key, request_hash, agent_id, created_at)
        VALUES (idem_owner, idem_key, idem_hash, agent, idem_at) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'idempotency key taken' USING ERRCODE = 'AR001';
        END IF;
    END IF;
    IF expected IS NULL THEN
        INSERT INTO agents (id, owner_id, name, revision, created_at, updated_at, document)
        VALUES (agent, owner, agent_name, rev, created::timestamptz, updated::timestamptz, doc)
        ON CONFLICT (id) DO NOTHING;
    ELSE
        UPDATE agents SET owner_id = owner, name = agent_name, revision = rev,
                          updated_at = updated::timestamptz, document = doc
        WHERE id = agent AND revision = expected;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent changed concurrently' USING ERRCODE = 'AR001';
    END IF;
    IF expected IS NULL AND cardinality(claim_names) > 0 THEN
        INSERT INTO unique_names (namespace, name, agent_id)
        SELECT s, n, agent FROM UNNEST(claim_spaces, claim_names) AS c(s, n)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS granted = ROW_COUNT;
        IF granted < cardinality(claim_names) THEN
            RAISE EXCEPTION 'name held by another agent' USING ERRCODE = 'AR001';
        END IF;
    END IF;
    DELETE FROM endpoint_liveness WHERE agent_id = agent AND NOT (endpoint_id = ANY(endpoint_ids));
    INSERT INTO endpoint_liveness (endpoint_id, agent_id, last_seen_at)
    SELECT id, agent, at FROM UNNEST(seen_ids, seen_at) AS v(id, at)
    ON CONFLICT (endpoint_id)
    DO UPDATE SET last_seen_at = GREATEST(endpoint_liveness.last_seen_at, excluded.last_seen_at);
    INSERT INTO changes (revision, agent_id, kind, at, document) VALUES (rev, agent, change_kind, now_ms, doc);
    INSERT INTO audit_events (at, actor, source, action, agent_id, revision, summary)
    VALUES (now_ms, actor, source, change_kind, agent, rev, summary);
    PERFORM pg_notify('agent_registry_changes', rev::text);
    RETURN rev;
END $$;
