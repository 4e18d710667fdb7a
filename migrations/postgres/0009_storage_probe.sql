-- Kept in step with migrations/sqlite (same versions and names). SQLite's readiness writes a row
-- here to learn whether a full database has room again; PostgreSQL reports its own disk, so this
-- table stays empty.
CREATE TABLE storage_probe (
    id BIGSERIAL PRIMARY KEY,
    filler BYTEA NOT NULL
);
