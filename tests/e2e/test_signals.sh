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
done_testing
