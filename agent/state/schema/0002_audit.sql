-- the audit log
CREATE TABLE IF NOT EXISTS audit (
    seq BIGINT PRIMARY KEY,
    line TEXT NOT NULL  -- the record exactly as hashed and as a file line would hold it
);
