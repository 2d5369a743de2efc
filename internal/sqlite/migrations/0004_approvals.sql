-- Plan approvals (SPEC §7). The whole approval is JSON in data (without
-- its token hash, which has a column of its own); the other columns are
-- keys and indexes. Only the SHA-256 of a token is stored. Approvals go
-- with their thread.
CREATE TABLE approvals (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    thread_id  TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    data       TEXT NOT NULL
) STRICT;
CREATE INDEX approvals_thread ON approvals (thread_id, created_at, id);
