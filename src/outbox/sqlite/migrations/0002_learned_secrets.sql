-- Secrets a source learns at a handshake: Asana's X-Hook-Secret, which signs its later events.
-- The database is private to the service (StateDirectoryMode=0700, UMask=0077).
CREATE TABLE learned_secrets (
    source     TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    learned_at INTEGER NOT NULL          -- Unix ms
)
