#!/usr/bin/env bash
# apexops worker and apexops queue, as an operator runs them: enqueue in a
# transaction that rolls back (no job), four workers with four handlers on
# 10,000 jobs (each executed and completed exactly once: the noop handler
# records every execution), a worker SIGKILLed mid-job (retried once after
# its lease), a job that fails twice then succeeds, one that always fails
# (dead, every error kept), a permanent failure, a unique key under
# concurrent enqueue, a graceful stop with a job running, the database
# going away and the server restarting, /healthz and /metrics, and the
# queue subcommands with their refusals.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$ROOT/migrations/postgres"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
wait_exit() {
	for _ in $(seq 1 600); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	wait "$1"
	RC=$?
}
U=$(new_db worker)
export DATABASE_URL=$U
export APEXOPS_TEST_NOOP_LOG="$E2E_TMP/noop.log"
q() { sql "$U" "$1"; }

# ---- enqueue inside the platform's transaction -----------------------------
psql -X -q "$U" -c "BEGIN" -c "SELECT apexops.enqueue('noop', '{}')" -c "ROLLBACK" >/dev/null
assert_eq "a job enqueued in a transaction that rolls back does not exist" 0 "$(q "SELECT count(*) FROM apexops.queue_jobs")"
psql -X -q "$U" -c "BEGIN" -c "SELECT apexops.enqueue('noop', '{}')" -c "COMMIT" >/dev/null
assert_eq "committed, it does" 1 "$(q "SELECT count(*) FROM apexops.queue_jobs")"
q "DELETE FROM apexops.queue_jobs" >/dev/null

# ---- a unique key under concurrent enqueue --------------------------------
for i in $(seq 1 20); do
	psql -X -At "$U" -c "SELECT apexops.enqueue('noop', '{}', unique_key => 'export:42')" >"$E2E_TMP/uk$i" 2>&1 &
done
wait
assert_eq "20 concurrent enqueues of one unique key make one job" 1 \
	"$(q "SELECT count(*) FROM apexops.queue_jobs WHERE unique_key = 'export:42'")"
assert_eq "and every caller got its id" 1 "$(cat "$E2E_TMP"/uk* | sort -u | wc -l)"
q "DELETE FROM apexops.queue_jobs" >/dev/null

# ---- four workers x four handlers on 10,000 jobs --------------------------
# the workers first, then the jobs: all four are listening when the one
# notification comes (started after a backlog, the first to connect may
# claim it all: each holds what its handlers finish in two round trips, and
# no-op jobs finish at once)
: >"$APEXOPS_TEST_NOOP_LOG"
for n in 1 2 3 4; do
	"$APEXOPS_BIN" worker --concurrency 4 --exit-when-idle 4000 >"$E2E_TMP/w$n.log" 2>&1 &
	PIDS+=($!)
done
# each opens its second connection (the completer's) after it LISTENs
for _ in $(seq 1 100); do
	[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name <> 'psql'")" -ge 8 ] && break
	sleep 0.05
done
run_ops queue enqueue noop --count 10000
expect_rc 0 "10,000 jobs enqueued in one statement"
for p in "${PIDS[@]}"; do wait_exit "$p"; done
PIDS=()
assert_eq "every job succeeded" "10000" "$(q "SELECT count(*) FROM apexops.queue_jobs WHERE state = 'succeeded'")"
assert_eq "each on its first attempt" 0 "$(q "SELECT count(*) FROM apexops.queue_jobs WHERE attempt <> 1")"
assert_eq "executed exactly once each (10,000 starts, 10,000 distinct ids)" "10000 10000" \
	"$(grep -c '^start ' "$APEXOPS_TEST_NOOP_LOG") $(grep '^start ' "$APEXOPS_TEST_NOOP_LOG" | cut -d' ' -f2 | sort -u | wc -l)"
assert_eq "the four workers shared the work" 4 "$(grep -l 'claimed=[1-9]' "$E2E_TMP"/w*.log | wc -l)"

