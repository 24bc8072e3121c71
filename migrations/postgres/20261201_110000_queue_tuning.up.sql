-- Cheaper row changes for the claim and the completion, which each
-- update every job once (a burst of 100,000 is 200,000 updates):
-- * kind's format is checked by a domain, that is when kind is written,
--   instead of by a CHECK constraint that PostgreSQL evaluates (a regular
--   expression) on every update of the row, whatever it changes;
-- * finished jobs are found for pruning by a BRIN index on finished_at
--   (rows finish roughly in table order) instead of a B-tree that each
--   completion inserted into;
-- * pages keep room (fillfactor 50) so that a job's new versions stay on
--   its page, where the old ones are pruned.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n
			 ON n.oid = t.typnamespace
			WHERE n.nspname = 'apexops' AND t.typname = 'queue_kind')
	THEN
		CREATE DOMAIN apexops.queue_kind AS text
			CHECK (VALUE ~ '^[a-z][a-z0-9_.-]{0,62}$');
	END IF;
END
$$;
ALTER TABLE apexops.queue_jobs DROP CONSTRAINT IF EXISTS queue_jobs_kind_check;
ALTER TABLE apexops.queue_jobs ALTER COLUMN kind TYPE apexops.queue_kind;
DROP INDEX IF EXISTS apexops.queue_jobs_finished_idx;
CREATE INDEX IF NOT EXISTS queue_jobs_finished_brin
	ON apexops.queue_jobs USING brin (finished_at);
ALTER TABLE apexops.queue_jobs SET (fillfactor = 50);

-- The claim, planned the same whether or not the job table has statistics.
-- A burst just enqueued into a table never analyzed made the planner
-- expect a handful of rows, scan every available job of the kinds and
-- sort them all for each claim (40 ms per claim at 100,000 jobs). Here
-- each kind is read in the claim index's order (kind, priority DESC,
-- run_at, id) up to the limit, the few rows merged, and sorting is
-- disabled inside the function so that no plan sorts the whole backlog
-- (and JIT is off: the cost that disabling adds would trigger it).
-- The completion of the caller's finished jobs (fenced by id, attempt and
-- owner) rides in the same call: one round trip and one commit per batch.
-- It looks the jobs up by id (id = ANY, the primary key) and checks the
-- attempts in a hash of "id.attempt" keys, rather than by a join that a
-- table without statistics plans as a nested loop over every running job;
-- that update is planned for each call's arrays (EXECUTE ... USING),
-- the claim once per session. Its state test is written so that it
-- cannot pick the lease index (state = 'running'), whose entries for
-- finished jobs pile up during a burst: a bitmap scan of it reads them
-- all, where the primary key finds each job at once.
CREATE OR REPLACE FUNCTION apexops.queue_claim(
	p_owner text,
	p_kinds text[],
	p_limit integer,
	p_lease_s integer,
	p_done_ids bigint[] DEFAULT NULL,
	p_done_attempts integer[] DEFAULT NULL)
RETURNS TABLE (j_id bigint, j_kind text, j_payload text, j_attempt integer,
	       j_max_attempts integer)
LANGUAGE plpgsql
SET enable_sort = off
SET jit = off
AS $$
DECLARE
	done_keys text[];
BEGIN
	IF p_done_ids IS NOT NULL AND cardinality(p_done_ids) > 0 THEN
		-- "id.attempt": the fence, looked up in a hash table; EXECUTE
		-- plans the update for these values (constants: id = ANY
		-- through the primary key, the keys hashed), while the claim
		-- below keeps its cached plan
		done_keys := ARRAY(SELECT x.id::text || '.' || x.attempt::text
				     FROM unnest(p_done_ids, p_done_attempts)
					  AS x(id, attempt));
		EXECUTE 'UPDATE apexops.queue_jobs q SET state = ''succeeded'','
			' finished_at = now(), updated_at = now(),'
			' lease_owner = NULL, lease_expires_at = NULL'
			' WHERE q.id = ANY ($1)'
			' AND q.id::text || ''.'' || q.attempt::text = ANY ($2)'
			' AND (q.state = ''running'') IS TRUE'
			' AND q.lease_owner = $3'
			USING p_done_ids, done_keys, p_owner;
	END IF;
	IF p_limit IS NULL OR p_limit <= 0 THEN
		RETURN;
	END IF;
	IF p_kinds IS NULL THEN
		-- any kind: every distinct kind with due jobs, read by a skip
		-- scan of the claim index
		p_kinds := ARRAY(
			WITH RECURSIVE k(kind) AS (
				(SELECT q.kind FROM apexops.queue_jobs q
				  WHERE q.state IN ('available', 'failed-retrying')
				  ORDER BY q.kind LIMIT 1)
				UNION ALL
				SELECT (SELECT q.kind FROM apexops.queue_jobs q
					 WHERE q.kind > k.kind AND q.state IN
					       ('available', 'failed-retrying')
					 ORDER BY q.kind LIMIT 1)
				  FROM k WHERE k.kind IS NOT NULL)
			SELECT k.kind FROM k WHERE k.kind IS NOT NULL);
	END IF;
	-- the batch in claim order (highest priority, then oldest, first):
	-- the worker starts its jobs in the order they come. The update finds
	-- the rows by id = ANY (the primary key): a join with c, once ANALYZE
	-- says the table is large and the batch too, becomes a hash join over
	-- a scan of the whole table (50 ms per claim at 100,000 jobs).
	RETURN QUERY
	WITH c AS (
		SELECT j.id FROM unnest(p_kinds) AS k(kind)
		CROSS JOIN LATERAL (
			SELECT q.id, q.priority, q.run_at
			  FROM apexops.queue_jobs q
			 WHERE q.kind = k.kind
			   AND q.state IN ('available', 'failed-retrying')
			   AND q.run_at <= now()
			 ORDER BY q.priority DESC, q.run_at, q.id
			 LIMIT p_limit
			   FOR UPDATE SKIP LOCKED) j
		ORDER BY j.priority DESC, j.run_at, j.id
		LIMIT p_limit),
	u AS (
		UPDATE apexops.queue_jobs q SET state = 'running',
		       attempt = q.attempt + 1, lease_owner = p_owner,
		       lease_expires_at = now() + p_lease_s * interval '1 s',
		       started_at = now(), updated_at = now()
		 WHERE q.id = ANY (ARRAY(SELECT c.id FROM c))
		RETURNING q.id, q.kind::text AS kind, q.payload::text AS payload,
			  q.attempt, q.max_attempts, q.priority, q.run_at)
	SELECT u.id, u.kind, u.payload, u.attempt, u.max_attempts
	  FROM u ORDER BY u.priority DESC, u.run_at, u.id;
END
$$;
