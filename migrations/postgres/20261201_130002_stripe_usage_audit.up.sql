-- Usage sync ledger, third step.
-- audited_at: when billing_audit last recorded the row's settlement (NULL:
-- not since it was settled); every run audits the settled rows of its days
-- that a killed run delivered but did not audit.
ALTER TABLE apexops.stripe_usage_events
	ADD COLUMN IF NOT EXISTS audited_at timestamptz;
-- Rows already settled were audited when they were (or never will be).
UPDATE apexops.stripe_usage_events SET audited_at = updated_at
	WHERE status IN ('sent', 'failed', 'cancelled');
-- Settling a row must be a HOT update (no index entry touched): the
-- partial index on status defeated that, and stripe_usage_events_day_idx
-- finds a day's open rows as well; pages keep room for the new versions.
DROP INDEX IF EXISTS apexops.stripe_usage_events_open_idx;
ALTER TABLE apexops.stripe_usage_events SET (fillfactor = 70);
