-- Threads: conversation tokens, references (email Message-IDs, chat
-- thread keys) and recency for "the user's latest thread".
ALTER TABLE threads ADD COLUMN token TEXT;
ALTER TABLE threads ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX threads_token ON threads (token) WHERE token IS NOT NULL;
CREATE INDEX threads_latest ON threads (client_id, project_id, user_id, updated_at);

CREATE TABLE thread_refs (
    ref       TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE
) STRICT;
CREATE INDEX thread_refs_thread ON thread_refs (thread_id);

-- Channel messages seen: claims while routing, then done.
CREATE TABLE intake_messages (
    channel      TEXT NOT NULL,
    id           TEXT NOT NULL,
    done         INTEGER NOT NULL DEFAULT 0,
    lease_until  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (channel, id)
) STRICT;

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    data            TEXT NOT NULL,
    raw             BLOB
) STRICT;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_list ON outbox (created_at, id);

CREATE TABLE containers (
    id      TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data    TEXT NOT NULL
) STRICT;
