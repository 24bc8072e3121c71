-- Run records of the retention purge (apexops purge and the 02:30 job).
-- A row is inserted when a run starts (status running) and updated when it
-- ends, so a killed run stays visible; the next run marks it abandoned.
CREATE SCHEMA IF NOT EXISTS apexops;

CREATE TABLE IF NOT EXISTS apexops.purge_runs (
	id bigserial PRIMARY KEY,
	started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	finished_at timestamptz,
	status text NOT NULL DEFAULT 'running'
		CHECK (status IN ('running', 'succeeded', 'stopped', 'failed',
				  'abandoned')),
	mode text NOT NULL CHECK (mode IN ('dry-run', 'execute')),
	trigger text NOT NULL DEFAULT 'manual'
		CHECK (trigger IN ('manual', 'scheduled')),
	os_user text,
	db_user text NOT NULL DEFAULT session_user,
	application_name text,
	client_host text,
	backend_pid integer NOT NULL DEFAULT pg_backend_pid(),
	backend_start timestamptz,
	months integer NOT NULL CHECK (months BETWEEN 1 AND 1200),
	tz text NOT NULL,
	as_of date,
	today date,
	cutoff timestamptz,
	rows_planned bigint,
	rows_deleted bigint,
	null_rows bigint,
	tables jsonb NOT NULL DEFAULT '[]'::jsonb,
	duration_ms bigint,
	error text
);

CREATE INDEX IF NOT EXISTS purge_runs_started_idx
	ON apexops.purge_runs (started_at DESC);
CREATE INDEX IF NOT EXISTS purge_runs_running_idx
	ON apexops.purge_runs (id) WHERE status = 'running';

COMMENT ON TABLE apexops.purge_runs IS
	'one row per retention purge run, dry or executed (apexops purge)';
