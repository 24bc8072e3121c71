-- Reverting drops the run ledger; apexops.purge_runs still holds the
-- purge runs recorded before it (later runs are lost with the ledger).
DROP TABLE IF EXISTS apexops.job_runs;
COMMENT ON TABLE apexops.purge_runs IS
	'one row per retention purge run, dry or executed (apexops purge)';
