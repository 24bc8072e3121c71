DROP TABLE IF EXISTS apexops.cron_replicas;
DROP INDEX IF EXISTS apexops.job_runs_leased_idx;
DROP INDEX IF EXISTS apexops.job_runs_job_slot_key;
ALTER TABLE apexops.job_runs
	DROP COLUMN IF EXISTS takeovers,
	DROP COLUMN IF EXISTS lease_expires_at,
	DROP COLUMN IF EXISTS lease_owner;
