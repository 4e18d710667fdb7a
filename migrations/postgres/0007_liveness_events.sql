-- Liveness events (an endpoint became live again, or expired) are changes too, with their own
-- revisions, so watches and followers see them in order. They name their endpoint, and a key
-- keeps an event several replicas notice from being logged twice.
ALTER TABLE changes ADD COLUMN endpoint_id UUID;
ALTER TABLE changes ADD COLUMN dedupe TEXT;
CREATE UNIQUE INDEX changes_dedupe ON changes (dedupe);

-- Appends a liveness event under the write lock (so revisions commit in order), unless its
-- key is logged already; returns the revision, or NULL for a duplicate.
CREATE FUNCTION registry_event(
    lock_key bigint, agent uuid, endpoint uuid, change_kind text, event_at bigint, doc text, event_dedupe text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    rev bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    PERFORM 1 FROM changes WHERE dedupe = event_dedupe;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    rev := nextval('registry_revision');
    INSERT INTO changes (revision, agent_id, kind, at, document, endpoint_id, dedupe)
    VALUES (rev, agent, change_kind, event_at, doc, endpoint, event_dedupe);
    PERFORM pg_notify('agent_registry_changes', rev::text);
    RETURN rev;
END $$;
