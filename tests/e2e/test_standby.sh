#!/usr/bin/env bash
# apexops purge with a real streaming standby of the test cluster
# (tests/peers/pg-standby-up.sh: pg_basebackup -R, another port): the
# standby streams, a purge's deletes and partition drops reach it, a purge
# on the primary finishes while the standby's replay is paused and the
# standby catches up once it resumes, the standby itself refuses to be
# purged with nothing changed, and the pacer's lag guard makes a purge wait
# for the paused standby and go on once it resumes.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$ROOT/migrations/postgres"
unset CRON_TZ

SB=""
cleanup() { [ -n "$SB" ] && "$ROOT/tests/peers/pg-standby-down.sh" "$SB"; }
trap cleanup EXIT

# a database from the template, partitioned usage_events by month, with
# rows on both sides of the 2025-08-31 - 18 months cutoff (2024-02-29)
U=$(new_db standby) || exit 1
DB=${U##*/}
sql "$U" "ALTER TABLE billing_audit DROP CONSTRAINT IF EXISTS billing_audit_customer_id_fkey;
	DROP TABLE usage_events CASCADE;
	CREATE TABLE usage_events (id uuid NOT NULL DEFAULT gen_random_uuid(),
		customer_id uuid NOT NULL, event_name varchar(100) NOT NULL,
		event_value bigint NOT NULL, event_metadata jsonb DEFAULT '{}',
		created_at timestamptz DEFAULT CURRENT_TIMESTAMP,
		stripe_synced boolean DEFAULT false, stripe_synced_at timestamptz)
		PARTITION BY RANGE (created_at);
	CREATE TABLE ue_2023_12 PARTITION OF usage_events FOR VALUES FROM ('2023-12-01') TO ('2024-01-01');
	CREATE TABLE ue_2024_01 PARTITION OF usage_events FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
	CREATE TABLE ue_2024_02 PARTITION OF usage_events FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
	CREATE TABLE ue_2024_03 PARTITION OF usage_events FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
	INSERT INTO usage_events (customer_id, event_name, event_value, created_at)
		SELECT gen_random_uuid(), 'api_calls', 1, timestamptz '2023-12-01' + g * interval '5 minutes'
		FROM generate_series(0, 34000) g;
	INSERT INTO billing_audit (event_type, data, created_at)
		SELECT 'invoice_created', '{}', timestamptz '2024-02-29' + (g - 3000) * interval '1 hour'
		FROM generate_series(1, 4000) g" >/dev/null

SB=$(PRIMARY_PORT=$OPS_TEST_PGPORT "$ROOT/tests/peers/pg-standby-up.sh" 2>"$E2E_TMP/standby.err")
if [ -z "$SB" ]; then
	not_ok "pg-standby-up.sh starts a standby" "$(tail -3 "$E2E_TMP/standby.err")"
	done_testing
	exit 1
fi
S="postgresql://postgres@127.0.0.1:$(cat "$SB/port")/$DB"
ok "pg-standby-up.sh starts a standby of the test cluster"
assert_eq "the standby is in recovery" t "$(sql "$S" "SELECT pg_is_in_recovery()")"
if wait_for "$OPS_TEST_ADMIN_URL" "SELECT count(*) FROM pg_stat_replication
		WHERE application_name = 'apexops_test_standby' AND state = 'streaming'"; then
	ok "the primary streams to it"
else
	not_ok "the primary streams to it" "$(sql "$OPS_TEST_ADMIN_URL" "SELECT state FROM pg_stat_replication")"
fi
# caught up: the standby has replayed everything written so far
caught_up() {
	wait_for "$OPS_TEST_ADMIN_URL" "SELECT (count(*) = 1 AND bool_and(replay_lsn >= lsn))::int
		FROM pg_stat_replication, (SELECT pg_current_wal_lsn() AS lsn) c
		WHERE application_name = 'apexops_test_standby'"
}
caught_up || not_ok "the standby catches up after the set-up"
old_ue=$(sql "$U" "SELECT count(*) FROM usage_events WHERE created_at < '2024-02-29'")
assert_eq "the standby sees the seeded rows" \
	"$(sql "$U" "SELECT count(*) FROM usage_events")" "$(sql "$S" "SELECT count(*) FROM usage_events")"

# the standby refuses a purge: nothing changes on it or the primary
OUT=$(DATABASE_URL=$S "$APEXOPS_BIN" purge --execute --as-of 2025-08-31 2>"$E2E_TMP/stderr")
RC=$?
ERR=$(cat "$E2E_TMP/stderr")
if [ "$RC" -ne 0 ]; then ok "a purge against the standby fails (exit $RC)"; else not_ok "a purge against the standby fails"; fi
assert_contains "and says the server is read-only" "$ERR" "read-only transaction"
assert_eq "and removes nothing" "$old_ue" "$(sql "$U" "SELECT count(*) FROM usage_events WHERE created_at < '2024-02-29'")"

# replay paused: the purge on the primary goes on; the standby lags
sql "$S" "SELECT pg_wal_replay_pause()" >/dev/null
if wait_for "$S" "SELECT (pg_get_wal_replay_pause_state() = 'paused')::int"; then
	ok "the standby's replay pauses"
else
	not_ok "the standby's replay pauses"
fi
# (the lag guard's time limit raised to 10 minutes, and drops back to back:
# with the default 1 s, a replay paused longer than that makes the batches
# wait for the standby, as the guard below is tested to; its 16 MiB of WAL
# stay the limit, far above this purge's)
OUT=$(DATABASE_URL=$U "$APEXOPS_BIN" purge --execute --json --as-of 2025-08-31 --drop-pause 0 \
	--max-lag 600000 2>"$E2E_TMP/stderr")
RC=$?
ERR=$(cat "$E2E_TMP/stderr")
expect_rc 0 "the purge on the primary finishes"
assert_eq "it removes every expired row on the primary" 0 \
	"$(sql "$U" "SELECT count(*) FROM usage_events WHERE created_at < '2024-02-29'")"
assert_eq "the paused standby still has them" "$old_ue" \
	"$(sql "$S" "SELECT count(*) FROM usage_events WHERE created_at < '2024-02-29'")"
lag=$(sql "$OPS_TEST_ADMIN_URL" "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 0
	FROM pg_stat_replication WHERE application_name = 'apexops_test_standby'")
assert_eq "the primary sees the standby's replay lag" t "$lag"

sql "$S" "SELECT pg_wal_replay_resume()" >/dev/null
if caught_up; then ok "after resuming, the standby catches up"; else not_ok "after resuming, the standby catches up"; fi
assert_eq "the standby has the purge's result: no expired usage_events" 0 \
	"$(sql "$S" "SELECT count(*) FROM usage_events WHERE created_at < '2024-02-29'")"
assert_eq "and the same partitions as the primary" \
	"$(sql "$U" "SELECT string_agg(inhrelid::regclass::text, ',' ORDER BY inhrelid::regclass::text) FROM pg_inherits WHERE inhparent = 'usage_events'::regclass")" \
	"$(sql "$S" "SELECT string_agg(inhrelid::regclass::text, ',' ORDER BY inhrelid::regclass::text) FROM pg_inherits WHERE inhparent = 'usage_events'::regclass")"
assert_eq "and the same billing_audit rows" \
	"$(sql "$U" "SELECT count(*) FROM billing_audit")" "$(sql "$S" "SELECT count(*) FROM billing_audit")"

# the pacer's lag guard: with the standby's replay paused, a purge that
# writes more WAL than the guard allows (16 MB) waits for the standby,
# and goes on once replay resumes
U2=$(new_db standby_pace) || exit 1
S2="postgresql://postgres@127.0.0.1:$(cat "$SB/port")/${U2##*/}"
sql "$U2" "ALTER TABLE usage_events DROP CONSTRAINT IF EXISTS usage_events_customer_id_fkey;
	INSERT INTO usage_events (customer_id, event_name, event_value, created_at)
		SELECT gen_random_uuid(), 'api_calls', 1, timestamptz '2024-02-28' - g * interval '1 second'
		FROM generate_series(1, 300000) g" >/dev/null
caught_up || not_ok "the standby catches up after the second set-up"
sql "$S" "SELECT pg_wal_replay_pause()" >/dev/null
wait_for "$S" "SELECT (pg_get_wal_replay_pause_state() = 'paused')::int" ||
	not_ok "the standby's replay pauses again"
# --max-lag-wait bounds one wait: then the run stops, to be rerun
DATABASE_URL=$U2 run_ops purge --execute --json --as-of 2025-08-31 --max-lag-wait 2
expect_rc 75 "a purge whose standby stays behind past --max-lag-wait stops (exit 75)"
assert_contains "saying the standby is still behind" "$ERR" "a standby is still behind"
assert_contains "after waiting about 2 s" "$ERR" "after 2"
assert_eq "leaving expired rows for the rerun" t \
	"$(sql "$U2" "SELECT count(*) > 0 FROM usage_events WHERE created_at < '2024-02-29'")"
# --max-lag-bytes alone: with a time limit of an hour, only the WAL the
# paused standby has not replayed (more than 8 kB by now) makes it wait
DATABASE_URL=$U2 run_ops purge --execute --json --as-of 2025-08-31 --max-lag 3600000 \
	--max-lag-bytes 8kB --max-lag-wait 2
expect_rc 75 "a purge past --max-lag-bytes, under --max-lag, waits and stops (exit 75)"
assert_contains "saying the standby is still behind" "$ERR" "a standby is still behind"
assert_contains "and naming the limits it waited on" "$ERR" "the guard waits over 8192 bytes or 3600000 ms"
assert_eq "leaving expired rows for the rerun" t \
	"$(sql "$U2" "SELECT count(*) > 0 FROM usage_events WHERE created_at < '2024-02-29'")"
# the scheduled purge takes the same limits from its configuration
APEXOPS_PURGE_MAX_LAG_MS=3600000 APEXOPS_PURGE_MAX_LAG_BYTES=8kB APEXOPS_PURGE_MAX_LAG_WAIT_S=2 \
	DATABASE_URL=$U2 run_ops purge --scheduled --json
expect_rc 75 "the scheduled purge waits on APEXOPS_PURGE_MAX_LAG_BYTES and stops after _WAIT_S (exit 75)"
assert_contains "naming the configured limits" "$ERR" "the guard waits over 8192 bytes or 3600000 ms"
DATABASE_URL=$U2 run_ops purge --execute --pace off --max-lag 5000
expect_rc 64 "--max-lag without the pacer is a usage error"
assert_contains "saying it needs --pace on" "$ERR" "they need --pace on"
DATABASE_URL=$U2 "$APEXOPS_BIN" purge --execute --json --as-of 2025-08-31 \
	>"$E2E_TMP/paced.json" 2>"$E2E_TMP/paced.err" &
PURGE_PID=$!
waited=0
for _ in $(seq 1 600); do
	if grep -q "pacer waiting for a standby" "$E2E_TMP/paced.err"; then
		waited=1
		break
	fi
	kill -0 "$PURGE_PID" 2>/dev/null || break
	sleep 0.1
done
ERR=$(cat "$E2E_TMP/paced.err")
OUT=""
assert_eq "the paced purge waits for the paused standby" 1 "$waited"
if kill -0 "$PURGE_PID" 2>/dev/null; then
	ok "and is still running while the standby is paused"
else
	not_ok "and is still running while the standby is paused"
fi
left=$(sql "$U2" "SELECT count(*) > 0 FROM usage_events WHERE created_at < '2024-02-29'")
assert_eq "with expired rows still to delete" t "$left"
sql "$S" "SELECT pg_wal_replay_resume()" >/dev/null
wait "$PURGE_PID"
RC=$?
OUT=$(cat "$E2E_TMP/paced.json")
ERR=$(cat "$E2E_TMP/paced.err")
expect_rc 0 "after replay resumes, the purge finishes"
assert_eq "it removed every expired row" 0 \
	"$(sql "$U2" "SELECT count(*) FROM usage_events WHERE created_at < '2024-02-29'")"
lw=$(psql -X -At -v ON_ERROR_STOP=1 -v j="$OUT" "$OPS_TEST_ADMIN_URL" \
	<<<"SELECT ((:'j'::jsonb) #>> '{pace,lag_waits}')::int >= 1")
assert_eq "its result counts the lag wait" t "$lw"
lb=$(psql -X -At -v ON_ERROR_STOP=1 -v j="$OUT" "$OPS_TEST_ADMIN_URL" \
	<<<"SELECT ((:'j'::jsonb) #>> '{pace,max_lag_bytes}')::bigint > 0")
assert_eq "and the largest lag it saw, in bytes" t "$lb"
assert_contains "the log says the standby caught up" "$ERR" "pacer standby caught up"
if caught_up; then
	assert_eq "the standby has the purge's result" 0 \
		"$(sql "$S2" "SELECT count(*) FROM usage_events WHERE created_at < '2024-02-29'")"
else
	not_ok "the standby catches up after the paced purge"
fi
done_testing
