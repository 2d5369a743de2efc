-- Queues with SQS semantics (see queues.go). Times are Unix milliseconds.
CREATE TABLE queues (
    name       TEXT PRIMARY KEY,
    options    TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE queue_messages (
    queue         TEXT NOT NULL REFERENCES queues (name) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    body          TEXT NOT NULL,
    attrs         TEXT NOT NULL,
    sent_at       INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT,
    PRIMARY KEY (queue, id)
) STRICT;
CREATE INDEX queue_messages_visible ON queue_messages (queue, visible_at, sent_at);
CREATE INDEX queue_messages_sent ON queue_messages (queue, sent_at);
CREATE UNIQUE INDEX queue_messages_receipt ON queue_messages (receipt) WHERE receipt IS NOT NULL;
