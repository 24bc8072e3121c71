-- The Stripe usage-sync ledger (apexops stripe sync-usage and the 02:00
-- job stripe-usage-sync). One row per Billing Meter Event: (customer,
-- metric, day, seq), written before the call (pending) and settled after
-- it (sent or failed), so a rerun sends nothing already delivered and a
-- crash resumes where it stopped. seq 0 is the day's first report; late
-- usage found by a later run is seq 1, 2, ... carrying only the
-- difference. A row's values never change once written: a retry resends
-- exactly what the row holds, under the same identifier and
-- Idempotency-Key.
CREATE SCHEMA IF NOT EXISTS apexops;

CREATE TABLE IF NOT EXISTS apexops.stripe_usage_events (
	id bigserial PRIMARY KEY,
	customer_id uuid NOT NULL,
	metric text NOT NULL,
	usage_day date NOT NULL,
	seq integer NOT NULL CHECK (seq >= 0),
	tz text NOT NULL,
	stripe_customer_id text NOT NULL,
	event_name text NOT NULL CHECK (length(event_name) BETWEEN 1 AND 100),
	quantity bigint NOT NULL CHECK (quantity > 0),
	day_total bigint NOT NULL CHECK (day_total >= quantity),
	event_ts bigint NOT NULL,
	identifier text NOT NULL UNIQUE
		CHECK (length(identifier) BETWEEN 1 AND 100),
	status text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'sent', 'failed')),
	outcome text CHECK (outcome IN ('created', 'replayed', 'duplicate')),
	attempts integer NOT NULL DEFAULT 0,
	request_id text,
	error text,
	run_id bigint,
	created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	sent_at timestamptz,
	UNIQUE (customer_id, metric, usage_day, seq),
	CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS stripe_usage_events_open_idx
	ON apexops.stripe_usage_events (usage_day) WHERE status <> 'sent';
CREATE INDEX IF NOT EXISTS stripe_usage_events_day_idx
	ON apexops.stripe_usage_events (usage_day, customer_id, metric);

COMMENT ON TABLE apexops.stripe_usage_events IS
	'one row per Stripe Billing Meter Event of the usage sync';

-- Recorded usage below what was already reported for a day: Stripe cannot
-- take usage back after 24 hours, so an operator settles it (runbook,
-- "Stripe usage sync"). One row per (customer, metric, day); a later run
-- updates the figures, resolved_at is set by the operator.
CREATE TABLE IF NOT EXISTS apexops.stripe_usage_decreases (
	customer_id uuid NOT NULL,
	metric text NOT NULL,
	usage_day date NOT NULL,
	reported bigint NOT NULL,
	recorded bigint NOT NULL,
	first_seen timestamptz NOT NULL DEFAULT clock_timestamp(),
	last_seen timestamptz NOT NULL DEFAULT clock_timestamp(),
	resolved_at timestamptz,
	note text,
	PRIMARY KEY (customer_id, metric, usage_day)
);

COMMENT ON TABLE apexops.stripe_usage_decreases IS
	'usage sync: recorded usage fell below what Stripe was told';
