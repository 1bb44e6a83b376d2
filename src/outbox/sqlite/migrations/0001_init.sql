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

-- The outbox: one item per (delivery, route, destination, recipient), driven by the dispatcher. A digest
-- is an item of its own (delivery_id NULL) into which queued items are folded.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,    -- UUIDv7
    delivery_id     TEXT REFERENCES deliveries (id),
    route           INTEGER NOT NULL,
    destination     TEXT NOT NULL,
    recipient       TEXT NOT NULL DEFAULT '',  -- DMs: @username or user id; '' for posts
    kind            TEXT NOT NULL,       -- tweet | dm | mastodon | digest
    text            TEXT NOT NULL,       -- the fitted text, fixed at planning so retries are byte-identical
    length          INTEGER NOT NULL,    -- its weighted length
    state           TEXT NOT NULL,       -- pending | sending | retry | sent | dead | folded
    event_kind      TEXT,                -- the normalized kind, for digests
    project         TEXT,                -- the event's project, for digests
    folded_into     TEXT,                -- the digest item that carried this one
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,    -- Unix ms
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    remote_id       TEXT,                -- X's post id
    last_error      TEXT,
    UNIQUE (delivery_id, route, destination, recipient)
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
