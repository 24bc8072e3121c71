DROP FUNCTION IF EXISTS apexops.queue_claim(text, text[], integer, integer, bigint[], integer[]);
ALTER TABLE apexops.queue_jobs RESET (fillfactor);
DROP INDEX IF EXISTS apexops.queue_jobs_finished_brin;
CREATE INDEX IF NOT EXISTS queue_jobs_finished_idx
	ON apexops.queue_jobs (finished_at)
	WHERE state IN ('succeeded', 'dead', 'cancelled');
ALTER TABLE apexops.queue_jobs ALTER COLUMN kind TYPE text;
ALTER TABLE apexops.queue_jobs DROP CONSTRAINT IF EXISTS queue_jobs_kind_check;
ALTER TABLE apexops.queue_jobs ADD CONSTRAINT queue_jobs_kind_check
	CHECK (kind ~ '^[a-z][a-z0-9_.-]{0,62}$');
DROP DOMAIN IF EXISTS apexops.queue_kind;
