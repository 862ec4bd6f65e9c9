-- Outbox rows are no longer deleted one by one as the broker acknowledges them (a delete
-- in every batch's transaction): outbox_acked_through marks how far the broker has
-- acknowledged them without a gap, as acked_through does for the incident events, and
-- the rows up to it are pruned with each checkpoint. At start, the rows after it are
-- published again. Keep in step with ../sqlite/0006_outbox_mark.sql.
ALTER TABLE event_feed ADD COLUMN outbox_acked_through BIGINT NOT NULL DEFAULT 0;
-- Until now an acknowledged row was deleted: every row left is unacknowledged.
UPDATE event_feed SET outbox_acked_through = COALESCE((SELECT MIN(id) FROM outbox) - 1, 0) WHERE id = 1;
