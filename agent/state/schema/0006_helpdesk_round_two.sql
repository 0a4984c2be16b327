-- the helpdesk's round two: parked events, creates whose answer never came, the read-back's mark
CREATE TABLE IF NOT EXISTS helpdesk_reads (
    name TEXT PRIMARY KEY,
    started_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_outbox_waiting ON ticket_outbox (ticket_id, seq) WHERE delivered_at IS NULL;
ALTER TABLE ticket_outbox ADD COLUMN IF NOT EXISTS parked_at TEXT;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS helpdesk_sent_at TEXT;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS helpdesk_absent_since TEXT;
