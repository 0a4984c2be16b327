-- the repositories' tables
CREATE TABLE IF NOT EXISTS journal (
    site TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    backup_id TEXT,
    step TEXT,
    phase TEXT
);

CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    response_due TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    occurrences INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL,
    closed_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS tickets_one_open ON tickets (dedup_key) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS ticket_outbox (
    seq INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivered_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE TABLE IF NOT EXISTS client_tickets (
    helpdesk_id TEXT PRIMARY KEY,
    site TEXT,
    subject TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    response_due TEXT,
    first_response_at TEXT,
    status TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS watch (
    site TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    down_since TEXT,
    reason TEXT,
    ticket_id TEXT,
    last_check TEXT
);
CREATE TABLE IF NOT EXISTS watch_days (
    site TEXT NOT NULL,
    day TEXT NOT NULL,
    checks INTEGER NOT NULL DEFAULT 0,
    down INTEGER NOT NULL DEFAULT 0,
    answer_ms INTEGER NOT NULL DEFAULT 0,
    answered INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, day)
);
CREATE TABLE IF NOT EXISTS watch_tick (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL,
    seconds DOUBLE PRECISION NOT NULL,
    sites INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_site ON snapshots (site, id);
CREATE TABLE IF NOT EXISTS snapshots_latest (  -- each site's last good snapshot: a look costs the sites, not the history
    site TEXT PRIMARY KEY,
    id INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS checkups (
    site TEXT PRIMARY KEY,
    last_due TEXT,
    next_due TEXT
);

CREATE TABLE IF NOT EXISTS major_runs (
    site TEXT NOT NULL,
    day TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS failed_releases (
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    failed_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (site, kind, name, version)
);

CREATE TABLE IF NOT EXISTS jobs (
    job TEXT PRIMARY KEY,
    last_run TEXT NOT NULL,
    status TEXT NOT NULL,
    duration DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS site_status (
    site TEXT PRIMARY KEY,
    last_update TEXT,
    status TEXT,
    error TEXT,
    last_success TEXT
);

CREATE TABLE IF NOT EXISTS leases (
    site TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    taken_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS vulnerabilities (
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (id, kind, slug)
);
CREATE INDEX IF NOT EXISTS vulnerabilities_software ON vulnerabilities (kind, slug);
CREATE TABLE IF NOT EXISTS security_decisions (
    site TEXT NOT NULL,
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    action TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT '',
    slug TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (site, id, version, action)
);
CREATE TABLE IF NOT EXISTS vulnerability_feed (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    data TEXT NOT NULL
);
ALTER TABLE journal ADD COLUMN IF NOT EXISTS kind TEXT NOT NULL DEFAULT 'update';
ALTER TABLE journal ADD COLUMN IF NOT EXISTS baseline TEXT;
ALTER TABLE ticket_outbox ADD COLUMN IF NOT EXISTS claimed_at TEXT;
ALTER TABLE ticket_outbox ADD COLUMN IF NOT EXISTS priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ticket_outbox ADD COLUMN IF NOT EXISTS queued_at TEXT;
ALTER TABLE ticket_outbox ADD COLUMN IF NOT EXISTS fallback_at TEXT;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS helpdesk_id TEXT;
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS first_response_at TEXT;
ALTER TABLE watch ADD COLUMN IF NOT EXISTS ups INTEGER NOT NULL DEFAULT 0;
