-- each https site's TLS certificate, as the watch's connection last saw it
CREATE TABLE IF NOT EXISTS watch_certs (
    site TEXT PRIMARY KEY,
    expires TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
