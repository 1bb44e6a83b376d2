-- Money spent per destination, one row per billed post, so the monthly budget survives restarts.
CREATE TABLE spend (
    destination   TEXT NOT NULL,
    at            INTEGER NOT NULL,      -- Unix ms
    amount_micros INTEGER NOT NULL       -- US dollars × 1,000,000
);
CREATE INDEX spend_at ON spend (destination, at);

-- DM recipients given as @username, resolved once through GET /2/users/by/username.
CREATE TABLE user_ids (
    username    TEXT PRIMARY KEY,        -- lower case, without @
    user_id     TEXT NOT NULL,
    resolved_at INTEGER NOT NULL
);

-- OAuth 2.0 user tokens. The refresh token rotates on every use; the new one is stored before the new
-- access token is used, so a crash never leaves chirpd holding only a spent refresh token.
CREATE TABLE oauth_tokens (
    destination   TEXT PRIMARY KEY,
    access_token  TEXT NOT NULL,
    refresh_token TEXT,
    expires_at    INTEGER NOT NULL,      -- Unix ms
    updated_at    INTEGER NOT NULL
)
