-- apexops.enqueue() as 20261201_100000_queue defined it (ON CONFLICT
-- whether or not a unique key is given).
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
