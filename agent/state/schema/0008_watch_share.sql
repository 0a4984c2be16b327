-- the watch shared across agents: the session each agent is present by, and the confirmations
-- one agent asks of another before a site's emergency ticket
ALTER TABLE agents ADD COLUMN IF NOT EXISTS backend INTEGER;
CREATE TABLE IF NOT EXISTS watch_confirm (
    site TEXT PRIMARY KEY,
    asked_by TEXT NOT NULL,
    confirmer TEXT NOT NULL,
    asked_at TIMESTAMPTZ NOT NULL,
    reason TEXT NOT NULL
);
