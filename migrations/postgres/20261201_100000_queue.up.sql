-- The job queue: apexops's workers claim jobs from here, so a job can be
-- enqueued in the same transaction as the change that causes it (the
-- platform's API server calls apexops.enqueue() inside its own
-- transaction; a rollback leaves no job). Claimed with FOR UPDATE SKIP
-- LOCKED; a claim holds a lease (owner, expiry) that the worker renews;
-- the attempt fences completion. Every attempt's error is kept.
CREATE TABLE IF NOT EXISTS apexops.queue_jobs (
	id bigserial PRIMARY KEY,
	kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.-]{0,62}$'),
	payload jsonb NOT NULL DEFAULT '{}'::jsonb,
	state text NOT NULL DEFAULT 'available'
		CHECK (state IN ('available', 'running', 'succeeded',
				 'failed-retrying', 'dead', 'cancelled')),
	priority integer NOT NULL DEFAULT 0,
	run_at timestamptz NOT NULL DEFAULT now(),
	attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
	max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
	lease_owner text,
	lease_expires_at timestamptz,
	last_error text,
	errors jsonb NOT NULL DEFAULT '[]'::jsonb,
	unique_key text,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	started_at timestamptz,
	finished_at timestamptz
);

-- the claim: available (or due for a retry) jobs by priority, then age
CREATE INDEX IF NOT EXISTS queue_jobs_claim_idx
	ON apexops.queue_jobs (kind, priority DESC, run_at, id)
	WHERE state IN ('available', 'failed-retrying');
CREATE INDEX IF NOT EXISTS queue_jobs_lease_idx
	ON apexops.queue_jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS queue_jobs_finished_idx
	ON apexops.queue_jobs (finished_at)
	WHERE state IN ('succeeded', 'dead', 'cancelled');
-- a unique key refuses a second job while the first is not finished
CREATE UNIQUE INDEX IF NOT EXISTS queue_jobs_unique_key
	ON apexops.queue_jobs (unique_key)
	WHERE unique_key IS NOT NULL
	  AND state IN ('available', 'running', 'failed-retrying');

COMMENT ON TABLE apexops.queue_jobs IS
	'the apexops job queue (apexops worker); enqueue with apexops.enqueue()';

-- Wake idle workers: one notification per enqueueing transaction
-- (PostgreSQL folds identical notifications of a transaction into one).
CREATE OR REPLACE FUNCTION apexops.queue_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('apexops_queue', '');
	RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS queue_jobs_notify ON apexops.queue_jobs;
CREATE TRIGGER queue_jobs_notify
	AFTER INSERT ON apexops.queue_jobs
	FOR EACH STATEMENT EXECUTE FUNCTION apexops.queue_notify();

-- Enqueue one job; returns its id. With a unique_key, a job of the same
-- key that is not finished is returned instead of a new one.
CREATE OR REPLACE FUNCTION apexops.enqueue(
	kind text,
	payload jsonb DEFAULT '{}'::jsonb,
	run_at timestamptz DEFAULT NULL,
	priority integer DEFAULT 0,
	max_attempts integer DEFAULT 5,
	unique_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	new_id bigint;
BEGIN
	INSERT INTO apexops.queue_jobs AS q (kind, payload, run_at, priority,
					      max_attempts, unique_key)
	VALUES (enqueue.kind, COALESCE(enqueue.payload, '{}'::jsonb),
		COALESCE(enqueue.run_at, now()), COALESCE(enqueue.priority, 0),
		COALESCE(enqueue.max_attempts, 5), enqueue.unique_key)
	ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL
		AND state IN ('available', 'running', 'failed-retrying')
	DO NOTHING
	RETURNING q.id INTO new_id;
	IF new_id IS NULL THEN
		SELECT q.id INTO new_id FROM apexops.queue_jobs q
		 WHERE q.unique_key = enqueue.unique_key
		   AND q.state IN ('available', 'running', 'failed-retrying');
	END IF;
	RETURN new_id;
END
$$;

-- Enqueue many jobs of one kind in one statement: one job per element
-- of payloads; returns the ids in order.
CREATE OR REPLACE FUNCTION apexops.enqueue_bulk(
	kind text,
	payloads jsonb[],
	run_at timestamptz DEFAULT NULL,
	priority integer DEFAULT 0,
	max_attempts integer DEFAULT 5)
RETURNS SETOF bigint
LANGUAGE sql AS $$
	INSERT INTO apexops.queue_jobs (kind, payload, run_at, priority,
					max_attempts)
	SELECT enqueue_bulk.kind, COALESCE(p, '{}'::jsonb),
	       COALESCE(enqueue_bulk.run_at, now()),
	       COALESCE(enqueue_bulk.priority, 0),
	       COALESCE(enqueue_bulk.max_attempts, 5)
	  FROM unnest(enqueue_bulk.payloads) WITH ORDINALITY AS t(p, o)
	 ORDER BY o
	RETURNING id
$$;
