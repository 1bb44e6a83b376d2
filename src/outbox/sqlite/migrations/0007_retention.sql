-- Retention. Bodies move to a table of their own: blanking a body inside a deliveries row would leave its
-- page nearly empty but allocated, so the file would keep growing; deleting body rows frees whole pages,
-- which later writes reuse. Ages are indexed so that retention finds what it may forget a batch at a time.
CREATE TABLE delivery_bodies (
    delivery_id TEXT PRIMARY KEY REFERENCES deliveries (id),
    received_at INTEGER NOT NULL,        -- Unix ms, copied so that pruning needs no join to find old rows
    body        BLOB NOT NULL            -- the raw verified body
);
INSERT INTO delivery_bodies (delivery_id, received_at, body) SELECT id, received_at, body FROM deliveries;
ALTER TABLE deliveries DROP COLUMN body;
CREATE INDEX delivery_bodies_received_at ON delivery_bodies (received_at);
CREATE INDEX deliveries_received_at ON deliveries (received_at);
CREATE INDEX outbox_finished ON outbox (updated_at) WHERE state IN ('sent', 'dead', 'folded');
CREATE INDEX spend_at_only ON spend (at)
