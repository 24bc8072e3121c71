-- Dunning: one case per failed Stripe invoice, and every transition of it.
-- A case is opened from a billing_audit payment_failed row (the webhook
-- intake's) or by reconciliation over Stripe's open invoices; the 03:00
-- job (dunning-retries) pays it on the days of DUNNING_RETRY_DAYS, counted
-- from the first failure in CRON_TZ, and suspends the subscription and the
-- user's API keys after the last attempt fails.
--
-- The intent of attempt n (pending_attempt, pending_key: the Idempotency-Key
-- of POST /v1/invoices/{id}/pay) is committed before the call, so a crash
-- between the call and the commit is resolved on the next run: the invoice
-- is fetched first (paid: recovered), else the same key is replayed.
-- stripe_action is an outbox: a pause or resume of the subscription's
-- collection committed with its transition and sent to Stripe afterwards,
-- retried by later runs until Stripe has it.
CREATE TABLE IF NOT EXISTS apexops.dunning_cases (
	id bigserial PRIMARY KEY,
	invoice_id text NOT NULL UNIQUE
		CHECK (invoice_id ~ '^[A-Za-z0-9_]{1,255}$'),
	stripe_customer_id text,
	customer_id uuid REFERENCES public.users (id) ON DELETE SET NULL,
	stripe_subscription_id text,
	subscription_id uuid REFERENCES public.subscriptions (id) ON DELETE SET NULL,
	amount_due bigint NOT NULL DEFAULT 0,
	currency text NOT NULL DEFAULT 'usd',
	hosted_invoice_url text,
	first_failed_at timestamptz NOT NULL,
	attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	next_attempt_at timestamptz,
	status text NOT NULL DEFAULT 'open'
		CHECK (status IN ('open', 'recovered', 'suspended', 'closed')),
	opened_by text NOT NULL CHECK (opened_by IN ('webhook', 'reconciliation')),
	pending_attempt integer CHECK (pending_attempt >= 1),
	pending_key text,
	pending_since timestamptz,
	stripe_action text CHECK (stripe_action IN ('pause', 'resume')),
	paused boolean NOT NULL DEFAULT false,
	last_decline_code text,
	last_error text,
	stripe_attempt_count integer,
	stripe_next_payment_attempt timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	closed_at timestamptz,
	CHECK ((pending_attempt IS NULL) = (pending_key IS NULL))
);
-- the run's work: open cases by due time, suspended ones (paid outside
-- apexops?), and Stripe actions still to send
CREATE INDEX IF NOT EXISTS dunning_cases_due_idx
	ON apexops.dunning_cases (next_attempt_at) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS dunning_cases_status_idx
	ON apexops.dunning_cases (status);
CREATE INDEX IF NOT EXISTS dunning_cases_customer_idx
	ON apexops.dunning_cases (customer_id);

CREATE TABLE IF NOT EXISTS apexops.dunning_transitions (
	id bigserial PRIMARY KEY,
	case_id bigint NOT NULL REFERENCES apexops.dunning_cases (id) ON DELETE CASCADE,
	at timestamptz NOT NULL,
	kind text NOT NULL CHECK (kind IN ('opened', 'attempt_started',
		'attempt_failed', 'recovered', 'suspended', 'closed',
		'attempt_error', 'stripe_paused', 'stripe_resumed')),
	from_status text,
	to_status text,
	attempt integer,
	idempotency_key text,
	decline_code text,
	detail jsonb NOT NULL DEFAULT '{}'::jsonb,
	run_id bigint
);
CREATE INDEX IF NOT EXISTS dunning_transitions_case_idx
	ON apexops.dunning_transitions (case_id, id);
CREATE INDEX IF NOT EXISTS dunning_transitions_kind_at_idx
	ON apexops.dunning_transitions (kind, at);

COMMENT ON TABLE apexops.dunning_cases IS
	'dunning: one case per failed Stripe invoice (apexops stripe dunning)';
COMMENT ON TABLE apexops.dunning_transitions IS
	'dunning: every transition of a case, with its time (apexops dunning show)';
