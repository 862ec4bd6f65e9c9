-- What vakt has set aside because it made the engine fail (a fault in vakt), read back
-- at every start so that a restart does not fail on it again (src/live/driver/set_aside.rs).
-- kind: directory_row (input: the row's input as logged; left out until it changes),
-- web_action (input: the action's input; refused by the version that failed on it),
-- alarm (alarm_id, resident_id; refused by the version that failed on it).
-- Keep in step with ../sqlite/0007_set_aside.sql.
CREATE TABLE set_aside (
    seq         BIGSERIAL PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    input       TEXT,
    alarm_id    TEXT,
    resident_id TEXT,
    version     TEXT   NOT NULL,
    why         TEXT   NOT NULL
);

-- Until now each was only a line of the audit trail, its detail JSON (vakt's own); those lines stay.
INSERT INTO set_aside (at_ms, kind, input, version, why)
    SELECT at_ms, 'directory_row', detail::jsonb ->> 'input', '', COALESCE(detail::jsonb ->> 'why', '')
    FROM audit WHERE action = 'directory_row_set_aside' AND detail LIKE '{%' ORDER BY seq;
INSERT INTO set_aside (at_ms, kind, input, version, why)
    SELECT at_ms, 'web_action', detail::jsonb ->> 'input', COALESCE(detail::jsonb ->> 'version', ''), COALESCE(detail::jsonb ->> 'why', '')
    FROM audit WHERE action = 'web_action_set_aside' AND detail LIKE '{%' ORDER BY seq;
INSERT INTO set_aside (at_ms, kind, alarm_id, resident_id, version, why)
    SELECT at_ms, 'alarm', detail::jsonb ->> 'alarm_id', detail::jsonb ->> 'resident_id', COALESCE(detail::jsonb ->> 'version', ''), COALESCE(detail::jsonb ->> 'why', '')
    FROM audit WHERE action = 'alarm_set_aside' AND detail LIKE '{%' ORDER BY seq;
