#!/usr/bin/env bash
# apexops cron, the scheduler daemon, on a virtual clock that every replica
# shares: three replicas over hundreds of minute slots with one SIGKILLed
# and restarted at random moments (no slot runs twice, none is left without
# an outcome), the daylight saving days of Europe/Berlin and
# America/New_York, catch-up inside and past the starting deadline, a
# graceful stop with a job running, a second signal, the database going
# away, SIGHUP with a bad and a good schedule, /healthz and /metrics, and
# the refusals (a virtual clock in production, bad values).
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$ROOT/migrations/postgres"
unset CRON_TZ APEXOPS_CLOCK_START APEXOPS_CLOCK_EPOCH APEXOPS_CLOCK_SPEED
export APEXOPS_SCHEDULE_STRIPE_USAGE_SYNC=off APEXOPS_SCHEDULE_DUNNING_RETRIES=off \
	APEXOPS_SCHEDULE_PRIVACY_EXPIRY=off APEXOPS_SCHEDULE_QUEUE_PRUNE=off
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT

free_port() {
	local p=$1
	while (echo >/dev/tcp/127.0.0.1/"$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
# rows URL: one line per usage-purge run: slot|trigger|status|attempt
rows() {
	sql "$1" "SELECT to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || '|' || trigger || '|' || status
		FROM apexops.job_runs WHERE job = 'usage-purge' ORDER BY slot"
}
# wait_exit PID: until the process is gone (at most 60 s); its exit code in RC
wait_exit() {
	for _ in $(seq 1 600); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	wait "$1"
	RC=$?
}
fresh() { # fresh NAME: a database without the usage FK, its URL
	local u
	u=$(new_db "$1") || return 1
	sql "$u" "ALTER TABLE usage_events DROP CONSTRAINT IF EXISTS usage_events_customer_id_fkey" >/dev/null
	echo "$u"
}

# ---- refusals: nothing starts ------------------------------------------------
U=$(fresh cronref)
DATABASE_URL=$U APP_ENV=production APEXOPS_CLOCK_START=2026-12-01T00:00:00Z run_ops cron --run-for 5
expect_rc 78 "a virtual clock in production is refused"
assert_contains "naming both variables" "$ERR" "APEXOPS_CLOCK_START is set while APP_ENV is production"
DATABASE_URL=$U APEXOPS_CLOCK_START=yesterday run_ops cron --run-for 5
expect_rc 78 "a clock start that is not RFC 3339 is refused"
DATABASE_URL=$U APEXOPS_CLOCK_START=2026-12-01T00:00:00Z APEXOPS_CLOCK_SPEED=0 run_ops cron --run-for 5
expect_rc 78 "a clock speed of 0 is refused"
DATABASE_URL=$U APEXOPS_CLOCK_SPEED=2 run_ops cron --run-for 5
expect_rc 78 "a speed without a start is refused"
DATABASE_URL=$U APEXOPS_SCHEDULE_USAGE_PURGE='30 25 * * *' run_ops cron --run-for 5
expect_rc 78 "a bad schedule is refused"
assert_contains "with the variable, the field and the position" "$ERR" "APEXOPS_SCHEDULE_USAGE_PURGE='30 25 * * *': field 2 (hour): 25 is out of range 0-23 at position 4"
DATABASE_URL=$U run_ops cron --http 127.0.0.1:notaport --run-for 5
expect_rc 64 "a bad --http address is a usage error"
assert_contains "saying what an address is" "$ERR" "--http '127.0.0.1:notaport': expected HOST:PORT with a numeric address"
DATABASE_URL=$U APEXOPS_HTTP_ADDR=127.0.0.1:notaport run_ops cron --run-for 5
expect_rc 78 "a bad APEXOPS_HTTP_ADDR is a configuration error"
assert_not_contains "and the scheduler never says it started" "$ERR" "scheduler started"
assert_eq "nothing was recorded by the refusals" 0 "$(sql "$U" "SELECT count(*) FROM apexops.job_runs")"

# ---- daylight saving time: one run per day, at the stated instant ----------
# dst ZONE START_UTC VIRTUAL_SECONDS: one replica over that stretch, on a
# database of its own (a later stretch on the same one would record the
# days between as missed)
dst() {
	U=$(fresh "crondst$((++ndst))")
	DATABASE_URL=$U CRON_TZ=$1 APEXOPS_SCHEDULE_USAGE_PURGE='30 2 * * *' \
		APEXOPS_CLOCK_START=$2 APEXOPS_CLOCK_SPEED=600 APEXOPS_CLOCK_EPOCH=$(date +%s.%N) \
		APEXOPS_CRON_LEASE_S=3600 "$APEXOPS_BIN" cron --run-for "$3" >>"$E2E_TMP/dst.log" 2>&1
	rows "$U"
}
ndst=0
assert_eq "DST: Berlin springs forward: 02:30 does not exist, it runs once at 03:00 CEST" \
	"2026-03-29T01:00:00Z|scheduled|succeeded" "$(dst Europe/Berlin 2026-03-29T00:50:00Z 1200)"
assert_eq "DST: Berlin falls back: 02:30 happens twice, it runs once, at the first (CEST)" \
	"2026-10-25T00:30:00Z|scheduled|succeeded" "$(dst Europe/Berlin 2026-10-25T00:20:00Z 4800)"
assert_eq "DST: New York springs forward: once at 03:00 EDT" \
	"2026-03-08T07:00:00Z|scheduled|succeeded" "$(dst America/New_York 2026-03-08T06:50:00Z 1200)"
assert_eq "DST: New York falls back: 02:30 EST comes once, after the repeated hour" \
	"2026-11-01T07:30:00Z|scheduled|succeeded" "$(dst America/New_York 2026-11-01T05:20:00Z 8400)"

# ---- catch-up after downtime, inside and past the starting deadline --------
U=$(fresh croncatch)
day() { # day START_UTC SECONDS: one replica, daily 02:30 UTC
	DATABASE_URL=$U APEXOPS_SCHEDULE_USAGE_PURGE='30 2 * * *' APEXOPS_CLOCK_START=$1 \
		APEXOPS_CLOCK_SPEED=60 APEXOPS_CLOCK_EPOCH=$(date +%s.%N) APEXOPS_CRON_LEASE_S=600 \
		"$APEXOPS_BIN" cron --run-for "$2" >>"$E2E_TMP/catch.log" 2>&1
}
day 2026-12-01T02:28:00Z 180
day 2026-12-03T05:00:00Z 60 # down two days: 2 Dec missed, 3 Dec 2.5 h late
day 2026-12-05T12:00:00Z 60 # 5 Dec 02:30 is 9.5 h late: past the 6 h deadline
assert_eq "on time, then one catch-up within 6 h, never N runs; older and too-late slots missed" \
	"2026-12-01T02:30:00Z|scheduled|succeeded
2026-12-02T02:30:00Z|scheduled|missed
2026-12-03T02:30:00Z|catch-up|succeeded
2026-12-04T02:30:00Z|scheduled|missed
2026-12-05T02:30:00Z|scheduled|missed" "$(rows "$U")"
assert_contains "a missed slot says why" \
	"$(sql "$U" "SELECT error FROM apexops.job_runs WHERE slot = '2026-12-05 02:30+00'")" "past the starting deadline"

# ---- three replicas, one SIGKILLed and restarted at random moments ----------
U=$(fresh cron3)
export CLOCK_EPOCH3=$(($(date +%s) + 2))
replica() { # replica N: start replica N in the background, its pid in REPL[N]
	DATABASE_URL=$U APEXOPS_SCHEDULE_USAGE_PURGE='* * * * *' \
		APEXOPS_CLOCK_START=2026-12-01T00:00:00Z APEXOPS_CLOCK_EPOCH=$CLOCK_EPOCH3 \
		APEXOPS_CLOCK_SPEED=600 APEXOPS_CRON_LEASE_S=600 APEXOPS_CRON_GRACE_S=600 \
		"$APEXOPS_BIN" cron >>"$E2E_TMP/replica$1.log" 2>&1 &
	REPL[$1]=$!
	PIDS+=($!)
}
declare -a REPL
replica 1
replica 2
replica 3
RANDOM=$$
kills=0
end=$((SECONDS + 34))
while [ $SECONDS -lt $end ]; do
	sleep "$((2 + RANDOM % 5)).$((RANDOM % 10))"
	[ $SECONDS -ge $((end - 3)) ] && break
	n=$((1 + RANDOM % 3))
	kill -9 "${REPL[$n]}" 2>/dev/null && kills=$((kills + 1))
	wait "${REPL[$n]}" 2>/dev/null
	sleep "0.$((RANDOM % 10))"
	replica "$n"
done
for n in 1 2 3; do kill -TERM "${REPL[$n]}" 2>/dev/null; done
for n in 1 2 3; do wait_exit "${REPL[$n]}"; done
[ "$kills" -ge 3 ] && ok "replicas were SIGKILLed and restarted ($kills times)" || not_ok "replicas were SIGKILLed and restarted" "kills: $kills"
read -r first last nrows <<<"$(sql "$U" "SELECT extract(epoch FROM min(slot))::bigint || ' ' || extract(epoch FROM max(slot))::bigint || ' ' || count(*) FROM apexops.job_runs WHERE job = 'usage-purge'" | tr '|' ' ')"
span=$(((last - first) / 60 + 1))
[ "$span" -ge 250 ] && ok "at least 250 minute slots passed ($span)" || not_ok "at least 250 minute slots passed" "span: $span"
assert_eq "every slot from the first to the last has exactly one row" "$span" "$nrows"
assert_eq "no run is left running" 0 "$(sql "$U" "SELECT count(*) FROM apexops.job_runs WHERE status = 'running'")"
assert_eq "no run failed" 0 "$(sql "$U" "SELECT count(*) FROM apexops.job_runs WHERE status = 'failed'")"
assert_eq "every outcome is succeeded or missed (abandoned only after 3 attempts)" 0 \
	"$(sql "$U" "SELECT count(*) FROM apexops.job_runs WHERE status NOT IN ('succeeded', 'missed', 'abandoned')")"
assert_eq "the three replicas stopped by SIGTERM said goodbye (the SIGKILLed ones could not)" 0 \
	"$(sql "$U" "SELECT count(*) FROM apexops.cron_replicas WHERE pid IN (${REPL[1]}, ${REPL[2]}, ${REPL[3]})")"
echo "# 3 replicas: $span slots, $kills kills, outcomes: $(sql "$U" "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM apexops.job_runs GROUP BY 1 ORDER BY 1) s"), takeovers: $(sql "$U" "SELECT coalesce(sum(takeovers), 0) FROM apexops.job_runs")"

# ---- graceful stop with a job running; then a second signal ----------------
U=$(fresh crongrace)
PORT=$(free_port 19187)
locker() { # hold usage_events until killed, so the purge's plan waits
	psql -X -q "$U" -c "BEGIN" -c "LOCK TABLE usage_events IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
	LOCKER=$!
	wait_for "$U" "SELECT count(*)::int FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'usage_events' AND l.mode = 'AccessExclusiveLock' AND l.granted"
}
unlock() {
	sql "$U" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()" >/dev/null
	wait "$LOCKER" 2>/dev/null
}
waiting_purge="SELECT count(*)::int FROM pg_stat_activity WHERE application_name = 'apexops/cron' AND wait_event_type = 'Lock'"
locker
DATABASE_URL=$U APEXOPS_SCHEDULE_USAGE_PURGE='30 2 * * *' APEXOPS_CLOCK_START=2026-12-01T02:29:58Z \
	APEXOPS_CLOCK_EPOCH=$(date +%s.%N) APEXOPS_LOCK_TIMEOUT_MS=0 APEXOPS_CRON_GRACE_S=600 \
	"$APEXOPS_BIN" cron --http "127.0.0.1:$PORT" >"$E2E_TMP/grace.log" 2>&1 &
D=$!
PIDS+=($D)
if wait_for "$U" "$waiting_purge"; then ok "the 02:30 purge is running (waiting on a lock)"; else not_ok "the 02:30 purge is running (waiting on a lock)"; fi
assert_eq "/healthz answers 200 while the loop runs" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")"
assert_contains "/metrics is Prometheus text" "$(curl -s "http://127.0.0.1:$PORT/metrics")" "# TYPE apexops_cron_runs_total counter"
kill -TERM "$D"
for _ in $(seq 1 100); do grep -q "stopping: no new runs" "$E2E_TMP/grace.log" && break; sleep 0.1; done
sleep 0.5
if kill -0 "$D" 2>/dev/null; then ok "after SIGTERM the daemon waits for the running job"; else not_ok "after SIGTERM the daemon waits for the running job"; fi
unlock
wait_exit "$D"
expect_rc 0 "it exits 0 once the job finished"
assert_eq "and the run is recorded as succeeded" "2026-12-01T02:30:00Z|scheduled|succeeded" "$(rows "$U")"

locker
DATABASE_URL=$U APEXOPS_SCHEDULE_USAGE_PURGE='30 2 * * *' APEXOPS_CLOCK_START=2026-12-02T02:29:58Z \
	APEXOPS_CLOCK_EPOCH=$(date +%s.%N) APEXOPS_LOCK_TIMEOUT_MS=0 APEXOPS_CRON_GRACE_S=600 \
	"$APEXOPS_BIN" cron >"$E2E_TMP/grace2.log" 2>&1 &
D=$!
PIDS+=($D)
wait_for "$U" "$waiting_purge" && ok "the next day's purge is running" || not_ok "the next day's purge is running"
kill -TERM "$D"
for _ in $(seq 1 100); do grep -q "stopping: no new runs" "$E2E_TMP/grace2.log" && break; sleep 0.1; done
kill -TERM "$D"
wait_exit "$D"
expect_rc 0 "a second SIGTERM cancels the running statement and the daemon exits"
assert_eq "the cancelled run is settled, not left running" "failed" \
	"$(sql "$U" "SELECT status FROM apexops.job_runs WHERE slot = '2026-12-02 02:30+00'")"
assert_eq "the purge ran as of the virtual date, not the real one" "2026-12-02" \
	"$(sql "$U" "SELECT params ->> 'today' FROM apexops.job_runs WHERE slot = '2026-12-02 02:30+00'")"
unlock

# ---- the database goes away and comes back ----------------------------------
U=$(fresh crondb)
DB=$(sql "$U" "SELECT current_database()")
DATABASE_URL=$U APEXOPS_SCHEDULE_USAGE_PURGE='* * * * *' APEXOPS_CLOCK_START=2026-12-01T00:00:00Z \
	APEXOPS_CLOCK_EPOCH=$(date +%s.%N) APEXOPS_CLOCK_SPEED=60 APEXOPS_CRON_LEASE_S=120 \
	APEXOPS_DB_CONNECT_RETRIES=0 APEXOPS_DB_CONNECT_TIMEOUT=2 \
	"$APEXOPS_BIN" cron --http "127.0.0.1:$PORT" >"$E2E_TMP/dbdown.log" 2>&1 &
D=$!
PIDS+=($D)
wait_for "$U" "SELECT (count(*) >= 2)::int FROM apexops.job_runs WHERE status = 'succeeded'" &&
	ok "runs succeed before the outage" || not_ok "runs succeed before the outage"
psql -X -q "$OPS_TEST_ADMIN_URL" -c "ALTER DATABASE $DB WITH ALLOW_CONNECTIONS false" \
	-c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$DB'" >/dev/null
for _ in $(seq 1 100); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")" = 503 ] && break
	sleep 0.1
