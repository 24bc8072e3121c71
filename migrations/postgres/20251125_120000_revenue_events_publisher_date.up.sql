-- An index for `apexops sandbox revenue`, whose delete is
--   DELETE FROM revenue_events WHERE publisher_id = $1
--     AND event_date BETWEEN $2 AND $3
-- The original had no index on revenue_events but its primary key, so that
-- delete scanned the whole table (ORIGINAL-SYSTEM.md §2.10). The same index
-- serves per-publisher revenue reports by date.
-- Not CONCURRENTLY: migrations run in one transaction. The name is new to
-- apexops (no Apex database has it), so the down migration may drop it.
CREATE INDEX IF NOT EXISTS idx_revenue_events_publisher_date
	ON public.revenue_events (publisher_id, event_date);
