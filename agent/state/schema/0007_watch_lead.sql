-- the watch's lead: a lease timed by the database's clock
CREATE TABLE IF NOT EXISTS watch_lead (
    name TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    backend INTEGER NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
