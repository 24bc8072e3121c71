-- Reverts 20251111_000000_platform_baseline: removes ONLY what the up
-- migration itself created, as recorded in apexops.baseline_created. On an
-- adopted production database (the tables existed before apexops) the
-- tables, their columns and their rows are left alone. No CASCADE anywhere:
-- if something else depends on a table, the down stops with an error rather
-- than drop more than the baseline made.

DO $$
DECLARE
	t text;
	r record;
BEGIN
	IF to_regclass('apexops.baseline_created') IS NULL THEN
		RETURN;
	END IF;

	-- indexes and columns added to tables that already existed
	FOR r IN
		SELECT substr(table_name, 7) AS idx
		FROM apexops.baseline_created
		WHERE table_name LIKE 'index:%'
		ORDER BY 1
	LOOP
		EXECUTE format('DROP INDEX IF EXISTS public.%I', r.idx);
	END LOOP;
	FOR r IN
		SELECT split_part(substr(table_name, 8), '.', 1) AS tbl,
		       split_part(substr(table_name, 8), '.', 2) AS col
		FROM apexops.baseline_created
		WHERE table_name LIKE 'column:%'
		ORDER BY 1, 2
	LOOP
		IF to_regclass(format('public.%I', r.tbl)) IS NOT NULL THEN
			EXECUTE format('ALTER TABLE public.%I DROP COLUMN IF EXISTS %I',
				       r.tbl, r.col);
		END IF;
	END LOOP;

	-- tables, dependents first
	FOREACH t IN ARRAY ARRAY[
		'api_keys', 'stripe_webhook_events', 'usage_records',
		'usage_alerts', 'billing_audit', 'invoices', 'waterfall_configs',
		'payment_failures', 'subscriptions', 'usage_events', 'events',
		'revenue_events', 'adapter_configs', 'adapters', 'placements',
		'apps', 'users', 'publishers'
	] LOOP
		IF EXISTS (SELECT 1 FROM apexops.baseline_created
			   WHERE table_name = t) THEN
			EXECUTE format('DROP TABLE IF EXISTS public.%I', t);
		END IF;
	END LOOP;

	IF EXISTS (SELECT 1 FROM apexops.baseline_created
		   WHERE table_name = 'extension:pgcrypto') THEN
		DROP EXTENSION IF EXISTS pgcrypto;
	END IF;
END $$;

DROP TABLE IF EXISTS apexops.baseline_created;
