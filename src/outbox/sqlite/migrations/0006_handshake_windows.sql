-- Windows the admin opens (chirpd handshake open) during which a source's next handshake may replace the
-- secret it learned; outside one, a handshake for a source that has a secret is refused.
CREATE TABLE handshake_windows (
    source TEXT PRIMARY KEY,
    until  INTEGER NOT NULL              -- Unix ms
);
-- Deliveries in state 'handshake' are answered pings and challenges, kept for deduplication only.