# ---- SIGKILL mid-job: retried once after the lease ------------------------
export APEXOPS_WORKER_LEASE_S=5
q "DELETE FROM apexops.queue_jobs" >/dev/null
: >"$APEXOPS_TEST_NOOP_LOG"
run_ops queue enqueue noop --payload '{"sleep_ms": 60000}'
id=${OUT#job }
"$APEXOPS_BIN" worker --concurrency 1 >"$E2E_TMP/victim.log" 2>&1 &
V=$!
PIDS+=($V)
wait_for "$U" "SELECT count(*)::int FROM apexops.queue_jobs WHERE id = $id AND state = 'running'" &&
	ok "the long job is running" || not_ok "the long job is running"
kill -9 "$V"
wait "$V" 2>/dev/null
q "UPDATE apexops.queue_jobs SET payload = '{\"sleep_ms\": 10}' WHERE id = $id" >/dev/null
"$APEXOPS_BIN" worker --concurrency 1 --exit-when-idle 8000 >"$E2E_TMP/rescuer.log" 2>&1 &
R=$!
PIDS+=($R)
wait_for "$U" "SELECT count(*)::int FROM apexops.queue_jobs WHERE id = $id AND state = 'succeeded'" &&
	ok "after the lease lapsed another worker ran it" || not_ok "after the lease lapsed another worker ran it"
assert_eq "on attempt 2, the first one's lapse recorded" "2 the lease of" \
	"$(q "SELECT attempt || ' ' || left(errors->0->>'error', 12) FROM apexops.queue_jobs WHERE id = $id")"
assert_eq "two executions started, one finished" "2 1" \
	"$(grep -c "^start $id " "$APEXOPS_TEST_NOOP_LOG") $(grep -c "^done $id " "$APEXOPS_TEST_NOOP_LOG")"
kill -TERM "$R"
wait_exit "$R"

# ---- failing handlers --------------------------------------------------------
q "DELETE FROM apexops.queue_jobs" >/dev/null
run_ops queue enqueue noop --payload '{"fail_attempts": 2}'
flaky=${OUT#job }
run_ops queue enqueue noop --payload '{"fail_attempts": 99}' --max-attempts 3
doomed=${OUT#job }
run_ops queue enqueue noop --payload '{"fail_attempts": 99, "permanent": true}'
perm=${OUT#job }
"$APEXOPS_BIN" worker --concurrency 2 >"$E2E_TMP/fail.log" 2>&1 &
F=$!
PIDS+=($F)
wait_for "$U" "SELECT (count(*) = 3)::int FROM apexops.queue_jobs WHERE state IN ('succeeded', 'dead')" &&
	ok "the failing jobs reached an end" || not_ok "the failing jobs reached an end"
kill -TERM "$F"
wait_exit "$F"
assert_eq "failed twice, then succeeded on attempt 3" "succeeded 3 2" \
	"$(q "SELECT state || ' ' || attempt || ' ' || jsonb_array_length(errors) FROM apexops.queue_jobs WHERE id = $flaky")"
assert_eq "always failing: dead after max_attempts with every error" "dead 3 3" \
	"$(q "SELECT state || ' ' || attempt || ' ' || jsonb_array_length(errors) FROM apexops.queue_jobs WHERE id = $doomed")"
assert_eq "a permanent error: dead at once" "dead 1" \
	"$(q "SELECT state || ' ' || attempt FROM apexops.queue_jobs WHERE id = $perm")"
assert_eq "a dead job keeps its last attempt's run_at (not a retry time after it)" "t t" \
	"$(q "SELECT bool_and(run_at <= finished_at) FROM apexops.queue_jobs WHERE id IN ($doomed, $perm)") $(q "SELECT run_at <= (errors->-1->>'at')::timestamptz FROM apexops.queue_jobs WHERE id = $doomed")"
run_ops queue show "$doomed"
assert_contains "queue show lists each attempt's error" "$OUT" "failing attempt 3 of the first 99"
run_ops queue list --state dead --json
assert_contains "queue list --state dead" "$OUT" "\"id\": $doomed"
run_ops queue stats --json
assert_eq "queue stats: an object keyed by kind, then state" 2 \
	"$(psql -X -At "$OPS_TEST_ADMIN_URL" -v j="$OUT" <<<"SELECT (:'j'::jsonb)->'noop'->'dead'->>'count'")"
run_ops queue retry --dead
expect_rc 0 "queue retry --dead"
assert_eq "the dead jobs are available again with attempts reset" "2" \
	"$(q "SELECT count(*) FROM apexops.queue_jobs WHERE state = 'available' AND attempt = 0")"
run_ops queue cancel "$doomed"
expect_rc 0 "queue cancel of an available job"
run_ops queue cancel "$flaky"
expect_rc 1 "queue cancel of a finished job is refused"
run_ops queue show 999999
expect_rc 1 "queue show of a job that does not exist"
run_ops queue show abc
expect_rc 64 "queue show of a non-number"
run_ops queue list --state nonsense
expect_rc 64 "an unknown state is a usage error"
run_ops queue enqueue noop --payload 'not json'
expect_rc 64 "a payload that is not a JSON object is refused"
for bad in "Bad Kind" "" "9lives" "k;drop"; do
	run_ops queue enqueue "$bad"
	expect_rc 64 "queue enqueue of the kind '$bad' is a usage error"
	run_ops queue list --kind "$bad"
	expect_rc 64 "queue list --kind '$bad' is a usage error"
done
assert_contains "saying what a kind may be" "$ERR" "a lowercase letter, then up to 62 of a-z, 0-9"
run_ops queue enqueue mystery
expect_rc 0 "a kind no handler of this binary has is enqueued (a newer worker may have one)"
assert_contains "with a warning that it waits for such a worker" "$ERR" "no handler for this kind in this apexops"
q "DELETE FROM apexops.queue_jobs WHERE kind = 'mystery'" >/dev/null
run_ops worker --kinds mystery
expect_rc 64 "a kind this worker does not handle is refused"

# ---- graceful stop with a job running -----------------------------------
q "DELETE FROM apexops.queue_jobs" >/dev/null
run_ops queue enqueue noop --payload '{"sleep_ms": 3000}'
slow=${OUT#job }
run_ops queue enqueue noop --count 50 --payload '{"sleep_ms": 3000}'
APEXOPS_WORKER_GRACE_S=60 "$APEXOPS_BIN" worker --concurrency 1 >"$E2E_TMP/grace.log" 2>&1 &
G=$!
PIDS+=($G)
wait_for "$U" "SELECT count(*)::int FROM apexops.queue_jobs WHERE id = $slow AND state = 'running'" ||
	not_ok "the slow job started"
kill -TERM "$G"
wait_exit "$G"
expect_rc 0 "after SIGTERM the worker exits 0"
assert_eq "the running job finished first" "succeeded" "$(q "SELECT state FROM apexops.queue_jobs WHERE id = $slow")"
assert_eq "the prefetched ones were given back, not failed" "50 0" \
	"$(q "SELECT count(*) FILTER (WHERE state = 'available') || ' ' || count(*) FILTER (WHERE state NOT IN ('available', 'succeeded')) FROM apexops.queue_jobs WHERE id <> $slow")"

# ---- /healthz and /metrics ----------------------------------------------------
free_port() {
	local p=$1
	while (echo >/dev/tcp/127.0.0.1/"$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
# metric NAME{LABELS}: its value on /metrics, empty when absent
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
# wait_metric NAME{LABELS} AWK-CONDITION-ON-v: until it holds, at most 30 s
wait_metric() {
	for _ in $(seq 1 300); do
		v=$(metric "$1")
		[ -n "$v" ] && awk -v v="$v" "BEGIN { exit !($2) }" && return 0
		sleep 0.1
	done
	return 1
}
q "DELETE FROM apexops.queue_jobs" >/dev/null
# three due jobs of a kind no worker here handles: the depth and the
# oldest's age (two minutes) stay put while noop jobs come and go
q "SELECT apexops.enqueue('other.kind', '{}', now() - interval '2 minutes') FROM generate_series(1, 3)" >/dev/null
q "SELECT apexops.enqueue('noop', '{}', now() - interval '30 seconds')" >/dev/null
run_ops status
assert_contains "status names a kind whose due jobs wait over a minute" "$OUT" \
	"  waiting      other.kind: 3 due over 60 s, the oldest 12"
assert_eq "and only that kind (a job due for 30 s is not waiting long)" 1 "$(grep -c '^  waiting ' <<<"$OUT")"
q "DELETE FROM apexops.queue_jobs WHERE kind = 'noop'" >/dev/null
PORT=$(free_port 19287)
"$APEXOPS_BIN" worker --concurrency 2 --http "127.0.0.1:$PORT" >"$E2E_TMP/metrics.log" 2>&1 &
M=$!
PIDS+=($M)
wait_metric 'apexops_queue_depth' 'v == 3' && ok "/metrics: the queue depth counts the due jobs" ||
	not_ok "/metrics: the queue depth counts the due jobs ($(metric apexops_queue_depth))"
assert_eq "/metrics: unfinished jobs by kind and state" 3 "$(metric 'apexops_queue_jobs{kind="other.kind",state="available"}')"
wait_metric 'apexops_queue_oldest_available_age_seconds' 'v >= 119' && ok "/metrics: the oldest due job's age" ||
	not_ok "/metrics: the oldest due job's age ($(metric apexops_queue_oldest_available_age_seconds))"
assert_eq "/healthz answers 200" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")"
run_ops queue enqueue noop --count 20
wait_metric 'apexops_worker_jobs_total{kind="noop",status="succeeded"}' 'v == 20' &&
	ok "/metrics: jobs by kind and outcome move as jobs run" || not_ok "/metrics: jobs by kind and outcome move as jobs run"
run_ops queue enqueue noop --payload '{"fail_attempts": 9}' --max-attempts 1
wait_metric 'apexops_worker_jobs_total{kind="noop",status="dead"}' 'v == 1' &&
	ok "/metrics: a dead job counts as dead" || not_ok "/metrics: a dead job counts as dead"
assert_eq "/metrics: a handler duration histogram per kind, every run in it" "21 21" \
	"$(metric 'apexops_worker_handler_duration_seconds_count{kind="noop"}') $(metric 'apexops_worker_handler_duration_seconds_bucket{kind="noop",le="+Inf"}')"
wait_metric 'apexops_worker_claimed_jobs_total' 'v >= 20' && ok "/metrics: claimed jobs" || not_ok "/metrics: claimed jobs"
assert_eq "/metrics: every job claimed or handed, once" 21 \
	"$(($(metric 'apexops_worker_claimed_jobs_total') + $(metric 'apexops_worker_handed_jobs_total')))"
claims=$(metric 'apexops_worker_claim_duration_seconds_count')
assert_eq "/metrics: claim latency, a histogram of the round trips" 1 \
	"$(awk -v c="$claims" -v i="$(metric 'apexops_worker_claim_duration_seconds_bucket{le="+Inf"}')" 'BEGIN { print (c >= 1 && c == i) ? 1 : 0 }')"
assert_contains "/metrics: the families are typed" "$(curl -s "http://127.0.0.1:$PORT/metrics")" \
	"# TYPE apexops_worker_handler_duration_seconds histogram"
run_ops worker --http "127.0.0.1:$PORT" --exit-when-idle 2000
expect_rc 78 "a second worker on the metrics worker's port exits 78"
assert_contains "saying the address is in use, in apexops's words" "$ERR" \
	"HTTP address '127.0.0.1:$PORT' (--http, APEXOPS_HTTP_ADDR): cannot listen there: Address already in use"
assert_not_contains "and not libmicrohttpd's own 'port 0' line" "$ERR" "port 0"
kill -TERM "$M"
wait_exit "$M"
expect_rc 0 "the metrics worker stops cleanly"
for bad in nonsense 127.0.0.1:0 127.0.0.1:65536 localhost:9187 '[::1]'; do
	run_ops worker --http "$bad"
	expect_rc 64 "worker --http '$bad' is a usage error"
	assert_contains "worker --http '$bad': what is allowed" "$ERR" \
		"--http '$bad': expected HOST:PORT with a numeric address and a port from 1 to 65535"
done
APEXOPS_HTTP_ADDR=nonsense run_ops worker --exit-when-idle 2000
expect_rc 78 "APEXOPS_HTTP_ADDR=nonsense is a configuration error"
assert_contains "naming the variable" "$ERR" "APEXOPS_HTTP_ADDR 'nonsense': expected HOST:PORT"

# ---- direct handoff ------------------------------------------------------------
# an idle worker's row is ready; apexops.enqueue() leases the job to it and
# sends it in the notification: no claim
q "DELETE FROM apexops.queue_jobs" >/dev/null
: >"$APEXOPS_TEST_NOOP_LOG"
ready_sql="SELECT count(*)::int FROM apexops.queue_idle WHERE ready AND 'noop' = ANY (kinds)"
PORT=$(free_port 19387)
"$APEXOPS_BIN" worker --concurrency 2 --http "127.0.0.1:$PORT" >"$E2E_TMP/handoff.log" 2>&1 &
H=$!
PIDS+=($H)
wait_for "$U" "$ready_sql" && ok "an idle worker waits for a handoff" || not_ok "an idle worker waits for a handoff"
for i in 1 2 3 4 5; do
	wait_for "$U" "$ready_sql" >/dev/null
	run_ops queue enqueue noop
	wait_for "$U" "SELECT (count(*) = $i)::int FROM apexops.queue_jobs WHERE state = 'succeeded'" >/dev/null
done
assert_eq "five jobs enqueued one by one: all handed, none claimed" "5 0" \
	"$(metric 'apexops_worker_handed_jobs_total') $(metric 'apexops_worker_claimed_jobs_total')"
assert_eq "each succeeded on attempt 1, started in its enqueuing transaction" 5 \
	"$(q "SELECT count(*) FROM apexops.queue_jobs WHERE state = 'succeeded' AND attempt = 1 AND started_at = created_at")"
assert_eq "each executed once" "5 5" \
	"$(grep -c '^start ' "$APEXOPS_TEST_NOOP_LOG") $(grep '^start ' "$APEXOPS_TEST_NOOP_LOG" | cut -d' ' -f2 | sort -u | wc -l)"
# the platform's transaction holds the worker's row when SIGTERM comes: the
# worker waits for it, and gives the handed job back
wait_for "$U" "$ready_sql" >/dev/null
psql -X -q "$U" -c "BEGIN" -c "SELECT apexops.enqueue('noop', '{\"late\": 1}')" -c "SELECT pg_sleep(1.5)" -c "COMMIT" >/dev/null &
T=$!
wait_for "$U" "SELECT count(*)::int FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1.5)%' AND state = 'active' AND pid <> pg_backend_pid()" >/dev/null
kill -TERM "$H"
wait_exit "$H"
expect_rc 0 "SIGTERM while an enqueuer holds the worker's row: exit 0"
wait "$T"
assert_eq "the job handed as it stopped is given back, never started" "available 0 " \
	"$(q "SELECT state || ' ' || attempt || ' ' || COALESCE(lease_owner, '') FROM apexops.queue_jobs WHERE payload ? 'late'")"
assert_eq "and its row is gone" 0 "$(q "SELECT count(*) FROM apexops.queue_idle")"
# SIGKILL of an idle worker: its lock goes with its session, nothing is
# handed to it, the next worker deletes its row
q "DELETE FROM apexops.queue_jobs" >/dev/null
"$APEXOPS_BIN" worker --concurrency 1 >"$E2E_TMP/handoff-kill.log" 2>&1 &
K=$!
PIDS+=($K)
wait_for "$U" "$ready_sql" >/dev/null
kill -9 "$K"
wait "$K" 2>/dev/null
wait_for "$U" "SELECT (count(*) = 0)::int FROM pg_locks WHERE locktype = 'advisory' AND classid = 1634755960" >/dev/null
run_ops queue enqueue noop
assert_eq "a job enqueued after an idle worker was killed is not handed to it" "available 0" \
	"$(q "SELECT state || ' ' || attempt FROM apexops.queue_jobs")"
"$APEXOPS_BIN" worker --concurrency 1 --exit-when-idle 3000 >"$E2E_TMP/handoff-next.log" 2>&1 &
K=$!
PIDS+=($K)
wait_exit "$K"
assert_eq "the next worker ran it" "succeeded 1" "$(q "SELECT state || ' ' || attempt FROM apexops.queue_jobs")"
assert_contains "and deleted the dead worker's row" "$(cat "$E2E_TMP/handoff-next.log")" "workers that are gone count=1"
# --no-handoff: no row, every job claimed
q "DELETE FROM apexops.queue_jobs" >/dev/null
"$APEXOPS_BIN" worker --concurrency 1 --no-handoff --exit-when-idle 3000 >"$E2E_TMP/no-handoff.log" 2>&1 &
K=$!
PIDS+=($K)
wait_for "$U" "SELECT (count(*) > 0)::int FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE '%worker%'" >/dev/null
run_ops queue enqueue noop
wait_exit "$K"
assert_contains "--no-handoff: the job was claimed" "$(cat "$E2E_TMP/no-handoff.log")" "claimed=1 handed=0"
assert_eq "--no-handoff: no row was registered" 0 "$(q "SELECT count(*) FROM apexops.queue_idle")"

# ---- the database goes away -------------------------------------------------
q "DELETE FROM apexops.queue_jobs" >/dev/null
DB=$(q "SELECT current_database()")
APEXOPS_DB_CONNECT_RETRIES=0 "$APEXOPS_BIN" worker --concurrency 2 >"$E2E_TMP/dbdown.log" 2>&1 &
W=$!
PIDS+=($W)
run_ops queue enqueue noop --count 10
wait_for "$U" "SELECT (count(*) = 10)::int FROM apexops.queue_jobs WHERE state = 'succeeded'" &&
	ok "jobs run before the outage" || not_ok "jobs run before the outage"
psql -X -q "$OPS_TEST_ADMIN_URL" -c "ALTER DATABASE $DB WITH ALLOW_CONNECTIONS false" \
	-c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$DB'" >/dev/null
sleep 2
if kill -0 "$W" 2>/dev/null; then ok "the worker survives the outage"; else not_ok "the worker survives the outage"; fi
psql -X -q "$OPS_TEST_ADMIN_URL" -c "ALTER DATABASE $DB WITH ALLOW_CONNECTIONS true" >/dev/null
run_ops queue enqueue noop --count 10
wait_for "$U" "SELECT (count(*) = 20)::int FROM apexops.queue_jobs WHERE state = 'succeeded'" &&
	ok "after the database is back, new jobs run" || not_ok "after the database is back, new jobs run"
AS=""
[ "$(id -u)" = 0 ] && AS="runuser -u postgres --"
$AS "${PGBIN:-/usr/lib/postgresql/15/bin}/pg_ctl" -D "$OPS_TEST_PGDIR/data" -l "$OPS_TEST_PGDIR/server.log" \
	-w -t 60 -m fast restart >/dev/null && ok "the server restarted under the worker" || not_ok "the server restarted under the worker"
run_ops queue enqueue noop --count 10
wait_for "$U" "SELECT (count(*) = 30)::int FROM apexops.queue_jobs WHERE state = 'succeeded'" &&
	ok "after the restart, new jobs run" || not_ok "after the restart, new jobs run"
kill -TERM "$W"
wait_exit "$W"
expect_rc 0 "and it stops cleanly"
# ---- a worker started before the migrations ----------------------------------
# (a deploy that starts the workers first): it keeps running, says once what
# is wrong and how to fix it, backs off, and works once the schema is there
E=$(empty_db worker_early)
DATABASE_URL=$E "$APEXOPS_BIN" worker --concurrency 2 >"$E2E_TMP/early.log" 2>&1 &
W=$!
PIDS+=($W)
sleep 4
if kill -0 "$W" 2>/dev/null; then ok "a worker on an unmigrated database keeps running"; else not_ok "a worker on an unmigrated database keeps running"; fi
assert_eq "it warns of the failing claims once in its first seconds" 1 "$(grep -c 'claiming failed' "$E2E_TMP/early.log")"
assert_contains "saying how to fix it" "$(cat "$E2E_TMP/early.log")" "hint=\"the database may lack this apexops's migrations: 'apexops migrate status' lists what is pending, 'apexops migrate up' applies it\""
# the first pause: 1 s with equal jitter, so 0.5 to 1.0 s
if grep 'claiming failed' "$E2E_TMP/early.log" | grep -Eq 'next_in_s=(0\.[5-9]|1\.0) '; then
	ok "and that it backs off (0.5 to 1 s first)"
else
	not_ok "and that it backs off (0.5 to 1 s first)"
fi
DATABASE_URL=$E run_ops migrate up
expect_rc 0 "the database migrated under the worker"
DATABASE_URL=$E run_ops queue enqueue noop
wait_for "$E" "SELECT count(*)::int FROM apexops.queue_jobs WHERE state = 'succeeded'" &&
	ok "then the worker runs a job enqueued" || not_ok "then the worker runs a job enqueued"
wait_for "$E" "SELECT count(*)::int FROM apexops.queue_idle WHERE ready" &&
	ok "and joins the handoffs it could not join at start" || not_ok "and joins the handoffs it could not join at start"
assert_contains "saying that claims work again" "$(cat "$E2E_TMP/early.log")" "claiming works again"
kill -TERM "$W"
wait_exit "$W"
expect_rc 0 "and it stops cleanly"
done_testing
