-- vakt store, SQLite. Keep in step with ../postgres/0001_init.sql (same tables, same columns).

-- Every input the engine applied, in order, with the time it was applied at.
-- `record` is the core Input as JSON, or {"tick":null} for "timers due at at_ms ran".
-- Replaying this log through a fresh engine rebuilds its state exactly.
CREATE TABLE input_log (
    seq     INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    record  TEXT    NOT NULL
);

-- The incident history (audit trail): one row per engine action about an incident.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    at_ms        INTEGER NOT NULL,
    incident     INTEGER,
    municipality TEXT,
    kind         TEXT    NOT NULL,
    body         TEXT    NOT NULL
);
CREATE INDEX events_incident ON events (incident);

-- Messages stored for the broker, deleted once the broker has acknowledged them.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    topic       TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE residents (
    id              TEXT PRIMARY KEY,
    municipality    TEXT NOT NULL,
    lat             REAL NOT NULL,
    lon             REAL NOT NULL,
    address         TEXT NOT NULL,
    notes           TEXT NOT NULL,
    regular_helpers TEXT NOT NULL,
    updated_ms      INTEGER NOT NULL
);

CREATE TABLE staff (
    id           TEXT PRIMARY KEY,
    municipality TEXT NOT NULL,
    name         TEXT NOT NULL,
    roles        TEXT NOT NULL,
    updated_ms   INTEGER NOT NULL
);
