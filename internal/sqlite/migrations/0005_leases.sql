-- Leases of the background loops that run on one replica at a time
-- (hermes.Leases).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
