-- Directory: clients, projects, users. Each row keeps the whole object as
-- JSON in data; the other columns are keys and indexes.
CREATE TABLE clients (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL
) STRICT;

CREATE TABLE projects (
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (client_id, id)
) STRICT;

-- One row per inbound address of a project; the primary key makes an
-- address belong to at most one project.
CREATE TABLE project_addresses (
    kind       TEXT NOT NULL,
    address    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    PRIMARY KEY (kind, address),
    FOREIGN KEY (client_id, project_id) REFERENCES projects (client_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX project_addresses_project ON project_addresses (client_id, project_id);

CREATE TABLE users (
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (client_id, id)
) STRICT;

-- One row per identity of a user, unique within a client.
CREATE TABLE user_identities (
    client_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    identity   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    PRIMARY KEY (client_id, kind, identity),
    FOREIGN KEY (client_id, user_id) REFERENCES users (client_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX user_identities_user ON user_identities (client_id, user_id);

CREATE TABLE threads (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    data       TEXT NOT NULL
) STRICT;

-- Times are Unix milliseconds.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    thread_id  TEXT NOT NULL REFERENCES threads (id),
    client_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    data       TEXT NOT NULL
) STRICT;
-- A thread has at most one live session.
CREATE UNIQUE INDEX sessions_live_thread ON sessions (thread_id) WHERE status <> 'expired';
CREATE INDEX sessions_client ON sessions (client_id, created_at, id);
CREATE INDEX sessions_lease ON sessions (expires_at) WHERE status <> 'expired';
CREATE INDEX sessions_status ON sessions (status);

CREATE TABLE history (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    id         TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (session_id, id)
) STRICT;
CREATE INDEX history_order ON history (session_id, created_at, id);
