-- Platform baseline: the Apex platform tables apexops works on, with the
-- original system's EFFECTIVE shapes (ORIGINAL-SYSTEM.md section 3, i.e. the
-- result of the legacy backend/migrations/*.sql files 001..028).
--
-- apexops either adopts an existing Apex production database (every table
-- below already exists) or starts an empty one. So everything here is
-- "create only where absent", and the original's quirks that are part of the
-- interface are kept on purpose:
--   * users.role has no CHECK (007 won over 017), no users.is_active;
--   * adapters.id has no default; adapter_configs has no unique pair;
--   * revenue_events has no created_at and no secondary index;
--   * placements has no publisher_id;
--   * usage_events.created_at is nullable;
--   * subscriptions keeps DATE periods and the 017/028 CHECKs.
--
-- Safety of `migrate down`: before creating anything, this migration records
-- in apexops.baseline_created what did NOT exist yet (tables, the pgcrypto
-- extension, and columns or indexes it adds to tables that already existed).
-- The down migration removes exactly those objects and nothing else, so an
-- adopted production database loses no table, column or row.
--
-- Every name is schema-qualified: with the default search_path
-- ("$user", public), a role named apexops (the embedded cluster's) would
-- otherwise create these tables in schema apexops.

CREATE SCHEMA IF NOT EXISTS apexops;

-- one row per object this baseline created: a bare table name for a table in
-- schema public, 'extension:<name>', 'column:<table>.<column>' or
-- 'index:<name>' for objects added to tables that already existed.
CREATE TABLE IF NOT EXISTS apexops.baseline_created (
	table_name text PRIMARY KEY
);

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY[
		'publishers', 'users', 'apps', 'placements', 'adapters',
		'adapter_configs', 'revenue_events', 'waterfall_configs',
		'usage_events', 'usage_records', 'billing_audit',
		'subscriptions', 'invoices', 'payment_failures', 'events',
		'usage_alerts', 'api_keys', 'stripe_webhook_events'
	] LOOP
		IF to_regclass(format('public.%I', t)) IS NULL THEN
			INSERT INTO apexops.baseline_created (table_name)
			VALUES (t) ON CONFLICT DO NOTHING;
		END IF;
	END LOOP;
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgcrypto') THEN
		INSERT INTO apexops.baseline_created (table_name)
		VALUES ('extension:pgcrypto') ON CONFLICT DO NOTHING;
	END IF;
END $$;

-- What the pre-existing tables look like now, so that the columns and indexes
-- added below to them can be recorded at the end (session-local, dropped at
-- the end of this file).
DROP TABLE IF EXISTS pg_temp.baseline_before;
CREATE TEMP TABLE baseline_before AS
SELECT 'column:' || c.table_name || '.' || c.column_name AS obj
FROM information_schema.columns c
WHERE c.table_schema = 'public'
  AND c.table_name IN ('users', 'placements')
UNION ALL
SELECT 'index:' || i.indexname
FROM pg_indexes i
WHERE i.schemaname = 'public';

CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;

-- 3.1 core inventory (001_initial_schema)

CREATE TABLE IF NOT EXISTS public.publishers (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	company_name TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.users (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	publisher_id UUID NOT NULL REFERENCES public.publishers (id),
	email TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- 007: role without CHECK (017's CHECKed variant was skipped in production)
ALTER TABLE public.users ADD COLUMN IF NOT EXISTS role VARCHAR(50) NOT NULL DEFAULT 'customer';
CREATE INDEX IF NOT EXISTS idx_users_role ON public.users (role);
-- 017
ALTER TABLE public.users ADD COLUMN IF NOT EXISTS stripe_customer_id VARCHAR(255) UNIQUE;
CREATE INDEX IF NOT EXISTS idx_users_stripe_customer ON public.users (stripe_customer_id)
	WHERE stripe_customer_id IS NOT NULL;
ALTER TABLE public.users ADD COLUMN IF NOT EXISTS api_key VARCHAR(255) UNIQUE;
CREATE INDEX IF NOT EXISTS idx_users_api_key ON public.users (api_key)
	WHERE api_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS public.apps (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	publisher_id UUID NOT NULL REFERENCES public.publishers (id),
	name TEXT NOT NULL,
	bundle_id TEXT NOT NULL,
	platform TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.placements (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	app_id UUID NOT NULL REFERENCES public.apps (id),
	name TEXT NOT NULL,
	type TEXT NOT NULL,
	status TEXT NOT NULL DEFAULT 'active',
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- 022_placement_config
ALTER TABLE public.placements ADD COLUMN IF NOT EXISTS config JSONB DEFAULT '{}'::jsonb;

CREATE TABLE IF NOT EXISTS public.adapters (
	id UUID PRIMARY KEY, -- no default: ids are fixed by the caller
	name TEXT NOT NULL,
	enabled BOOLEAN NOT NULL DEFAULT true,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.adapter_configs (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	publisher_id UUID NOT NULL REFERENCES public.publishers (id),
	adapter_id UUID NOT NULL REFERENCES public.adapters (id),
	config JSONB NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.revenue_events (
	id BIGSERIAL PRIMARY KEY,
	publisher_id UUID NOT NULL REFERENCES public.publishers (id),
	placement_id UUID NOT NULL REFERENCES public.placements (id),
	adapter_id UUID NOT NULL REFERENCES public.adapters (id),
	impressions BIGINT NOT NULL,
	clicks BIGINT NOT NULL,
	revenue NUMERIC(12, 2) NOT NULL,
	event_date DATE NOT NULL
);

-- 3.3 and 3.5: tables of 009_customer_lifecycle (effective shapes)

CREATE TABLE IF NOT EXISTS public.events (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	event_type VARCHAR(100) NOT NULL,
	data JSONB DEFAULT '{}',
	customer_id UUID REFERENCES public.users (id) ON DELETE CASCADE,
	created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
	processed BOOLEAN DEFAULT false,
	processed_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_events_type ON public.events (event_type);
CREATE INDEX IF NOT EXISTS idx_events_customer ON public.events (customer_id);
CREATE INDEX IF NOT EXISTS idx_events_created ON public.events (created_at);
CREATE INDEX IF NOT EXISTS idx_events_processed ON public.events (processed);

CREATE TABLE IF NOT EXISTS public.usage_events (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	customer_id UUID NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
	event_name VARCHAR(100) NOT NULL,
	event_value BIGINT NOT NULL,
	event_metadata JSONB DEFAULT '{}',
	created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
	stripe_synced BOOLEAN DEFAULT false,
	stripe_synced_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_usage_events_customer ON public.usage_events (customer_id);
CREATE INDEX IF NOT EXISTS idx_usage_events_name ON public.usage_events (event_name);
CREATE INDEX IF NOT EXISTS idx_usage_events_created ON public.usage_events (created_at);
CREATE INDEX IF NOT EXISTS idx_usage_events_synced ON public.usage_events (stripe_synced);

-- subscriptions: created by 009, upgraded by 017 (trial_end renamed to
-- trial_end_date, columns appended, defaults dropped), re-constrained by 028.
-- Column order is the production one (009's columns, then 017's).
CREATE TABLE IF NOT EXISTS public.subscriptions (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	customer_id UUID NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
	plan_type VARCHAR(50) NOT NULL
		CONSTRAINT subscriptions_plan_type_check
		CHECK (plan_type IN ('starter', 'growth', 'scale', 'enterprise')),
	status VARCHAR(20) DEFAULT 'active'
		CONSTRAINT subscriptions_status_check
		CHECK (status IN ('trial', 'active', 'past_due', 'cancelled', 'suspended')),
	plan_limit_impressions BIGINT NOT NULL,
	stripe_subscription_id VARCHAR(255) UNIQUE,
	stripe_customer_id VARCHAR(255),
	current_period_start DATE,
	current_period_end DATE,
	trial_start DATE,
	trial_end_date DATE,
	cancelled_at TIMESTAMPTZ,
	cancellation_reason TEXT,
	created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
	updated_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
	plan_name TEXT NOT NULL DEFAULT 'Standard',
	base_price_cents INTEGER NOT NULL,
	currency TEXT NOT NULL DEFAULT 'USD',
	included_impressions INTEGER NOT NULL,
	included_api_calls INTEGER DEFAULT 100000,
	included_data_transfer_gb INTEGER DEFAULT 50,
	billing_interval TEXT NOT NULL,
	next_billing_date DATE NOT NULL,
	payment_processor TEXT NOT NULL DEFAULT 'stripe'
		CONSTRAINT subscriptions_payment_processor_check
		CHECK (payment_processor IN ('stripe', 'paddle', 'manual')),
	paddle_subscription_id TEXT,
	failed_payment_count INTEGER NOT NULL DEFAULT 0,
	last_failed_payment_at TIMESTAMPTZ,
	metadata JSONB DEFAULT '{}'::jsonb,
	UNIQUE (customer_id)
);
CREATE INDEX IF NOT EXISTS idx_subscriptions_customer ON public.subscriptions (customer_id);
CREATE INDEX IF NOT EXISTS idx_subscriptions_status ON public.subscriptions (status);
CREATE INDEX IF NOT EXISTS idx_subscriptions_stripe ON public.subscriptions (stripe_subscription_id);
CREATE INDEX IF NOT EXISTS idx_subscriptions_customer_id ON public.subscriptions (customer_id);
CREATE INDEX IF NOT EXISTS idx_subscriptions_next_billing_date ON public.subscriptions (next_billing_date);
CREATE INDEX IF NOT EXISTS idx_subscriptions_stripe_id ON public.subscriptions (stripe_subscription_id)
	WHERE stripe_subscription_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS idx_subscriptions_paddle_id ON public.subscriptions (paddle_subscription_id)
	WHERE paddle_subscription_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS public.payment_failures (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	customer_id UUID NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
	subscription_id UUID REFERENCES public.subscriptions (id) ON DELETE CASCADE,
	amount_cents INTEGER NOT NULL,
	currency VARCHAR(3) DEFAULT 'USD',
	failure_reason TEXT NOT NULL,
	stripe_error_code VARCHAR(100),
	retry_count INTEGER DEFAULT 0,
	next_retry_at TIMESTAMPTZ,
	resolved BOOLEAN DEFAULT false,
	resolved_at TIMESTAMPTZ,
	created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_payment_failures_customer ON public.payment_failures (customer_id);
CREATE INDEX IF NOT EXISTS idx_payment_failures_resolved ON public.payment_failures (resolved);
CREATE INDEX IF NOT EXISTS idx_payment_failures_created ON public.payment_failures (created_at);

-- 3.2 waterfall_configs (010_growth_optimization)

CREATE TABLE IF NOT EXISTS public.waterfall_configs (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	customer_id UUID REFERENCES public.users (id) ON DELETE CASCADE,
	placement_id UUID REFERENCES public.placements (id) ON DELETE CASCADE,
	adapter_priorities JSONB NOT NULL,
	floor_price_cents INTEGER NOT NULL DEFAULT 0,
	optimization_strategy VARCHAR(50) DEFAULT 'ml'
		CHECK (optimization_strategy IN ('static', 'ml', 'ab_test')),
	active BOOLEAN DEFAULT true,
	created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
	updated_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
	last_optimized_at TIMESTAMPTZ,
	optimization_score DECIMAL(5, 2)
);
CREATE INDEX IF NOT EXISTS idx_waterfall_customer ON public.waterfall_configs (customer_id);
CREATE INDEX IF NOT EXISTS idx_waterfall_placement ON public.waterfall_configs (placement_id);
CREATE INDEX IF NOT EXISTS idx_waterfall_active ON public.waterfall_configs (active);

-- invoices (011_billing_compliance)

CREATE TABLE IF NOT EXISTS public.invoices (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	invoice_number VARCHAR(50) UNIQUE NOT NULL,
	customer_id UUID NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
	subscription_id UUID REFERENCES public.subscriptions (id) ON DELETE SET NULL,
	invoice_date DATE NOT NULL DEFAULT CURRENT_DATE,
	due_date DATE NOT NULL,
	amount_cents INTEGER NOT NULL,
	tax_amount_cents INTEGER DEFAULT 0,
	total_amount_cents INTEGER NOT NULL,
	currency VARCHAR(3) DEFAULT 'EUR',
	status VARCHAR(20) DEFAULT 'pending'
		CHECK (status IN ('pending', 'paid', 'overdue', 'cancelled', 'refunded')),
	paid_at TIMESTAMPTZ,
	stripe_invoice_id VARCHAR(255),
	pdf_url TEXT,
	line_items JSONB NOT NULL,
	notes TEXT,
	created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
	updated_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_invoices_customer ON public.invoices (customer_id);
CREATE INDEX IF NOT EXISTS idx_invoices_number ON public.invoices (invoice_number);
CREATE INDEX IF NOT EXISTS idx_invoices_status ON public.invoices (status);
CREATE INDEX IF NOT EXISTS idx_invoices_date ON public.invoices (invoice_date);
CREATE INDEX IF NOT EXISTS idx_invoices_stripe ON public.invoices (stripe_invoice_id);

-- 3.4 and 3.5: tables of 017_billing_audit_and_idempotency

CREATE TABLE IF NOT EXISTS public.billing_audit (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	event_type VARCHAR(100) NOT NULL,
	actor VARCHAR(255),
	customer_id UUID REFERENCES public.users (id) ON DELETE SET NULL,
	data JSONB NOT NULL DEFAULT '{}'::jsonb,
	ip_address INET,
	user_agent TEXT,
	created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_billing_audit_event_type ON public.billing_audit (event_type);
CREATE INDEX IF NOT EXISTS idx_billing_audit_customer ON public.billing_audit (customer_id);
CREATE INDEX IF NOT EXISTS idx_billing_audit_created ON public.billing_audit (created_at DESC);
CREATE INDEX IF NOT EXISTS idx_billing_audit_actor ON public.billing_audit (actor);

CREATE TABLE IF NOT EXISTS public.usage_alerts (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	customer_id UUID NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
	alert_type VARCHAR(50) NOT NULL,
	usage_amount BIGINT NOT NULL,
	limit_amount BIGINT NOT NULL,
	email_sent BOOLEAN DEFAULT false,
	created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_usage_alerts_customer ON public.usage_alerts (customer_id);
CREATE INDEX IF NOT EXISTS idx_usage_alerts_type ON public.usage_alerts (alert_type);
CREATE INDEX IF NOT EXISTS idx_usage_alerts_created ON public.usage_alerts (created_at DESC);

-- 017 replaced 009's daily aggregate table with event-style records
CREATE TABLE IF NOT EXISTS public.usage_records (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	customer_id UUID NOT NULL REFERENCES public.users (id) ON DELETE RESTRICT,
	metric_type TEXT NOT NULL,
	quantity INTEGER NOT NULL CHECK (quantity >= 0),
	metadata JSONB DEFAULT '{}'::jsonb,
	recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_usage_records_customer ON public.usage_records (customer_id);
CREATE INDEX IF NOT EXISTS idx_usage_records_metric ON public.usage_records (metric_type);
CREATE INDEX IF NOT EXISTS idx_usage_records_recorded ON public.usage_records (recorded_at DESC);

-- 018_stripe_webhook_events

CREATE TABLE IF NOT EXISTS public.stripe_webhook_events (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	stripe_event_id VARCHAR(255) UNIQUE NOT NULL,
	event_type VARCHAR(100) NOT NULL,
	processed BOOLEAN DEFAULT false,
	created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
	processed_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_stripe_webhook_events_stripe_id ON public.stripe_webhook_events (stripe_event_id);
CREATE INDEX IF NOT EXISTS idx_stripe_webhook_events_type ON public.stripe_webhook_events (event_type);
CREATE INDEX IF NOT EXISTS idx_stripe_webhook_events_processed ON public.stripe_webhook_events (processed)
	WHERE NOT processed;

-- 3.6 api_keys: referenced by the original code (TypeORM entity) but created
-- by no migration there; this is the shape the code uses (key, user_id,
-- status, suspended_at).
CREATE TABLE IF NOT EXISTS public.api_keys (
	id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
	key VARCHAR(255) NOT NULL UNIQUE,
	user_id UUID NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
	status VARCHAR(20) NOT NULL DEFAULT 'active',
	suspended_at TIMESTAMPTZ,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_api_keys_user ON public.api_keys (user_id);

-- Table comments, only on tables this migration created (an adopted
-- database keeps its own).
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN
		SELECT v.t, v.c
		FROM (VALUES
			('events', 'Generic events table for async processing (email triggers, webhooks, background jobs)'),
			('usage_events', 'Granular usage events for Stripe usage-based billing sync'),
			('subscriptions', 'Customer subscription plans and Stripe integration'),
			('payment_failures', 'Failed payment tracking for dunning management'),
			('invoices', 'Customer invoices with line items, VAT, and PDF URLs'),
			('billing_audit', 'Audit trail for all billing operations'),
			('usage_alerts', 'Tracks usage threshold alerts sent to customers'),
			('stripe_webhook_events', 'Tracks Stripe webhook events for idempotency and replay protection')
		) AS v (t, c)
		JOIN apexops.baseline_created b ON b.table_name = v.t
	LOOP
		EXECUTE format('COMMENT ON TABLE public.%I IS %L', r.t, r.c);
	END LOOP;
END $$;

-- Record the columns and indexes added to tables that already existed, so
-- that the down migration can take back exactly those (indexes that back a
-- constraint go with their column).
INSERT INTO apexops.baseline_created (table_name)
SELECT 'column:' || c.table_name || '.' || c.column_name
FROM information_schema.columns c
WHERE c.table_schema = 'public'
  AND c.table_name IN ('users', 'placements')
  AND c.table_name NOT IN (SELECT table_name FROM apexops.baseline_created)
  AND 'column:' || c.table_name || '.' || c.column_name NOT IN (SELECT obj FROM pg_temp.baseline_before)
ON CONFLICT DO NOTHING;

INSERT INTO apexops.baseline_created (table_name)
SELECT 'index:' || i.indexname
FROM pg_indexes i
JOIN pg_class ic ON ic.relname = i.indexname
	AND ic.relnamespace = 'public'::regnamespace
WHERE i.schemaname = 'public'
  AND i.tablename IN (
	'publishers', 'users', 'apps', 'placements', 'adapters',
	'adapter_configs', 'revenue_events', 'waterfall_configs',
	'usage_events', 'usage_records', 'billing_audit',
	'subscriptions', 'invoices', 'payment_failures', 'events',
	'usage_alerts', 'api_keys', 'stripe_webhook_events')
  AND i.tablename NOT IN (SELECT table_name FROM apexops.baseline_created)
  AND 'index:' || i.indexname NOT IN (SELECT obj FROM pg_temp.baseline_before)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = ic.oid)
ON CONFLICT DO NOTHING;

DROP TABLE pg_temp.baseline_before;
