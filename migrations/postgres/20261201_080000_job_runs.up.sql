-- The run ledger of every job: apexops purge, sandbox revenue, and the
-- scheduler's and workers' jobs. A row is inserted when a run starts
-- (status running) and settled when it ends, so a killed run stays
-- visible; a running row whose backend is gone is marked abandoned by the
-- next run of any job. It replaces apexops.purge_runs, which is kept (no
-- longer written) and whose rows are copied here as job usage-purge.
CREATE SCHEMA IF NOT EXISTS apexops;

CREATE TABLE IF NOT EXISTS apexops.job_runs (
	id bigserial PRIMARY KEY,
	job text NOT NULL CHECK (job ~ '^[a-z][a-z0-9-]{0,62}$'),
	trigger text NOT NULL
		CHECK (trigger IN ('manual', 'scheduled', 'catch-up')),
	slot timestamptz,
	attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
	mode text CHECK (mode IN ('execute', 'dry-run')),
	status text NOT NULL DEFAULT 'running'
		CHECK (status IN ('running', 'succeeded', 'partial', 'failed',
				  'stopped', 'abandoned', 'missed',
				  'unavailable')),
	params jsonb NOT NULL DEFAULT '{}'::jsonb,
	counts jsonb NOT NULL DEFAULT '{}'::jsonb,
	error text,
	owner_host text,
	owner_pid integer,
	os_user text,
	db_user text NOT NULL DEFAULT session_user,
	application_name text,
	client_host text,
	backend_pid integer NOT NULL DEFAULT pg_backend_pid(),
	backend_start timestamptz,
	started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	finished_at timestamptz,
	CONSTRAINT job_runs_finished_check
		CHECK ((status = 'running') = (finished_at IS NULL))
);

CREATE INDEX IF NOT EXISTS job_runs_job_started_idx
	ON apexops.job_runs (job, started_at DESC);
CREATE INDEX IF NOT EXISTS job_runs_started_idx
	ON apexops.job_runs (started_at DESC);
CREATE INDEX IF NOT EXISTS job_runs_running_idx
	ON apexops.job_runs (id) WHERE status = 'running';

COMMENT ON TABLE apexops.job_runs IS
	'one row per run of any apexops job (the run ledger)';

-- The purge's earlier history, oldest first so that ids keep its order.
INSERT INTO apexops.job_runs (job, trigger, mode, status, params, counts,
			      error, os_user, db_user, application_name,
			      client_host, backend_pid, backend_start,
			      started_at, updated_at, finished_at)
SELECT 'usage-purge', p.trigger, p.mode, p.status,
       jsonb_strip_nulls(jsonb_build_object(
	       'months', p.months, 'tz', p.tz, 'as_of', p.as_of,
	       'today', p.today, 'cutoff', p.cutoff,
	       'purge_run_id', p.id)),
       jsonb_strip_nulls(jsonb_build_object(
	       'rows_planned', p.rows_planned,
	       'rows_deleted', p.rows_deleted,
	       'null_rows', p.null_rows, 'tables', p.tables)),
       p.error, p.os_user, p.db_user, p.application_name, p.client_host,
       p.backend_pid, p.backend_start, p.started_at,
       COALESCE(p.finished_at, p.started_at), p.finished_at
  FROM apexops.purge_runs p
 WHERE NOT EXISTS (SELECT 1 FROM apexops.job_runs j
		    WHERE j.job = 'usage-purge'
		      AND j.params ->> 'purge_run_id' = p.id::text)
 ORDER BY p.id;

COMMENT ON TABLE apexops.purge_runs IS
	'retention purge runs before the run ledger (apexops.job_runs); no longer written';
