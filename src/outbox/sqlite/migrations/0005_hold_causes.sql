-- Holds carry their cause, so that what follows a hold (does the admin need to act?) is decided by a typed
-- value instead of by the wording of its reason. Holds written before this read their cause from it.
ALTER TABLE destination_blocks ADD COLUMN cause TEXT NOT NULL DEFAULT 'rate_limited';
UPDATE destination_blocks SET cause = 'paused' WHERE reason LIKE 'paused%';
UPDATE destination_blocks SET cause = 'budget' WHERE reason LIKE '%budget%';
-- Deliveries that cannot be planned are set aside in state 'dead', with the reason in `error`.
