-- Snapshots of the engine at quiet moments (no incident open). Recovery restores the
-- newest and replays input_log after its log_seq; the log up to it is deleted.
CREATE TABLE checkpoints (
    log_seq BIGINT PRIMARY KEY,
    at_ms   BIGINT NOT NULL,
    state   TEXT    NOT NULL
);
