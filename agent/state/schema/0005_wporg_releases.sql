-- wordpress.org's answers, one fetch per slug per round for the fleet
CREATE TABLE IF NOT EXISTS wporg_releases (
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    fetched_at DOUBLE PRECISION NOT NULL,
    data TEXT,
    PRIMARY KEY (kind, slug)
);
