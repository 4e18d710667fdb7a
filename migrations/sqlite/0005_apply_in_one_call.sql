-- PostgreSQL stores a change with one function call (see migrations/postgres); SQLite runs in
-- the process, where a transaction of several statements costs no round trips. Nothing changes
-- here: this keeps both schemas at the same versions.
SELECT 1;
