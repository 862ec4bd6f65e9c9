-- Accounts for the web side, their sessions, and the audit trail of what people did.
-- Keep in step with ../sqlite/0003_accounts.sql.

-- role: operator | staff | planner | admin. staff_id links a staff user to the directory;
-- centre is an operator's response centre. password_hash is argon2id (PHC string).
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    staff_id      TEXT,
    centre        TEXT,
    created_ms    BIGINT NOT NULL
);

-- A session is stored by the SHA-256 of its token, never the token itself.
CREATE TABLE sessions (
    token_digest TEXT PRIMARY KEY,
    username     TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL
);

-- Who did what and when, through the web side (and every login): written in the same
-- transaction as the input the action became. outcome: ok, or the reason it was refused.
CREATE TABLE audit (
    seq       BIGSERIAL PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    username  TEXT    NOT NULL,
    role      TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    incident  BIGINT,
    detail    TEXT    NOT NULL,
    outcome   TEXT    NOT NULL
);
CREATE INDEX audit_incident ON audit (incident);
