-- A batch of changes in one call, so that a batch costs one round trip whatever its size. Each
-- element of `changes` carries the arguments of `registry_put_in_batch` (or, with "op": "delete",
-- of `registry_delete_in_batch`); the answer holds each change's revision in order, NULL where
-- the change was stale and left nothing behind.
CREATE FUNCTION registry_apply_batch(lock_key bigint, changes jsonb) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    c jsonb;
    answers bigint[] := '{}';
BEGIN
    FOR c IN SELECT value FROM jsonb_array_elements(changes) LOOP
        IF c->>'op' = 'delete' THEN
            answers := array_append(answers, registry_delete_in_batch(lock_key, (c->>'agent')::uuid,
                (c->>'expected')::bigint, c->>'kind', c->>'actor', c->>'source', c->>'summary'));
        ELSE
            answers := array_append(answers, registry_put_in_batch(lock_key, (c->>'agent')::uuid,
                c->>'owner', c->>'name', c->>'created', c->>'updated', c->>'doc_prefix',
                (c->>'expected')::bigint, c->>'kind',
                ARRAY(SELECT jsonb_array_elements_text(c->'endpoints'))::uuid[],
                ARRAY(SELECT jsonb_array_elements_text(c->'seen_ids'))::uuid[],
                ARRAY(SELECT jsonb_array_elements_text(c->'seen_at'))::bigint[],
                c->>'idem_owner', c->>'idem_key', c->>'idem_hash', (c->>'idem_at')::bigint,
                c->>'actor', c->>'source', c->>'summary',
                ARRAY(SELECT jsonb_array_elements_text(c->'claim_spaces')),
                ARRAY(SELECT jsonb_array_elements_text(c->'claim_names'))));
        END IF;
    END LOOP;
    RETURN answers;
END $$;
