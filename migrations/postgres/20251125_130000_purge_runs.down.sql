-- The schema apexops stays: other apexops tables live there.
DROP TABLE IF EXISTS apexops.purge_runs;