done
assert_eq "/healthz answers 503 without the database" 503 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")"
sleep 2
if kill -0 "$D" 2>/dev/null; then ok "the daemon survives the outage"; else not_ok "the daemon survives the outage"; fi
psql -X -q "$OPS_TEST_ADMIN_URL" -c "ALTER DATABASE $DB WITH ALLOW_CONNECTIONS true" >/dev/null
back=$(date +%s)
if wait_for "$U" "SELECT (count(*) >= 1)::int FROM apexops.job_runs WHERE status = 'succeeded' AND finished_at > to_timestamp($back)"; then
	ok "after the database is back, slots run again"
else
	not_ok "after the database is back, slots run again"
fi
# and a real restart of the server under the running daemon
AS=""
[ "$(id -u)" = 0 ] && AS="runuser -u postgres --"
$AS "${PGBIN:-/usr/lib/postgresql/15/bin}/pg_ctl" -D "$OPS_TEST_PGDIR/data" -l "$OPS_TEST_PGDIR/server.log" \
	-w -t 60 -m fast restart >/dev/null && ok "the server restarted" || not_ok "the server restarted"
back=$(date +%s)
if wait_for "$U" "SELECT (count(*) >= 1)::int FROM apexops.job_runs WHERE status = 'succeeded' AND finished_at > to_timestamp($back)"; then
	ok "after the server restarted, slots run again"
