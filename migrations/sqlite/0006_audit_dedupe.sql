-- An event several replicas notice (an endpoint's lease ending) is recorded once: they insert it
-- with the same key, and the unique index keeps the first.
ALTER TABLE audit_events ADD COLUMN dedupe TEXT;
CREATE UNIQUE INDEX audit_events_dedupe ON audit_events (dedupe);
