-- Readiness writes and removes one row here, in one transaction, to learn whether the database
-- has room: after a full disk, it reports ready again only once a write of this size fits.
CREATE TABLE storage_probe (
    id INTEGER PRIMARY KEY,
    filler BLOB NOT NULL
);
