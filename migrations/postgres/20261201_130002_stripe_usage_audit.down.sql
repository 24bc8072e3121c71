ALTER TABLE apexops.stripe_usage_events RESET (fillfactor);
CREATE INDEX IF NOT EXISTS stripe_usage_events_open_idx
	ON apexops.stripe_usage_events (usage_day)
	WHERE status IN ('pending', 'failed');
ALTER TABLE apexops.stripe_usage_events DROP COLUMN IF EXISTS audited_at;
