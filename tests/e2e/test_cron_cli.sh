#!/usr/bin/env bash
# apexops cron list|run|history, as an operator runs them: the job table,
# a job run now through the scheduler's path (configuration, not flags),
# privacy-expiry run by hand, the lock refusal
# naming its holder, and the history in text and JSON.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$ROOT/migrations/postgres"
unset CRON_TZ

jget() {
	psql -X -At -v ON_ERROR_STOP=1 -v j="$1" -v p="$2" "$OPS_TEST_ADMIN_URL" \
		<<<"SELECT (:'j'::jsonb) #>> (:'p')::text[]"
}

url=$(new_db cron)
export DATABASE_URL=$url
sql "$url" "ALTER TABLE usage_events DROP CONSTRAINT IF EXISTS usage_events_customer_id_fkey" >/dev/null

run_ops cron list --json
expect_rc 0 "cron list --json"
assert_eq "the original's four scheduled jobs in its order, then queue-prune" \
	"stripe-usage-sync 0 2 * * *,usage-purge 30 2 * * *,dunning-retries 0 3 * * *,privacy-expiry 0 4 * * *,queue-prune 15 4 * * *" \
	"$(jget "$OUT" '{}' | psql -X -At "$OPS_TEST_ADMIN_URL" -v j="$OUT" \
		<<<"SELECT string_agg((e->>'job') || ' ' || (e->>'schedule'), ',' ORDER BY o) FROM jsonb_array_elements(:'j'::jsonb) WITH ORDINALITY AS t(e, o) WHERE (e->>'scheduled')::bool")"
run_ops cron list
assert_contains "cron list text names the purge" "$OUT" "usage-purge        30 2 * * *"

# rows 1..30 months old: the scheduled purge keeps USAGE_RETENTION_MONTHS
sql "$url" "INSERT INTO usage_events (customer_id, event_name, event_value, created_at)
	SELECT gen_random_uuid(), 'api_calls', 1, now() - g * interval '1 month' - interval '1 day'
	FROM generate_series(1, 30) g" >/dev/null
keep() { # rows a purge to $1 months in UTC keeps (PostgreSQL clamps month ends too)
	sql "$url" "SELECT count(*) FROM usage_events WHERE created_at >=
		(date_trunc('day', now() AT TIME ZONE 'UTC') - interval '$1 months') AT TIME ZONE 'UTC'"
}
want6=$(keep 6) want24=$(keep 24)
[ "$want6" != "$want24" ] && ok "the seed tells 6 from 24 months" || not_ok "the seed tells 6 from 24 months"
USAGE_RETENTION_MONTHS=6 RETENTION_MONTHS=24 run_ops cron run usage-purge
expect_rc 0 "cron run usage-purge"
assert_contains "it says how the run ended" "$OUT" "succeeded"
assert_eq "USAGE_RETENTION_MONTHS, not RETENTION_MONTHS, decides" "$want6" \
	"$(sql "$url" "SELECT count(*) FROM usage_events")"
assert_eq "recorded as a manual executing run" "usage-purge manual execute succeeded" \
	"$(sql "$url" "SELECT job || ' ' || trigger || ' ' || mode || ' ' || status FROM apexops.job_runs ORDER BY id DESC LIMIT 1")"

# every job is built now (a job not built yet is refused and recorded
# unavailable: tests/integration/test_jobs.c); privacy-expiry with nothing
# due succeeds
run_ops cron run privacy-expiry
expect_rc 0 "cron run privacy-expiry with nothing to expire"
assert_eq "its run is recorded" "succeeded" \
	"$(sql "$url" "SELECT status FROM apexops.job_runs WHERE job = 'privacy-expiry'")"

run_ops cron run no-such-job
expect_rc 64 "an unknown job is a usage error"
run_ops cron run
expect_rc 64 "no job is a usage error"
run_ops cron run usage-purge --j
expect_rc 64 "abbreviated options are refused"
assert_contains "naming the full option" "$ERR" "--json"

# the job's lock held by another session: exit 75 naming the holder
run_ops cron list --json
key=$(psql -X -At "$OPS_TEST_ADMIN_URL" -v j="$OUT" <<<"SELECT e->>'lock_key' FROM jsonb_array_elements(:'j'::jsonb) e WHERE e->>'job' = 'usage-purge'")
psql -X -q "$url" -c "SELECT pg_advisory_lock($key)" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
locker=$!
if wait_for "$url" "SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = $key"; then
	ok "another session holds the purge lock"
else
	not_ok "another session holds the purge lock"
fi
before=$(sql "$url" "SELECT count(*) FROM apexops.job_runs")
run_ops cron run usage-purge
expect_rc 75 "cron run while the job runs elsewhere exits 75"
assert_contains "and names the holder" "$ERR" "another purge is running (job usage-purge, backend pid"
assert_eq "a refused run leaves no record" "$before" "$(sql "$url" "SELECT count(*) FROM apexops.job_runs")"
sql "$url" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$locker" 2>/dev/null

run_ops cron history --json
expect_rc 0 "cron history --json"
assert_eq "newest first, with the contract's fields" "privacy-expiry succeeded manual 1 true true" \
	"$(psql -X -At "$OPS_TEST_ADMIN_URL" -v j="$OUT" <<<"SELECT (e->>'job') || ' ' || (e->>'status') || ' ' || (e->>'trigger') || ' ' || (e->>'attempt') || ' ' || (e ? 'slot')::text || ' ' || (e->>'owner' LIKE '%:%')::text FROM jsonb_array_elements(:'j'::jsonb) e LIMIT 1")"
run_ops cron history usage-purge --failed
expect_rc 0 "cron history JOB --failed"
assert_eq "no failed purge: only the header" 1 "$(printf '%s\n' "$OUT" | wc -l)"
run_ops cron history --limit 1
assert_eq "--limit 1: header and one run" 2 "$(printf '%s\n' "$OUT" | wc -l)"
run_ops cron history --limit 0
expect_rc 64 "--limit 0 is a usage error"
run_ops cron history nope
expect_rc 64 "history of an unknown job is a usage error"
run_ops cron bogus
expect_rc 64 "an unknown cron subcommand is a usage error"
done_testing
