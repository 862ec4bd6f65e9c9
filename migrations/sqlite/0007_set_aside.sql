-- What vakt has set aside because it made the engine fail (a fault in vakt), read back
-- at every start so that a restart does not fail on it again (src/live/driver/set_aside.rs).
-- kind: directory_row (input: the row's input as logged; left out until it changes),
-- web_action (input: the action's input; refused by the version that failed on it),
-- alarm (alarm_id, resident_id; refused by the version that failed on it).
-- Keep in step with ../postgres/0007_set_aside.sql.
CREATE TABLE set_aside (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    input       TEXT,
    alarm_id    TEXT,
    resident_id TEXT,
    version     TEXT    NOT NULL,
    why         TEXT    NOT NULL
);

-- Until now each was only a line of the audit trail, its detail JSON; those lines stay.
INSERT INTO set_aside (at_ms, kind, input, version, why)
    SELECT at_ms, 'directory_row', json_extract(detail, '$.input'), '', COALESCE(json_extract(detail, '$.why'), '')
    FROM audit WHERE action = 'directory_row_set_aside' AND json_valid(detail) ORDER BY seq;
INSERT INTO set_aside (at_ms, kind, input, version, why)
    SELECT at_ms, 'web_action', json_extract(detail, '$.input'), COALESCE(json_extract(detail, '$.version'), ''), COALESCE(json_extract(detail, '$.why'), '')
    FROM audit WHERE action = 'web_action_set_aside' AND json_valid(detail) ORDER BY seq;
INSERT INTO set_aside (at_ms, kind, alarm_id, resident_id, version, why)
    SELECT at_ms, 'alarm', json_extract(detail, '$.alarm_id'), json_extract(detail, '$.resident_id'), COALESCE(json_extract(detail, '$.version'), ''), COALESCE(json_extract(detail, '$.why'), '')
    FROM audit WHERE action = 'alarm_set_aside' AND json_valid(detail) ORDER BY seq;
