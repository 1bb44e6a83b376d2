-- Deliveries: every verified webhook, stored before the sender gets its 2xx.
CREATE TABLE deliveries (
    id          TEXT PRIMARY KEY,        -- UUIDv7, time-ordered
    source      TEXT NOT NULL,           -- the [sources.ID] it came in on
    dedupe_key  TEXT NOT NULL,           -- the sender's delivery id, or sha256:<body hash> without one
    body_sha256 TEXT,                    -- set where the delivery id is not signed, so a replayed body is caught
    event       TEXT,                    -- the event name from the headers, e.g. GitHub's X-GitHub-Event
    body        BLOB NOT NULL,           -- the raw verified body
    received_at INTEGER NOT NULL,        -- Unix ms
    state       TEXT NOT NULL,           -- received | planned | failed
    native      TEXT,                    -- set by planning: the provider's event name
    kind        TEXT,                    -- set by planning: the normalized kind, if any
    error       TEXT,                    -- set by planning: template errors
    UNIQUE (source, dedupe_key)
);
CREATE UNIQUE INDEX deliveries_body ON deliveries (source, body_sha256) WHERE body_sha256 IS NOT NULL;
CREATE INDEX deliveries_received ON deliveries (state) WHERE state = 'received';

-- The outbox: one item per (delivery, route, destination), driven by the dispatcher.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,    -- UUIDv7
    delivery_id     TEXT NOT NULL REFERENCES deliveries (id),
    route           INTEGER NOT NULL,
    destination     TEXT NOT NULL,
    kind            TEXT NOT NULL,       -- tweet
    text            TEXT NOT NULL,       -- the fitted text, fixed at planning so retries are byte-identical
    length          INTEGER NOT NULL,    -- its weighted length
    state           TEXT NOT NULL,       -- pending | sending | retry | sent | dead
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,    -- Unix ms
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    remote_id       TEXT,                -- X's post id
    last_error      TEXT,
    UNIQUE (delivery_id, route, destination)
);
CREATE INDEX outbox_due ON outbox (destination, state, next_attempt_at);

-- One row per request made to X, so the admin's quota windows survive restarts.
CREATE TABLE send_ledger (
    destination TEXT NOT NULL,
    at          INTEGER NOT NULL         -- Unix ms
);
CREATE INDEX send_ledger_at ON send_ledger (destination, at);

-- Persisted holds: after a 429 or a spent window, nothing is sent before `until`.
CREATE TABLE destination_blocks (
    destination TEXT PRIMARY KEY,
    until       INTEGER NOT NULL,        -- Unix ms
    reason      TEXT NOT NULL
)
