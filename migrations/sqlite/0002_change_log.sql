-- The change log keeps each changed agent's document (NULL once the agent is gone), so replicas
-- and watches replay changes from the log alone; `at` lets old entries be pruned.
ALTER TABLE changes ADD COLUMN document TEXT;
CREATE INDEX changes_at ON changes (at);
