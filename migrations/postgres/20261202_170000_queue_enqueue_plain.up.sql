-- apexops.enqueue() without a unique key: a plain INSERT. With ON
-- CONFLICT, PostgreSQL inserts speculatively (a speculative-insertion
-- lock, a probe of the arbiter index, and a second WAL record to confirm
-- the row) whatever the key, though a job with no key can never
-- conflict. The enqueuing transaction's commit is on the path of every
-- job's start (the trickle case of bench/queue). With a key, the
-- behaviour is that of 20261201_100000_queue: a job of the same key that
-- is not finished is returned instead of a new one.
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
	IF enqueue.unique_key IS NULL THEN
		INSERT INTO apexops.queue_jobs AS q (kind, payload, run_at,
						      priority, max_attempts)
		VALUES (enqueue.kind, COALESCE(enqueue.payload, '{}'::jsonb),
			COALESCE(enqueue.run_at, now()),
			COALESCE(enqueue.priority, 0),
			COALESCE(enqueue.max_attempts, 5))
		RETURNING q.id INTO new_id;
		RETURN new_id;
	END IF;
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
