-- Undo 20261203_090000_queue_handoff: apexops.enqueue() as
-- 20261202_170000_queue_enqueue_plain defined it, the notification of
-- 20261201_100000_queue, and no table of idle workers. Jobs handed to a
-- worker stay theirs: they are ordinary running jobs under a lease.
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

CREATE OR REPLACE FUNCTION apexops.queue_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('apexops_queue', '');
	RETURN NULL;
END
$$;

DROP TABLE IF EXISTS apexops.queue_idle;
