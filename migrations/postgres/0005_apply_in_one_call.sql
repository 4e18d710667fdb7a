-- A change is stored by one function call: one round trip instead of one per statement, so
-- writes, serialised by the advisory lock, follow each other quickly. A change made from an
-- outdated view raises SQLSTATE AR001 and leaves nothing behind.
--
-- The agent document is passed without its revision (`doc_prefix` ends with `"revision":`);
-- the revision is drawn under the lock and appended here.
CREATE FUNCTION registry_put(
    lock_key bigint, agent uuid, owner text, agent_name text, created text, updated text,
    doc_prefix text, expected bigint, change_kind text, endpoint_ids uuid[], seen_ids uuid[],
    seen_at bigint[], idem_owner text, idem_key text, idem_hash text, idem_at bigint,
    actor text, source text, summary text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    rev bigint;
    doc text;
    now_ms bigint;
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

CREATE FUNCTION registry_delete(
    lock_key bigint, agent uuid, expected bigint, change_kind text, actor text, source text, summary text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    rev bigint;
    now_ms bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    rev := nextval('registry_revision');
    now_ms := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    DELETE FROM agents WHERE id = agent AND revision = expected;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent changed concurrently' USING ERRCODE = 'AR001';
    END IF;
    INSERT INTO changes (revision, agent_id, kind, at) VALUES (rev, agent, change_kind, now_ms);
    INSERT INTO audit_events (at, actor, source, action, agent_id, revision, summary)
    VALUES (now_ms, actor, source, change_kind, agent, rev, summary);
    PERFORM pg_notify('agent_registry_changes', rev::text);
    RETURN rev;
END $$;
