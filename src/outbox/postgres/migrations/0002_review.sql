-- Review, as SQLite's migration 0008: decisions on items kept for a person, and rejected items pruned as
-- finished ones.
ALTER TABLE outbox ADD COLUMN decision TEXT;
ALTER TABLE outbox ADD COLUMN decided_by TEXT;
ALTER TABLE outbox ADD COLUMN decided_at BIGINT;
ALTER TABLE outbox ADD COLUMN original_text TEXT;
DROP INDEX outbox_finished;
CREATE INDEX outbox_finished ON outbox (updated_at) WHERE state IN ('sent', 'dead', 'folded', 'rejected');
