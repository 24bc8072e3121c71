-- Expired partitions that a purge has detached and not yet dropped.
--
-- A purge takes every expired month out of its table within the second
-- (DETACH PARTITION, CONCURRENTLY where allowed), then drops the detached
-- tables one at a time with a pause between them: freeing a month's files
-- at once stalls live writers' fsyncs (docs/partitioning.md). This table
-- is what keeps a crash, a stop or a lock between the two steps from
-- stranding expired rows in a table nobody looks at: the row is committed
-- with (or, for DETACH ... CONCURRENTLY, just before) the detach and
-- deleted in the DROP's own transaction. Every purge run starts with the
-- recorded tables of its policy tables, and the plan lists them.
--
-- relid and child together name the table: a row whose oid no longer
-- carries that name (dropped, renamed) is forgotten, and one whose table
-- is a partition again (the detach did not happen) too.
CREATE TABLE IF NOT EXISTS apexops.purge_detached (
	relid oid PRIMARY KEY,
	child text NOT NULL,		-- schema.table, quoted as format('%I.%I')
	parent_relid oid NOT NULL,	-- the partitioned table it was detached from
	parent text NOT NULL,		-- its name then, likewise
	run_id bigint,			-- apexops.job_runs.id of the detaching run
	detached_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS purge_detached_parent
	ON apexops.purge_detached (parent_relid);
