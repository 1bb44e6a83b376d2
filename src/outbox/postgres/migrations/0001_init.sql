-- The PostgreSQL schema: the SQLite schema after its migration 0007, plus what a fleet needs (leases,
-- planning claims, the instances' heartbeats). Times are Unix milliseconds in BIGINT, as on SQLite, except
-- the leases', which use the database's clock so that the instances' clocks never decide who leads.

-- Deliveries: every verified webhook, stored before the sender gets its 2xx.
CREATE TABLE deliveries (
    id            TEXT PRIMARY KEY,      -- UUIDv7, time-ordered
    source        TEXT NOT NULL,         -- the [sources.ID] it came in on
    dedupe_key    TEXT NOT NULL,         -- the sender's delivery id, or sha256:<body hash> without one
    body_sha256   TEXT,                  -- set where the delivery id is not signed, so a replayed body is caught
    event         TEXT,                  -- the event name from the headers
    received_at   BIGINT NOT NULL,
    state         TEXT NOT NULL,         -- received | planned | failed | dead | handshake
    native        TEXT,
    kind          TEXT,
    error         TEXT,
    planner       TEXT,                  -- the instance planning it, while it plans
    planner_until BIGINT,                -- when that claim lapses (database clock, Unix ms)
    UNIQUE (source, dedupe_key)
);
CREATE UNIQUE INDEX deliveries_body ON deliveries (source, body_sha256) WHERE body_sha256 IS NOT NULL;
CREATE INDEX deliveries_received ON deliveries (id) WHERE state = 'received';
CREATE INDEX deliveries_received_at ON deliveries (received_at);

CREATE TABLE delivery_bodies (
    delivery_id TEXT PRIMARY KEY REFERENCES deliveries (id),
    received_at BIGINT NOT NULL,
    body        BYTEA NOT NULL
);
CREATE INDEX delivery_bodies_received_at ON delivery_bodies (received_at);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    delivery_id     TEXT REFERENCES deliveries (id),
    route           BIGINT NOT NULL,
    destination     TEXT NOT NULL,
    recipient       TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL,
    text            TEXT NOT NULL,
    length          BIGINT NOT NULL,
    state           TEXT NOT NULL,       -- pending | sending | retry | sent | dead | folded
    event_kind      TEXT,
    project         TEXT,
    subject         TEXT,
    folded_into     TEXT,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    sent_at         BIGINT,
    remote_id       TEXT,
    last_error      TEXT,
    UNIQUE (delivery_id, route, destination, recipient)
);
CREATE INDEX outbox_due ON outbox (destination, state, next_attempt_at);
CREATE INDEX outbox_subject ON outbox (destination, subject) WHERE subject IS NOT NULL;
CREATE INDEX outbox_finished ON outbox (updated_at) WHERE state IN ('sent', 'dead', 'folded');
CREATE INDEX outbox_created ON outbox (created_at);

CREATE TABLE send_ledger (
    destination TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX send_ledger_at ON send_ledger (destination, at);
CREATE INDEX send_ledger_at_only ON send_ledger (at);

CREATE TABLE destination_blocks (
    destination TEXT PRIMARY KEY,
    until       BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    cause       TEXT NOT NULL
);

CREATE TABLE learned_secrets (
    source     TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    learned_at BIGINT NOT NULL
);

CREATE TABLE handshake_windows (
    source TEXT PRIMARY KEY,
    until  BIGINT NOT NULL
);

CREATE TABLE spend (
    destination   TEXT NOT NULL,
    at            BIGINT NOT NULL,
    amount_micros BIGINT NOT NULL
);
CREATE INDEX spend_at ON spend (destination, at);
CREATE INDEX spend_at_only ON spend (at);

CREATE TABLE user_ids (
    username    TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    resolved_at BIGINT NOT NULL
);

CREATE TABLE oauth_tokens (
    destination   TEXT PRIMARY KEY,
    access_token  TEXT NOT NULL,
    refresh_token TEXT,
    expires_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- One sender per destination across the fleet: the instance holding a destination's unexpired lease is the
-- only one that claims its items (the claim checks it in its own transaction).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,        -- the destination id
    holder      TEXT NOT NULL,           -- instance name and a per-process suffix; '' when never held
    expires_at  TIMESTAMPTZ NOT NULL,
    acquired_at TIMESTAMPTZ
);

-- Each instance's last commit probe: which instances are alive, for the admin.
CREATE TABLE instances (
    holder   TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    seen_at  TIMESTAMPTZ NOT NULL
);
