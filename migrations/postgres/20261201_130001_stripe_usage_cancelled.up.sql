-- Usage sync: a ledger row may be marked cancelled by an operator who
-- cancelled its event at Stripe (a meter event adjustment, possible within
-- 24 hours of receipt). A cancelled row no longer counts as reported; its
-- seq stays taken, so the next run sends the day's correct total under
-- the next seq and a new identifier (Stripe keeps the old one).
-- The first migration's unnamed CHECKs on status and sent_at are found by
-- what they check, as their generated names depend on creation order.
DO $$
DECLARE c record;
BEGIN
	FOR c IN SELECT conname FROM pg_constraint
		WHERE conrelid = 'apexops.stripe_usage_events'::regclass
		AND contype = 'c' AND (pg_get_constraintdef(oid) LIKE '%sent_at%'
			OR pg_get_constraintdef(oid) LIKE '%''pending''%')
	LOOP
		EXECUTE format('ALTER TABLE apexops.stripe_usage_events DROP CONSTRAINT %I',
			       c.conname);
	END LOOP;
END $$;
ALTER TABLE apexops.stripe_usage_events
	ADD CONSTRAINT stripe_usage_events_status_check
		CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
	ADD CONSTRAINT stripe_usage_events_sent_at_check
		CHECK (status <> 'sent' OR sent_at IS NOT NULL);
DROP INDEX IF EXISTS apexops.stripe_usage_events_open_idx;
CREATE INDEX stripe_usage_events_open_idx
	ON apexops.stripe_usage_events (usage_day)
	WHERE status IN ('pending', 'failed');