else
	not_ok "after the server restarted, slots run again"
fi
if kill -0 "$D" 2>/dev/null; then ok "the daemon survived the restart"; else not_ok "the daemon survived the restart"; fi
# stopped, the daemon settles what it runs: a run cut off by the outage or
# the restart and left 'running' would be left for good (the virtual clock
# is days behind the server's, so a lease time cannot tell in-flight runs
# from stuck ones while the daemon still runs)
kill -TERM "$D"
wait_exit "$D"
expect_rc 0 "the daemon stops cleanly after the outage and the restart"
left=$(sql "$U" "SELECT count(*) || ' ' || COALESCE(string_agg(slot::text || '/' || attempt, ', '), '') FROM apexops.job_runs WHERE status = 'running'")
assert_eq "no run is left running across the outage and the restart" "0 " "$left"

# ---- SIGHUP: a bad schedule is refused and the old one kept; a good one applies
printf 'APEXOPS_SCHEDULE_USAGE_PURGE=* * * * *\n' >"$E2E_TMP/cron.env"
unset APEXOPS_SCHEDULE_USAGE_PURGE
DATABASE_URL=$U APEXOPS_CLOCK_START=2026-12-03T00:00:00Z APEXOPS_CLOCK_EPOCH=$(date +%s.%N) APEXOPS_CLOCK_SPEED=60 \
	"$APEXOPS_BIN" --env-file "$E2E_TMP/cron.env" cron >"$E2E_TMP/hup.log" 2>&1 &
