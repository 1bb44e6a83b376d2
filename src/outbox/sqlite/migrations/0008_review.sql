-- Review: items a route or destination keeps for a person's decision wait in state 'review'; approved ones
-- become 'pending', rejected ones 'rejected'. Who decided what and when stays with the item, and an edited
-- item keeps the text it was planned with.
ALTER TABLE outbox ADD COLUMN decision TEXT;           -- approved | edited | rejected
ALTER TABLE outbox ADD COLUMN decided_by TEXT;
ALTER TABLE outbox ADD COLUMN decided_at INTEGER;      -- Unix ms
ALTER TABLE outbox ADD COLUMN original_text TEXT;      -- the planned text, when the reviewer edited it
DROP INDEX outbox_finished;
CREATE INDEX outbox_finished ON outbox (updated_at) WHERE state IN ('sent', 'dead', 'folded', 'rejected');
