-- The quota an Admin gave a key: how many agents, and how many document bytes, its owner may
-- keep registered. Both NULL: the registry's default quota.
ALTER TABLE api_keys ADD COLUMN max_agents BIGINT;
ALTER TABLE api_keys ADD COLUMN max_document_bytes BIGINT;