D=$!
PIDS+=($D)
for _ in $(seq 1 100); do grep -q 'schedule job=usage-purge schedule="\* \* \* \* \*"' "$E2E_TMP/hup.log" && break; sleep 0.1; done
printf 'APEXOPS_SCHEDULE_USAGE_PURGE=every minute\n' >"$E2E_TMP/cron.env"
kill -HUP "$D"
for _ in $(seq 1 100); do grep -q "reload failed" "$E2E_TMP/hup.log" && break; sleep 0.1; done
assert_contains "SIGHUP with a bad schedule: refused, naming it" "$(cat "$E2E_TMP/hup.log")" "reload failed, keeping the old configuration"
if kill -0 "$D" 2>/dev/null; then ok "and the daemon keeps running"; else not_ok "and the daemon keeps running"; fi
printf 'APEXOPS_SCHEDULE_USAGE_PURGE=*/5 * * * *\n' >"$E2E_TMP/cron.env"
kill -HUP "$D"
for _ in $(seq 1 100); do grep -q "configuration reloaded" "$E2E_TMP/hup.log" && break; sleep 0.1; done
assert_contains "SIGHUP with a good schedule applies it" "$(cat "$E2E_TMP/hup.log")" 'schedule job=usage-purge schedule="*/5 * * * *"'
kill -TERM "$D"
wait_exit "$D"
expect_rc 0 "SIGTERM after reloads: exit 0"
# ---- a scheduler started before the migrations -----------------------------
# it keeps running, warns once with the remedy, backs off, and schedules
# once the schema is there
E=$(empty_db cron_early)
DATABASE_URL=$E "$APEXOPS_BIN" cron >"$E2E_TMP/early.log" 2>&1 &
D=$!
PIDS+=($D)
sleep 4
if kill -0 "$D" 2>/dev/null; then ok "a scheduler on an unmigrated database keeps running"; else not_ok "a scheduler on an unmigrated database keeps running"; fi
assert_eq "it warns of failing scheduling once in its first seconds" 1 "$(grep -c 'scheduling failed' "$E2E_TMP/early.log")"
assert_contains "saying how to fix it" "$(cat "$E2E_TMP/early.log")" "hint=\"the database may lack this apexops's migrations"
DATABASE_URL=$E run_ops migrate up
expect_rc 0 "the database migrated under the scheduler"
for _ in $(seq 1 300); do
	grep -q "scheduling works again" "$E2E_TMP/early.log" && break
	sleep 0.1
done
assert_contains "then it schedules again, saying so" "$(cat "$E2E_TMP/early.log")" "scheduling works again"
wait_for "$E" "SELECT count(*)::int FROM apexops.cron_replicas" &&
	ok "and records its replica" || not_ok "and records its replica"
kill -TERM "$D"
wait_exit "$D"
expect_rc 0 "and it stops cleanly"
done_testing
