-- Refused alarms are audited (action 'refused_alarm', by the system); the engine reads
-- the latest of them back at start, for the dashboards.
CREATE INDEX audit_action ON audit (action, seq);
