#!/usr/bin/env bash
# End-to-end: stop signals during `apexops migrate up`. The first SIGTERM
# lets the running migration go on (and stops before the next); a second
# one cancels the running statement: the process exits non-zero saying so,
# and the migration is rolled back, not recorded as applied.
. "$(dirname "$0")/lib.sh"

url=$(empty_db signals) || exit 1
mdir="$E2E_TMP/migrations"
mkdir -p "$mdir"
cat >"$mdir/20260101_000000_slow.up.sql" <<'SQL'
CREATE TABLE signals_marker (id int);
SELECT pg_sleep(600);
SQL
echo "DROP TABLE signals_marker;" >"$mdir/20260101_000000_slow.down.sql"

# the migration's statement is running (not waiting to start)
sleeping="SELECT count(*) FROM pg_stat_activity WHERE application_name = 'apexops/migrate' AND state = 'active' AND wait_event = 'PgSleep'"
# bit 15 (SIGTERM) of a /proc/PID/status mask line
term_bit() { local m; m=$(sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" 2>/dev/null) || return 1; [ -n "$m" ] && [ $((16#$m & 0x4000)) -ne 0 ]; }
wait_until() { # wait_until CMD...: at most 30 s
	for _ in $(seq 1 300); do "$@" && return 0; sleep 0.1; done
	return 1
}
gone() { ! kill -0 "$1" 2>/dev/null; }
not_pending() { ! term_bit "$1" SigPnd && ! term_bit "$1" ShdPnd; }

DATABASE_URL=$url APEXOPS_MIGRATIONS_DIR=$mdir DATABASE_STATEMENT_TIMEOUT_MS=0 "$APEXOPS_BIN" migrate up \
	>"$E2E_TMP/out" 2>"$E2E_TMP/err" &
pid=$!
if wait_for "$url" "$sleeping" && wait_until term_bit "$pid" SigCgt; then
	ok "migrate up is running the slow migration, SIGTERM handled"
else
	not_ok "migrate up is running the slow migration, SIGTERM handled"
fi
kill -TERM "$pid"
wait_until not_pending "$pid"
if kill -0 "$pid" 2>/dev/null; then ok "after one SIGTERM it still runs"; else not_ok "after one SIGTERM it still runs"; fi
assert_eq "and its statement is still active" 1 "$(sql "$url" "$sleeping")"
kill -TERM "$pid"
if wait_until gone "$pid"; then
	wait "$pid"
	RC=$?
	ok "a second SIGTERM ends it"
else
	kill -KILL "$pid"
	wait "$pid"
	RC=0
	not_ok "a second SIGTERM ends it" "still running 30 s later"
fi
OUT=$(cat "$E2E_TMP/out") ERR=$(cat "$E2E_TMP/err")
if [ "$RC" -ne 0 ] && [ "$RC" -lt 128 ]; then ok "it exits non-zero, not killed by the signal (rc $RC)"; else not_ok "it exits non-zero, not killed by the signal" "rc $RC"; fi
assert_contains "saying the statement was cancelled" "$ERR" "cancelled by a second stop signal"
assert_eq "the statement no longer runs" 0 "$(sql "$url" "$sleeping")"
assert_eq "the migration is not recorded as applied" 0 \
	"$(sql "$url" "SELECT count(*) FROM apexops.schema_migrations")"
assert_eq "and its work is rolled back" f \
	"$(sql "$url" "SELECT to_regclass('public.signals_marker') IS NOT NULL")"

# ---- one signal: the running migration finishes, the next does not start --
url=$(empty_db signals_once) || exit 1
mdir="$E2E_TMP/migrations-once"
mkdir -p "$mdir"
cat >"$mdir/20260101_000000_first.up.sql" <<'SQL'
CREATE TABLE signals_first (id int);
SELECT pg_advisory_lock(4242);
SQL
echo "CREATE TABLE signals_second (id int);" >"$mdir/20260101_000001_second.up.sql"
# the test holds lock 4242, so the first migration waits on it
psql -X -q "$url" -c "SELECT pg_advisory_lock(4242), pg_sleep(600)" >/dev/null 2>&1 &
holder=$!
wait_for "$url" "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted"
DATABASE_URL=$url APEXOPS_MIGRATIONS_DIR=$mdir APEXOPS_LOCK_TIMEOUT_MS=0 "$APEXOPS_BIN" migrate up \
	>"$E2E_TMP/out" 2>"$E2E_TMP/err" &
pid=$!
waiting="SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted"
if wait_for "$url" "$waiting" && wait_until term_bit "$pid" SigCgt; then
	ok "the first migration waits on the test's lock"
else
	not_ok "the first migration waits on the test's lock"
fi
kill -TERM "$pid"
wait_until not_pending "$pid"
# let the first migration go on: end the session that holds the lock
sql "$url" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$holder" 2>/dev/null
if wait_until gone "$pid"; then
	wait "$pid"
	RC=$?
else
	kill -KILL "$pid"
	RC=0
fi
OUT=$(cat "$E2E_TMP/out") ERR=$(cat "$E2E_TMP/err")
if [ "$RC" -ne 0 ] && [ "$RC" -lt 128 ]; then ok "after one SIGTERM migrate exits non-zero by itself (rc $RC)"; else not_ok "after one SIGTERM migrate exits non-zero by itself" "rc $RC"; fi
assert_contains "saying it stopped before the next migration" "$ERR" "stopped by a signal before migration 20260101_000001_second"
assert_eq "the running migration was finished and recorded" 20260101_000000_first \
	"$(sql "$url" "SELECT string_agg(version, ',') FROM apexops.schema_migrations")"
assert_eq "the next one did not start" f \
	"$(sql "$url" "SELECT to_regclass('public.signals_second') IS NOT NULL")"
done_testing
