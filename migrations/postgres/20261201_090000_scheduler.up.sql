-- The scheduler's coordination, in the run ledger: a scheduled run is
-- claimed by inserting its (job, slot) row, so exactly one replica runs
-- each slot; the claimer holds a lease that it renews, and a replica that
-- finds a running row whose lease has lapsed takes it over, raising the
-- attempt, which is the fencing token: a completion or renewal names the
-- attempt it holds, so a stale holder's late writes match no row.
-- Lease times are written by the scheduler from its clock (possibly a
-- virtual clock shared by every replica), never from now().
ALTER TABLE apexops.job_runs
	ADD COLUMN IF NOT EXISTS lease_owner text,
	ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz,
	ADD COLUMN IF NOT EXISTS takeovers integer NOT NULL DEFAULT 0;

CREATE UNIQUE INDEX IF NOT EXISTS job_runs_job_slot_key
	ON apexops.job_runs (job, slot) WHERE slot IS NOT NULL;
CREATE INDEX IF NOT EXISTS job_runs_leased_idx
	ON apexops.job_runs (job, lease_expires_at)
	WHERE status = 'running' AND lease_owner IS NOT NULL;

-- The scheduler processes seen, for `apexops status` ("replicas seen in
-- the last minute") and the metrics.
CREATE TABLE IF NOT EXISTS apexops.cron_replicas (
	replica text PRIMARY KEY,
	host text NOT NULL,
	pid integer NOT NULL,
	version text NOT NULL,
	clock text NOT NULL,
	started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	seen_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE apexops.cron_replicas IS
	'apexops cron processes and when each was last seen';
