-- Direct handoff: a job enqueued while a worker waits idle is leased to
-- that worker by the enqueuing transaction itself and reaches it in the
-- notification, so that it starts without a claim's round trip (the
-- trickle case of bench/queue: enqueue call to handler start).
--
-- A worker that could start a job at once keeps its row here ready
-- (apexops worker; src/jobs/queue_handoff.h). apexops.enqueue() of a
-- job without a unique key and due now takes one ready row of a worker
-- of the job's kind (FOR UPDATE SKIP LOCKED: enqueuers never wait for
-- each other or for a worker), marks it not ready, inserts the job
-- 'running' with attempt 1 under that worker's lease, and notifies the
-- worker's own channel with the job; the worker marks its row ready
-- again when it has room. Everything is in the enqueuing transaction: a
-- rollback leaves no job and the row ready; the notification is
-- delivered at commit. A worker takes its row's advisory lock (the
-- two-key form, class 1634755960, "apex", and the row's id) on the
-- connection it listens on, for as long as it lives: a row whose lock
-- is free belongs to a worker that is gone, and no job is handed to it
-- (workers delete such rows). A row is handed one job and is then not
-- ready until its worker says so: a worker that dies unseen (its
-- backend still holding the lock) is handed at most one job, which its
-- lease returns to the queue like any job a dead worker held. Every
-- other job (a unique key, a later run_at, no ready worker, a job too
-- big to fit a notification) is inserted 'available' and claimed, as
-- before; the claim stays the only way a backlog is worked.
CREATE TABLE IF NOT EXISTS apexops.queue_idle (
	id serial PRIMARY KEY,
	owner text NOT NULL,
	channel text NOT NULL,
	kinds text[] NOT NULL DEFAULT '{}',
	lease_s integer NOT NULL CHECK (lease_s > 0),
	ready boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);

COMMENT ON TABLE apexops.queue_idle IS
	'apexops workers that wait for a job (direct handoff by apexops.enqueue())';

-- The generic notification (every worker claims) is not sent for a job
-- handed to a worker: the enqueue sets apexops.queue_quiet around its
-- insert.
CREATE OR REPLACE FUNCTION apexops.queue_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('apexops.queue_quiet', true) IS DISTINCT FROM 'on'
	THEN
		PERFORM pg_notify('apexops_queue', '');
	END IF;
	RETURN NULL;
END
$$;

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
	w record;
	msg text;
BEGIN
	IF enqueue.unique_key IS NULL THEN
		IF enqueue.run_at IS NULL OR enqueue.run_at <= now() THEN
			-- a ready worker of this kind that is alive (its
			-- advisory lock held, so not ours to take)
			UPDATE apexops.queue_idle i SET ready = false,
			       updated_at = now()
			 WHERE i.id = (
				SELECT x.id FROM apexops.queue_idle x
				 WHERE x.ready AND enqueue.kind = ANY (x.kinds)
				   AND NOT pg_try_advisory_xact_lock_shared(
					   1634755960, x.id)
				 LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING i.id, i.owner, i.channel, i.lease_s INTO w;
			IF FOUND THEN
				new_id := nextval('apexops.queue_jobs_id_seq'::regclass);
				msg := json_build_object(
					'id', new_id, 'kind', enqueue.kind,
					'attempt', 1, 'max_attempts',
					COALESCE(enqueue.max_attempts, 5),
					'payload',
					COALESCE(enqueue.payload,
						 '{}'::jsonb)::text)::text;
				IF octet_length(msg) < 8000 THEN
					PERFORM set_config('apexops.queue_quiet',
							   'on', true);
					INSERT INTO apexops.queue_jobs AS q (
						id, kind, payload, run_at,
						priority, max_attempts, state,
						attempt, lease_owner,
						lease_expires_at, started_at)
					VALUES (new_id, enqueue.kind,
						COALESCE(enqueue.payload,
							 '{}'::jsonb),
						now(),
						COALESCE(enqueue.priority, 0),
						COALESCE(enqueue.max_attempts, 5),
						'running', 1, w.owner,
						now() + w.lease_s * interval '1 s',
						now());
					PERFORM set_config('apexops.queue_quiet',
							   'off', true);
					PERFORM pg_notify(w.channel, msg);
					RETURN new_id;
				END IF;
				-- too big for a notification (8000 bytes): the
				-- worker stays ready, the job is claimed
				UPDATE apexops.queue_idle i SET ready = true
				 WHERE i.id = w.id;
			END IF;
		END IF;
		INSERT INTO apexops.queue_jobs AS q (id, kind, payload, run_at,
						      priority, max_attempts)
		VALUES (COALESCE(new_id,
				 nextval('apexops.queue_jobs_id_seq'::regclass)),
			enqueue.kind, COALESCE(enqueue.payload, '{}'::jsonb),
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
