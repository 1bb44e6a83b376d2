-- Settling: the subject an item is about (provider:project:number), so that quick successive updates
-- of one task become one post with its final state.
ALTER TABLE outbox ADD COLUMN subject TEXT;
CREATE INDEX outbox_subject ON outbox (destination, subject) WHERE subject IS NOT NULL
