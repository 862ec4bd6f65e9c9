-- vakt store, PostgreSQL. Keep in step with ../sqlite/0001_init.sql (same tables, same columns).

-- Every input the engine applied, in order, with the time it was applied at.
-- `record` is the core Input as JSON, or {"tick":null} for "timers due at at_ms ran".
-- Replaying this log through a fresh engine rebuilds its state exactly.
CREATE TABLE input_log (
    seq     BIGINT PRIMARY KEY,
    at_ms   BIGINT NOT NULL,
    record  TEXT    NOT NULL
);

-- The incident history (audit trail): one row per engine action about an incident.
CREATE TABLE events (
    seq          BIGINT PRIMARY KEY,
    at_ms        BIGINT NOT NULL,
    incident     BIGINT,
    municipality TEXT,
    kind         TEXT    NOT NULL,
    body         TEXT    NOT NULL
);
CREATE INDEX events_incident ON events (incident);

-- Messages stored for the broker, deleted once the broker has acknowledged them.
CREATE TABLE outbox (
    id          BIGINT PRIMARY KEY,
    topic       TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE residents (
    id              TEXT PRIMARY KEY,
    municipality    TEXT NOT NULL,
    lat             DOUBLE PRECISION NOT NULL,
    lon             DOUBLE PRECISION NOT NULL,
    address         TEXT NOT NULL,
    notes           TEXT NOT NULL,
    regular_helpers TEXT NOT NULL,
    updated_ms      BIGINT NOT NULL
);

CREATE TABLE staff (
    id           TEXT PRIMARY KEY,
    municipality TEXT NOT NULL,
    name         TEXT NOT NULL,
    roles        TEXT NOT NULL,
    updated_ms   BIGINT NOT NULL
);
