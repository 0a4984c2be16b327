-- the agents sharing the state
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    doing TEXT NOT NULL DEFAULT '',
    stopped_at TEXT
);
