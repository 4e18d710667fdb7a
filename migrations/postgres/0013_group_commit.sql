-- Group commit: the changes decided while the previous batch was stored are stored in one
-- transaction with one commit. A change made from an outdated view must fail alone, so in a
-- batch each runs in a subtransaction of its own: these answer NULL where `registry_put` and
-- `registry_delete` raise AR001, and the batch goes on.
CREATE FUNCTION registry_put_in_batch(
    lock_key bigint, agent uuid, owner text, agent_name text, created text, updated text,
    doc_prefix text, expected bigint, change_kind text, endpoint_ids uuid[], seen_ids uuid[],
    seen_at bigint[], idem_owner text, idem_key text, idem_hash text, idem_at bigint,
    actor text, source text, summary text, claim_spaces text[], claim_names text[]
) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN registry_put(lock_key, agent, owner, agent_name, created, updated, doc_prefix, expected,
        change_kind, endpoint_ids, seen_ids, seen_at, idem_owner, idem_key, idem_hash, idem_at,
        actor, source, summary, claim_spaces, claim_names);
EXCEPTION WHEN SQLSTATE 'AR001' THEN
    RETURN NULL;
END $$;

CREATE FUNCTION registry_delete_in_batch(
    lock_key bigint, agent uuid, expected bigint, change_kind text, actor text, source text, summary text
) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN registry_delete(lock_key, agent, expected, change_kind, actor, source, summary);
EXCEPTION WHEN SQLSTATE 'AR001' THEN
    RETURN NULL;
END $$;
