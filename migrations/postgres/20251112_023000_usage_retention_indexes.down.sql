-- Reverts 20251112_023000_usage_retention_indexes (the original had no down).
-- Drops (IF EXISTS) the two indexes, but only those the up migration created,
-- as recorded in apexops.baseline_created: an adopted database that already
-- had them keeps them. Without that record (no apexops baseline in this
-- database) both are dropped if present. Dropping them loses no coverage:
-- idx_usage_events_created and idx_billing_audit_created index the same
-- column.

DO $$
DECLARE
	idx text;
BEGIN
	FOREACH idx IN ARRAY ARRAY['idx_usage_events_created_at',
				   'idx_billing_audit_created_at'] LOOP
		IF to_regclass('apexops.baseline_created') IS NULL THEN
			EXECUTE format('DROP INDEX IF EXISTS public.%I', idx);
		ELSIF EXISTS (SELECT 1 FROM apexops.baseline_created
			      WHERE table_name = 'index:' || idx) THEN
			EXECUTE format('DROP INDEX IF EXISTS public.%I', idx);
			DELETE FROM apexops.baseline_created
			WHERE table_name = 'index:' || idx;
		END IF;
	END LOOP;
END $$;
