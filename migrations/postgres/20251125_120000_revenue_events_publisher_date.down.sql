-- Reverts 20251125_120000_revenue_events_publisher_date.
DROP INDEX IF EXISTS public.idx_revenue_events_publisher_date;
