-- Incident events are published from `events` itself (no copy in `outbox`).
-- acked_through: every event with seq <= it has been acknowledged by the broker (or is
-- not published: refusals); at start, the events after it are published again.
-- Keep in step with ../postgres/0004_event_feed.sql.
CREATE TABLE event_feed (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    acked_through INTEGER NOT NULL
);
-- Events stored before this migration were published through the outbox.
INSERT INTO event_feed (id, acked_through) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
