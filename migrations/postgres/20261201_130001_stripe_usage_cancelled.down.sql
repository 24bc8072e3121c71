-- Cancelled rows go back to sent (what Stripe received first); the
-- corrected rows sent after them stay.
UPDATE apexops.stripe_usage_events SET status = 'sent',
	sent_at = COALESCE(sent_at, updated_at)
	WHERE status = 'cancelled';
ALTER TABLE apexops.stripe_usage_events
	DROP CONSTRAINT IF EXISTS stripe_usage_events_status_check,
	DROP CONSTRAINT IF EXISTS stripe_usage_events_sent_at_check,
	ADD CONSTRAINT stripe_usage_events_status_check
		CHECK (status IN ('pending', 'sent', 'failed')),
	ADD CONSTRAINT stripe_usage_events_sent_at_check
		CHECK ((status = 'sent') = (sent_at IS NOT NULL));
DROP INDEX IF EXISTS apexops.stripe_usage_events_open_idx;
CREATE INDEX stripe_usage_events_open_idx
	ON apexops.stripe_usage_events (usage_day) WHERE status <> 'sent';
