-- Liveness events (an endpoint became live again, or expired) are changes too, with their own
-- revisions, so watches and followers see them in order. They name their endpoint, and a key
-- keeps an event several replicas notice from being logged twice.
ALTER TABLE changes ADD COLUMN endpoint_id TEXT;
ALTER TABLE changes ADD COLUMN dedupe TEXT;
CREATE UNIQUE INDEX changes_dedupe ON changes (dedupe);
