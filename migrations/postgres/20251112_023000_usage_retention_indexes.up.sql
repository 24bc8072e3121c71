-- Retention indexes (original C3, version name kept:
-- 20251112_023000_usage_retention_indexes). They serve the retention purge's
-- "created_at < cutoff" scans on usage_events and billing_audit.
--
-- Both indexes are REDUNDANT: the legacy schema (and the platform baseline)
-- already has idx_usage_events_created on usage_events(created_at) and
-- idx_billing_audit_created on billing_audit(created_at DESC). They are kept
-- anyway for interface compatibility: an adopted Apex database already has
-- them under these names, and tooling or dashboards may refer to them.
--
-- Each block runs only if its table exists and the index name is absent.
-- Not CONCURRENTLY: the migration runs inside one transaction, as the
-- original did. An index this migration creates is recorded in
-- apexops.baseline_created (kept by the platform baseline), so that the down
-- migration never drops an index that an adopted database already had.

DO $$
BEGIN
	IF to_regclass('public.usage_events') IS NOT NULL
	   AND to_regclass('public.idx_usage_events_created_at') IS NULL THEN
		CREATE INDEX idx_usage_events_created_at
			ON public.usage_events (created_at);
		IF to_regclass('apexops.baseline_created') IS NOT NULL THEN
			INSERT INTO apexops.baseline_created (table_name)
			VALUES ('index:idx_usage_events_created_at')
			ON CONFLICT DO NOTHING;
		END IF;
	END IF;
END $$;

DO $$
BEGIN
	IF to_regclass('public.billing_audit') IS NOT NULL
	   AND to_regclass('public.idx_billing_audit_created_at') IS NULL THEN
		CREATE INDEX idx_billing_audit_created_at
			ON public.billing_audit (created_at);
		IF to_regclass('apexops.baseline_created') IS NOT NULL THEN
			INSERT INTO apexops.baseline_created (table_name)
			VALUES ('index:idx_billing_audit_created_at')
			ON CONFLICT DO NOTHING;
		END IF;
	END IF;
END $$;
