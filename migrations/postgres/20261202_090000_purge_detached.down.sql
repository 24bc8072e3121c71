-- Refuse to forget detached tables of expired rows that are still there:
-- run 'apexops purge --execute' first (it drops them), or drop them by
-- hand and delete their rows here.
DO $$
DECLARE
	pending text;
BEGIN
	SELECT string_agg(d.child, ', ' ORDER BY d.child) INTO pending
	FROM apexops.purge_detached d
	JOIN pg_class c ON c.oid = d.relid;
	IF pending IS NOT NULL THEN
		RAISE EXCEPTION 'apexops.purge_detached still records detached tables of expired rows: %', pending
			USING HINT = 'run apexops purge --execute to drop them first';
	END IF;
END
$$;
DROP TABLE IF EXISTS apexops.purge_detached;
