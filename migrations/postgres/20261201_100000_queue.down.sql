DROP FUNCTION IF EXISTS apexops.enqueue_bulk(text, jsonb[], timestamptz, integer, integer);
DROP FUNCTION IF EXISTS apexops.enqueue(text, jsonb, timestamptz, integer, integer, text);
DROP TABLE IF EXISTS apexops.queue_jobs;
DROP FUNCTION IF EXISTS apexops.queue_notify();
