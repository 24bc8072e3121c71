#!/usr/bin/env bash
# apexops purge, as an operator runs it: cutoffs (month-end clamping, time
# zones), exact boundaries, dry-run = execution, NULL created_at kept, bad
# month values refused with nothing changed, plain and range-partitioned
# usage_events, a missing billing_audit, a locked row waited for on a return
# walk, a failed execution's output, CASCADE / SET NULL / RESTRICT / NO ACTION
# children, strict options and a future --as-of, a concurrent second purge,
# a stop by SIGTERM and a SIGKILL in the middle (with the progress it
# recorded) followed by a rerun, and the history. Every wait is on a
# condition (pg_stat_activity, the run record), never on a time.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$ROOT/migrations/postgres"
unset CRON_TZ

# jget JSON PATH: a value from JSON text, read by PostgreSQL (no jq needed)
jget() {
	psql -X -At -v ON_ERROR_STOP=1 -v j="$1" -v p="$2" "$OPS_TEST_ADMIN_URL" \
		<<<"SELECT (:'j'::jsonb) #>> (:'p')::text[]"
}

# a database from the template, without the foreign keys to users so that
# test rows need no customers
prep_db() {
	local url
	url=$(new_db "$1") || return 1
	sql "$url" "ALTER TABLE usage_events DROP CONSTRAINT IF EXISTS usage_events_customer_id_fkey;
		ALTER TABLE billing_audit DROP CONSTRAINT IF EXISTS billing_audit_customer_id_fkey" >/dev/null
	echo "$url"
}

# seed URL TABLE CUTOFF N: N rows spread over the 400 days before CUTOFF,
# one row 1 us before it, one exactly at it, N/2 after it, two NULLs
seed() {
	local url=$1 t=$2 c=$3 n=$4 cols vals
	if [ "$t" = usage_events ]; then
		cols="customer_id, event_name, event_value, created_at"
		vals="gen_random_uuid(), 'api_calls', 1"
	else
		cols="event_type, data, created_at"
		vals="'invoice_created', '{}'"
	fi
	sql "$url" "INSERT INTO $t ($cols)
		SELECT $vals, timestamptz '$c' - g * (interval '400 days' / $n) FROM generate_series(1, $n) g;
		INSERT INTO $t ($cols) SELECT $vals, timestamptz '$c' - interval '1 microsecond';
		INSERT INTO $t ($cols) SELECT $vals, timestamptz '$c';
		INSERT INTO $t ($cols)
		SELECT $vals, timestamptz '$c' + g * (interval '100 days' / $n) FROM generate_series(1, $n / 2) g;
		INSERT INTO $t ($cols) SELECT $vals, NULL FROM generate_series(1, 2)" >/dev/null
}

# a fingerprint of every row that must survive: at/after CUTOFF or NULL
keepers() {
	sql "$1" "SELECT count(*) || ':' || md5(COALESCE(string_agg(id::text, ',' ORDER BY id), ''))
		FROM $2 WHERE created_at >= timestamptz '$3' OR created_at IS NULL"
}
older() { sql "$1" "SELECT count(*) FROM $2 WHERE created_at < timestamptz '$3'"; }
total() { sql "$1" "SELECT count(*) FROM $2"; }

purge() { # purge URL ARGS...
	local url=$1
	shift
	OUT=$(DATABASE_URL=$url "$APEXOPS_BIN" purge "$@" 2>"$E2E_TMP/stderr")
	RC=$?
	ERR=$(cat "$E2E_TMP/stderr")
}

# ---------------------------------------------------------------- cutoffs
U=$(prep_db purge_cut) || exit 1
check_cutoff() { # check_cutoff AS_OF MONTHS TZ EXPECTED
	OUT=$(DATABASE_URL=$U CRON_TZ=$3 "$APEXOPS_BIN" purge --json --as-of "$1" \
		--months "$2" 2>"$E2E_TMP/stderr")
	RC=$?
	ERR=$(cat "$E2E_TMP/stderr")
	assert_eq "cutoff: $1 minus $2 months in $3 is $4" "0 $4" "$RC $(jget "$OUT" '{cutoff}')"
}
check_cutoff 2025-08-31 18 UTC 2024-02-29T00:00:00.000000Z
check_cutoff 2025-08-31 6 UTC 2025-02-28T00:00:00.000000Z
check_cutoff 2024-02-29 12 UTC 2023-02-28T00:00:00.000000Z
check_cutoff 2024-02-29 1 UTC 2024-01-29T00:00:00.000000Z
check_cutoff 2024-02-29 18 UTC 2022-08-29T00:00:00.000000Z
check_cutoff 2025-03-31 1 UTC 2025-02-28T00:00:00.000000Z
check_cutoff 2025-03-31 13 UTC 2024-02-29T00:00:00.000000Z
check_cutoff 2025-01-31 2 UTC 2024-11-30T00:00:00.000000Z
check_cutoff 2025-01-31 11 UTC 2024-02-29T00:00:00.000000Z
check_cutoff 2025-01-31 1200 UTC 1925-01-31T00:00:00.000000Z
# local midnight: UTC+2 in winter, UTC+3 in summer
check_cutoff 2024-03-15 1 Europe/Tallinn 2024-02-14T22:00:00.000000Z
check_cutoff 2024-08-31 18 Europe/Tallinn 2023-02-27T22:00:00.000000Z
check_cutoff 2025-08-15 1 Europe/Tallinn 2025-07-14T21:00:00.000000Z
check_cutoff 2025-08-15 1 America/New_York 2025-07-15T04:00:00.000000Z
# the date is read before and after the run, so midnight cannot flake it
d1=$(sql "$U" "SELECT to_char((now() AT TIME ZONE 'Pacific/Kiritimati')::date, 'YYYY-MM-DD')")
OUT=$(DATABASE_URL=$U CRON_TZ=Pacific/Kiritimati "$APEXOPS_BIN" purge --json 2>/dev/null)
d2=$(sql "$U" "SELECT to_char((now() AT TIME ZONE 'Pacific/Kiritimati')::date, 'YYYY-MM-DD')")
got=$(jget "$OUT" '{today}')
if [ "$got" = "$d1" ] || [ "$got" = "$d2" ]; then
	ok "without --as-of, today is the current date in CRON_TZ ($got)"
else
	not_ok "without --as-of, today is the current date in CRON_TZ" "expected $d1 or $d2, got $got"
fi

# ------------------------------------------- plain table: exact boundaries
U=$(prep_db purge_plain) || exit 1
C=2024-02-29T00:00:00Z # 2025-08-31 minus 18 months
seed "$U" usage_events "$C" 20000
seed "$U" billing_audit "$C" 4000
ue_keep=$(keepers "$U" usage_events "$C")
ba_keep=$(keepers "$U" billing_audit "$C")
ue_old=$(older "$U" usage_events "$C")
ba_old=$(older "$U" billing_audit "$C")
ue_total=$(total "$U" usage_events)

purge "$U" --as-of 2025-08-31 --json
expect_rc 0 "dry-run exits 0"
assert_eq "dry-run plans every usage_events row older than the cutoff" "$ue_old" "$(jget "$OUT" '{tables,0,planned_rows}')"
assert_eq "dry-run plans every billing_audit row older than the cutoff" "$ba_old" "$(jget "$OUT" '{tables,1,planned_rows}')"
assert_eq "dry-run counts the NULL created_at rows" "2 2" "$(jget "$OUT" '{tables,0,null_rows}') $(jget "$OUT" '{tables,1,null_rows}')"
assert_eq "dry-run names the newest affected row: 1 us before the cutoff" \
	"2024-02-28T23:59:59.999999Z" "$(jget "$OUT" '{tables,0,newest}')"
est=$(jget "$OUT" '{tables,0,est_bytes}')
if [ "${est:-0}" -gt 0 ]; then ok "dry-run estimates the bytes ($est)"; else not_ok "dry-run estimates the bytes" "est_bytes=$est"; fi
assert_eq "dry-run deletes nothing" "$ue_total" "$(total "$U" usage_events)"
planned_ue=$(jget "$OUT" '{tables,0,planned_rows}')
planned_ba=$(jget "$OUT" '{tables,1,planned_rows}')

purge "$U" --as-of 2025-08-31
expect_rc 0 "text dry-run exits 0"
assert_contains "text dry-run says it is a dry-run" "$OUT" "DRY-RUN"
assert_contains "text dry-run shows the cutoff" "$OUT" "2024-02-29T00:00:00.000000Z"

OUT=$(DATABASE_URL=$U CONFIRM=yes "$APEXOPS_BIN" purge --as-of 2025-08-31 2>"$E2E_TMP/stderr")
RC=$?
ERR=$(cat "$E2E_TMP/stderr")
expect_rc 0 "CONFIRM=yes exits 0"
assert_contains "CONFIRM=yes warns that it means dry-run" "$ERR" "CONFIRM='yes' is not exactly"
assert_eq "CONFIRM=yes deletes nothing" "$ue_total" "$(total "$U" usage_events)"

OUT=$(DATABASE_URL=$U CONFIRM=1 "$APEXOPS_BIN" purge --as-of 2025-08-31 --json --batch-min 700 2>"$E2E_TMP/stderr")
RC=$?
ERR=$(cat "$E2E_TMP/stderr")
expect_rc 0 "CONFIRM=1 executes and exits 0"
assert_eq "execution deleted exactly what the dry-run planned (usage_events)" "$planned_ue" "$(jget "$OUT" '{tables,0,deleted_rows}')"
assert_eq "execution deleted exactly what the dry-run planned (billing_audit)" "$planned_ba" "$(jget "$OUT" '{tables,1,deleted_rows}')"
assert_eq "the pacer is on by default for --execute" true "$(jget "$OUT" '{pace,enabled}')"
batches=$(jget "$OUT" '{tables,0,batches}')
if [ "${batches:-0}" -gt 1 ]; then ok "execution ran in batches ($batches)"; else not_ok "execution ran in batches" "batches=$batches"; fi
assert_eq "no usage_events row older than the cutoff is left" 0 "$(older "$U" usage_events "$C")"
assert_eq "no billing_audit row older than the cutoff is left" 0 "$(older "$U" billing_audit "$C")"
assert_eq "every usage_events row at/after the cutoff or NULL is kept" "$ue_keep" "$(keepers "$U" usage_events "$C")"
assert_eq "every billing_audit row at/after the cutoff or NULL is kept" "$ba_keep" "$(keepers "$U" billing_audit "$C")"
assert_eq "the row exactly at the cutoff stays, the one 1 us before went" "1 0" \
	"$(sql "$U" "SELECT count(*) FILTER (WHERE created_at = '$C') || ' ' || count(*) FILTER (WHERE created_at = timestamptz '$C' - interval '1 microsecond') FROM usage_events")"
purge "$U" --as-of 2025-08-31 --execute --json --pace off
assert_eq "a second execution finds nothing to delete" "0 0" "$(jget "$OUT" '{planned_rows}') $(jget "$OUT" '{deleted_rows}')"
assert_eq "--pace off turns the pacer off" false "$(jget "$OUT" '{pace,enabled}')"
purge "$U" --as-of 2025-08-31 --execute --pace slow
expect_rc 64 "--pace takes on or off only"
seed "$U" usage_events "$C" 2000
purge "$U" --as-of 2025-08-31 --execute --json --sleep-coef 0.5
assert_eq "--sleep-coef 0.5 is accepted" "0 true" "$RC $(jget "$OUT" '{pace,enabled}')"
assert_eq "no usage_events row older than the cutoff is left after it" 0 "$(older "$U" usage_events "$C")"
fl=$(jget "$OUT" '{pace,flush_max_ms}')
assert_eq "the pacer reports its flush canary's round trip" yes "$(awk -v v="$fl" 'BEGIN { print (v + 0 > 0) ? "yes" : "no" }')"

# --------- a locked row is walked past, then waited for at the end, then deleted
U=$(prep_db purge_lock) || exit 1
seed "$U" usage_events "$C" 5000
l_keep=$(keepers "$U" usage_events "$C")
# a live transaction holds the oldest expired row until the purge is seen
# waiting for it (a condition, not a time)
psql -X -q "$U" -c "BEGIN; SELECT 1 FROM usage_events WHERE created_at < '$C' ORDER BY created_at LIMIT 1 FOR UPDATE; SELECT pg_sleep(600); COMMIT" \
	>/dev/null 2>&1 &
locker=$!
wait_for "$U" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND state = 'active' AND pid <> pg_backend_pid()" ||
	not_ok "the locker holds the oldest row"
DATABASE_URL=$U "$APEXOPS_BIN" purge --as-of 2025-08-31 --execute --json --lock-timeout 600000 --vacuum \
	>"$E2E_TMP/lock.out" 2>"$E2E_TMP/lock.err" &
purger=$!
if wait_for "$U" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'apexops/purge' AND wait_event_type = 'Lock'"; then
	ok "the purge deleted the rest and came back to wait for the locked row"
else
	not_ok "the purge came back to wait for the locked row"
fi
assert_eq "while it waits, only the locked row is left" 1 "$(older "$U" usage_events "$C")"
sql "$U" "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$locker" 2>/dev/null
wait "$purger"
RC=$?
OUT=$(cat "$E2E_TMP/lock.out")
ERR=$(cat "$E2E_TMP/lock.err")
expect_rc 0 "a purge that meets a locked row finishes once it is released"
assert_eq "it walked the table twice and left nothing" "2 0" "$(jget "$OUT" '{tables,0,passes}') $(jget "$OUT" '{tables,0,left_rows}')"
assert_eq "after the wait no expired row is left" 0 "$(older "$U" usage_events "$C")"
assert_eq "after the wait every kept row is there" "$l_keep" "$(keepers "$U" usage_events "$C")"
assert_eq "--vacuum vacuumed the purged tables" 2 \
	"$(sql "$U" "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('usage_events', 'billing_audit') AND last_vacuum IS NOT NULL")"

# a second SIGTERM cancels a batch that waits for a lock (the db layer's hook)
seed "$U" usage_events "$C" 100
psql -X -q "$U" -c "BEGIN; SELECT 1 FROM usage_events WHERE created_at < '$C' ORDER BY created_at LIMIT 1 FOR UPDATE; SELECT pg_sleep(600); COMMIT" \
	>/dev/null 2>&1 &
locker=$!
wait_for "$U" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND state = 'active' AND pid <> pg_backend_pid()" ||
	not_ok "the locker holds the oldest row again"
# no statement timeout either: only the cancel can end the wait
DATABASE_URL=$U DATABASE_STATEMENT_TIMEOUT_MS=0 "$APEXOPS_BIN" purge --as-of 2025-08-31 --execute --lock-timeout 600000 \
	>"$E2E_TMP/twice.out" 2>"$E2E_TMP/twice.err" &
purger=$!
wait_for "$U" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'apexops/purge' AND wait_event_type = 'Lock'" ||
	not_ok "the purge waits for the locked row"
# the first signal asks for a stop after the batch, which waits; the next
# ones cancel it (signals do not queue, so repeat until it is gone)
for _ in $(seq 1 100); do
	kill -TERM "$purger" 2>/dev/null || break
	sleep 0.2
done
if kill -0 "$purger" 2>/dev/null; then
	not_ok "a second SIGTERM ends a purge that waits for a lock"
	kill -KILL "$purger"
else
	ok "a second SIGTERM ends a purge that waits for a lock"
fi
wait "$purger"
RC=$?
OUT=$(cat "$E2E_TMP/twice.out")
ERR=$(cat "$E2E_TMP/twice.err")
expect_rc 75 "the cancelled purge exits 75"
assert_contains "and says it stopped" "$OUT" "STOPPED"
sql "$U" "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$locker" 2>/dev/null

# ----------------------------- a failed execution says so (mode, status, error)
U=$(prep_db purge_fail) || exit 1
seed "$U" usage_events "$C" 1000
seed "$U" billing_audit "$C" 1000
sql "$U" "CREATE FUNCTION no_delete() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'audit rows are immutable'; END \$\$;
	CREATE TRIGGER immutable BEFORE DELETE ON billing_audit FOR EACH ROW EXECUTE FUNCTION no_delete()" >/dev/null
purge "$U" --as-of 2025-08-31 --execute --json
expect_rc 1 "an execution that fails exits 1"
assert_eq "its JSON says the mode asked for and the status" "execute failed" "$(jget "$OUT" '{mode}') $(jget "$OUT" '{status}')"
assert_contains "its JSON has the error" "$(jget "$OUT" '{error}')" "audit rows are immutable"
purge "$U" --as-of 2025-08-31 --execute
expect_rc 1 "the text execution fails too"
assert_contains "the text says the run failed" "$OUT" ": failed"
assert_contains "the text shows the error" "$OUT" "error: purging public.billing_audit"
assert_not_contains "the text is not a dry-run plan" "$OUT" "run again with --execute"
assert_not_contains "no 'written or deleted meanwhile' for a failure" "$OUT" "written or deleted meanwhile"

# ----------------------------------- foreign keys that reference the policy tables
U=$(prep_db purge_fk) || exit 1
seed "$U" usage_events "$C" 2000
sql "$U" "CREATE TABLE ue_cascade (id serial PRIMARY KEY, ue uuid REFERENCES usage_events (id) ON DELETE CASCADE);
	CREATE TABLE ue_setnull (id serial PRIMARY KEY, ue uuid REFERENCES usage_events (id) ON DELETE SET NULL);
	INSERT INTO ue_cascade (ue) SELECT id FROM usage_events WHERE created_at < '$C' ORDER BY created_at LIMIT 300;
	INSERT INTO ue_cascade (ue) SELECT id FROM usage_events WHERE created_at >= '$C' ORDER BY created_at LIMIT 10;
	INSERT INTO ue_setnull (ue) SELECT id FROM usage_events WHERE created_at < '$C' ORDER BY created_at OFFSET 300 LIMIT 200" >/dev/null
purge "$U" --as-of 2025-08-31 --json
expect_rc 0 "a dry-run with referencing tables exits 0"
assert_eq "the plan names the CASCADE child and its rows that go" "ue_cascade cascade 300" \
	"$(jget "$OUT" '{tables,0,references,0,table}') $(jget "$OUT" '{tables,0,references,0,on_delete}') $(jget "$OUT" '{tables,0,references,0,referencing_rows}')"
assert_eq "the plan names the SET NULL child and its rows that change" "ue_setnull set null 200" \
	"$(jget "$OUT" '{tables,0,references,1,table}') $(jget "$OUT" '{tables,0,references,1,on_delete}') $(jget "$OUT" '{tables,0,references,1,referencing_rows}')"
purge "$U" --as-of 2025-08-31
assert_contains "the text plan shows the cascade" "$OUT" "referenced by      ue_cascade (ue_cascade_ue_fkey, ON DELETE cascade): 300 rows of it will be deleted"
purge "$U" --as-of 2025-08-31 --execute
expect_rc 0 "an execution with CASCADE and SET NULL children exits 0"
assert_eq "the CASCADE child lost exactly the planned rows" 10 "$(total "$U" ue_cascade)"
assert_eq "the SET NULL child's planned rows were changed" "200 0" \
	"$(sql "$U" "SELECT count(*) FILTER (WHERE ue IS NULL) || ' ' || count(*) FILTER (WHERE ue IS NOT NULL) FROM ue_setnull")"

U=$(prep_db purge_restrict) || exit 1
seed "$U" usage_events "$C" 2000
sql "$U" "CREATE TABLE ue_restrict (id serial PRIMARY KEY, ue uuid REFERENCES usage_events (id) ON DELETE RESTRICT);
	CREATE TABLE ue_noaction (id serial PRIMARY KEY, ue uuid REFERENCES usage_events (id));
	INSERT INTO ue_restrict (ue) SELECT id FROM usage_events WHERE created_at < '$C' ORDER BY created_at LIMIT 50;
	INSERT INTO ue_noaction (ue) SELECT id FROM usage_events WHERE created_at < '$C' ORDER BY created_at DESC LIMIT 5" >/dev/null
r_old=$(older "$U" usage_events "$C")
purge "$U" --as-of 2025-08-31
assert_contains "the dry-run finds the RESTRICT reference" "$OUT" "ue_restrict (ue_restrict_ue_fkey, ON DELETE restrict): 50 expired rows are referenced"
purge "$U" --as-of 2025-08-31 --execute
expect_rc 1 "--execute refuses with a RESTRICT child referencing expired rows"
assert_contains "the refusal names the table and the count" "$ERR" "50 expired rows of public.usage_events are referenced by ue_restrict (constraint ue_restrict_ue_fkey, ON DELETE restrict)"
assert_contains "the refusal names the NO ACTION table too" "$ERR" "5 expired rows of public.usage_events are referenced by ue_noaction"
assert_eq "the refusal deleted nothing" "$r_old" "$(older "$U" usage_events "$C")"
purge "$U" --as-of 2025-08-31 --execute --skip-referenced --json
expect_rc 0 "--skip-referenced purges the rest"
assert_eq "only the referenced rows are left" 55 "$(older "$U" usage_events "$C")"
assert_eq "they are reported as referenced" "55 55" "$(jget "$OUT" '{tables,0,left_rows}') $(jget "$OUT" '{tables,0,left,referenced by a foreign key (skipped)}')"

# --------------------------------------------------------- bad month values
U=$(prep_db purge_bad) || exit 1
seed "$U" usage_events "$C" 2000
before=$(total "$U" usage_events)
for v in 0 -1 abc 18abc "" 1201 " 18" 1e2; do
	for var in RETENTION_MONTHS USAGE_RETENTION_MONTHS; do
		OUT=$(env DATABASE_URL="$U" CONFIRM=1 "$var=$v" "$APEXOPS_BIN" purge --as-of 2025-08-31 2>"$E2E_TMP/stderr")
		RC=$?
		ERR=$(cat "$E2E_TMP/stderr")
		expect_rc 78 "$var='$v' exits 78"
	done
	purge "$U" --execute --as-of 2025-08-31 --months "$v"
	expect_rc 78 "--months '$v' exits 78"
	assert_contains "--months '$v' names the flag and the range" "$ERR" "1 to 1200"
done
assert_eq "bad month values changed no row" "$before" "$(total "$U" usage_events)"
assert_eq "bad month values recorded no run" 0 "$(sql "$U" "SELECT count(*) FROM apexops.job_runs")"
for v in 2025-02-30 2025-8-31 yesterday ""; do
	purge "$U" --execute --as-of "$v"
	expect_rc 64 "--as-of '$v' is a usage error"
done
for v in -1 abc 1e3 0x10 inf nan .5 2. 1.2.3 101 " 2" ""; do
	purge "$U" --execute --as-of 2025-08-31 --sleep-coef "$v"
	expect_rc 64 "--sleep-coef '$v' is a usage error"
	assert_contains "--sleep-coef '$v' names the flag and the range" "$ERR" "--sleep-coef: invalid value"
done
assert_contains "--sleep-coef names what is allowed" "$ERR" "from 0 to 100"
assert_eq "bad --sleep-coef values changed no row" "$before" "$(total "$U" usage_events)"
for v in 16mb 16KB "16 MB" 16MiB 1.5MB -1 0 4kB 2TB MB ""; do
	purge "$U" --execute --as-of 2025-08-31 --max-lag-bytes "$v"
	expect_rc 64 "--max-lag-bytes '$v' is a usage error"
	assert_contains "--max-lag-bytes '$v' names the flag" "$ERR" "--max-lag-bytes: invalid size '$v'"
done
assert_contains "--max-lag-bytes names the range and the units" "$ERR" "expected 8kB to 1TB, a number of bytes or with a unit B, kB, MB, GB or TB"
purge "$U" --execute --as-of 2025-08-31 --pace off --max-lag-bytes 64MB
expect_rc 64 "--max-lag-bytes without the pacer is a usage error"
assert_eq "bad --max-lag-bytes values changed no row" "$before" "$(total "$U" usage_events)"
purge "$U" --execute --bogus
expect_rc 64 "an unknown flag is a usage error"
purge "$U" --execute --dry-run
expect_rc 64 "--execute with --dry-run is a usage error"
purge "$U" --e --as-of 2025-08-31
expect_rc 64 "an abbreviated --e is a usage error, not --execute"
assert_contains "--e names the option it would have meant" "$ERR" "write '--execute' in full"
purge "$U" --as-of 2025-08-31 --months
expect_rc 64 "--months without a value is a usage error"
assert_contains "--months without a value says it needs one" "$ERR" "option '--months' needs a value"
purge "$U" --execute --as-of 2062-11-25
expect_rc 64 "a future --as-of is refused"
assert_contains "the refusal says it is after today" "$ERR" "--as-of 2062-11-25 is after today"
OUT=$(DATABASE_URL=$U CONFIRM=1 "$APEXOPS_BIN" purge --as-of 2062-11-25 2>"$E2E_TMP/stderr")
RC=$?
expect_rc 64 "a future --as-of with CONFIRM=1 is refused"
purge "$U" --execute --as-of 2062-11-25 --allow-future-as-of
expect_rc 64 "--allow-future-as-of does not allow an execution"
purge "$U" --as-of 2062-11-25 --allow-future-as-of --json
expect_rc 0 "--allow-future-as-of allows a dry-run"
assert_eq "only the allowed preview was recorded" "1 dry-run" \
	"$(sql "$U" "SELECT count(*) || ' ' || min(mode) FROM apexops.job_runs WHERE job = 'usage-purge'")"
assert_eq "the preview plans every dated row" "$before" "$(( $(jget "$OUT" '{planned_rows}') + 2 ))"
assert_eq "bad flags changed no row" "$before" "$(total "$U" usage_events)"

# ------------------------------------- partitioned usage_events, no billing_audit
make_partitioned() { # make_partitioned URL: monthly, 2022-09..2025-12, DEFAULT
sql "$1" "DROP TABLE usage_events; DROP TABLE billing_audit;
CREATE TABLE usage_events (
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	customer_id uuid NOT NULL,
	event_name varchar(100) NOT NULL,
	event_value bigint NOT NULL,
	event_metadata jsonb DEFAULT '{}',
	created_at timestamptz DEFAULT CURRENT_TIMESTAMP,
	stripe_synced boolean DEFAULT false,
	stripe_synced_at timestamptz
) PARTITION BY RANGE (created_at);
CREATE INDEX idx_usage_events_created ON usage_events (created_at);
DO \$\$
DECLARE m date;
BEGIN
	FOR m IN SELECT generate_series(date '2022-09-01', date '2025-12-01', interval '1 month')::date LOOP
		EXECUTE format('CREATE TABLE %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
			'usage_events_p' || to_char(m, 'YYYY_MM'), m::timestamptz, (m + interval '1 month')::timestamptz);
	END LOOP;
END \$\$;
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT;" >/dev/null
}
U=$(prep_db purge_part) || exit 1
make_partitioned "$U"
seed "$U" usage_events "$C" 20000
p_keep=$(keepers "$U" usage_events "$C")
p_old=$(older "$U" usage_events "$C")
# partitions wholly before 2024-02-29: 2022-09 .. 2024-01 = 17
purge "$U" --as-of 2025-08-31 --json
expect_rc 0 "partitioned dry-run with billing_audit missing exits 0"
assert_eq "partitioned dry-run plans every older row" "$p_old" "$(jget "$OUT" '{tables,0,planned_rows}')"
assert_eq "partitioned dry-run plans 17 whole partitions" "true 17" \
	"$(jget "$OUT" '{tables,0,partitioned}') $(jget "$OUT" '{tables,0,partitions_planned}')"
assert_eq "a missing billing_audit is reported" "public.billing_audit true" \
	"$(jget "$OUT" '{tables,1,table}') $(jget "$OUT" '{tables,1,missing}')"
planned=$(jget "$OUT" '{tables,0,planned_rows}')
prows=$(jget "$OUT" '{tables,0,partition_rows}')
purge "$U" --as-of 2025-08-31
assert_contains "text plan says billing_audit does not exist" "$OUT" "does not exist: skipped"
assert_contains "the plan says how the partitions go" "$OUT" "detached at once, dropped one every 1.5 s (about 24 s; --drop-pause)"
purge "$U" --as-of 2025-08-31 --execute --json --drop-pause 20
expect_rc 0 "partitioned execution with billing_audit missing exits 0"
assert_eq "partitioned execution deleted what the plan counted" "$planned" "$(jget "$OUT" '{tables,0,deleted_rows}')"
assert_eq "17 expired partitions were detached, then dropped" "17 17 20" \
	"$(jget "$OUT" '{tables,0,partitions_detached}') $(jget "$OUT" '{tables,0,partitions_dropped}') $(jget "$OUT" '{drop_pause_ms}')"
assert_eq "with short locks, not CONCURRENTLY (a DEFAULT partition)" 17 \
	"$(grep -c 'purge partition detached.*how=plain' "$E2E_TMP/stderr")"
assert_eq "every drop is logged" 17 "$(grep -c 'purge dropped partition' "$E2E_TMP/stderr")"
assert_eq "no detached table is left recorded" 0 "$(sql "$U" "SELECT count(*) FROM apexops.purge_detached")"
assert_eq "the expired partitions are gone from the catalog" 0 \
	"$(sql "$U" "SELECT count(*) FROM pg_class WHERE relname < 'usage_events_p2024_02' AND relname LIKE 'usage_events_p20%'")"
assert_eq "the boundary partition is kept" 1 "$(sql "$U" "SELECT count(*) FROM pg_class WHERE relname = 'usage_events_p2024_02'")"
if [ "$prows" -gt 0 ] && [ "$prows" -lt "$planned" ]; then
	ok "part of the rows went with whole partitions ($prows of $planned), the rest row-wise"
else
	not_ok "part of the rows went with whole partitions" "partition_rows=$prows planned=$planned"
fi
assert_eq "partitioned: no row older than the cutoff is left" 0 "$(older "$U" usage_events "$C")"
assert_eq "partitioned: every row at/after the cutoff or NULL is kept" "$p_keep" "$(keepers "$U" usage_events "$C")"

# ------------------- partitioned: SIGKILL and SIGTERM between detaching and dropping
wait_gone() { # until no apexops/purge backend is left
	wait_for "$U" "SELECT (count(*) = 0)::int FROM pg_stat_activity WHERE application_name = 'apexops/purge'"
}
U=$(prep_db purge_pkill) || exit 1
make_partitioned "$U"
seed "$U" usage_events "$C" 20000
q_keep=$(keepers "$U" usage_events "$C")
q_old=$(older "$U" usage_events "$C")
# a pause long enough that the signals land in it: 17 detached, 1 dropped
DATABASE_URL=$U "$APEXOPS_BIN" purge --as-of 2025-08-31 --execute --drop-pause 600000 >/dev/null 2>&1 &
victim=$!
wait_for "$U" "SELECT (count(*) = 16)::int FROM apexops.purge_detached" ||
	not_ok "the purge detached every expired month and dropped one"
kill -KILL "$victim"
wait "$victim" 2>/dev/null
assert_eq "killed in the pause: no expired row is left in the table" 0 "$(older "$U" usage_events "$C")"
assert_eq "the 16 detached months are still there, recorded" 16 \
	"$(sql "$U" "SELECT count(*) FROM apexops.purge_detached d JOIN pg_class c ON c.oid = d.relid WHERE NOT c.relispartition")"
drows=$(sql "$U" "SELECT sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %s', child), false, true, '')))[1]::text::bigint) FROM apexops.purge_detached")
wait_gone || not_ok "the killed purge's backend went away"
assert_contains "status shows them" "$(DATABASE_URL=$U "$APEXOPS_BIN" status 2>/dev/null)" \
	"detached, not dropped      16 tables"
purge "$U" --as-of 2025-08-31 --json
expect_rc 0 "the dry-run after the kill exits 0"
assert_eq "the dry-run counts the detached months" "16 $drows" \
	"$(jget "$OUT" '{tables,0,detached_pending}') $(jget "$OUT" '{tables,0,detached_rows}')"
assert_eq "and plans their rows" "$drows" "$(jget "$OUT" '{tables,0,planned_rows}')"
assert_eq "the dry-run dropped nothing" 16 "$(sql "$U" "SELECT count(*) FROM apexops.purge_detached")"
purge "$U" --as-of 2025-08-31
assert_contains "the text plan lists them" "$OUT" "detached earlier   16 ($drows rows), dropped first: public.usage_events_p2022_10,"
# SIGTERM in the pause of the next run: stopped, the rest still recorded
DATABASE_URL=$U "$APEXOPS_BIN" purge --as-of 2025-08-31 --execute --drop-pause 600000 >"$E2E_TMP/term.out" 2>&1 &
victim=$!
wait_for "$U" "SELECT (count(*) = 15)::int FROM apexops.purge_detached" ||
	not_ok "the next purge dropped one detached month first"
kill -TERM "$victim"
wait "$victim"
RC=$?
expect_rc 75 "SIGTERM in the pause between drops exits 75"
assert_eq "the stopped run is recorded as stopped" stopped \
	"$(sql "$U" "SELECT status FROM apexops.job_runs ORDER BY id DESC LIMIT 1")"
assert_eq "15 detached months are left for the next run" 15 "$(sql "$U" "SELECT count(*) FROM apexops.purge_detached")"
purge "$U" --as-of 2025-08-31 --execute --json --drop-pause 0
expect_rc 0 "the next run drops the rest"
assert_eq "it dropped the 15 back to back, detaching none" "15 0 0" \
	"$(jget "$OUT" '{tables,0,partitions_dropped}') $(jget "$OUT" '{tables,0,partitions_detached}') $(jget "$OUT" '{drop_pause_ms}')"
assert_eq "nothing is left recorded" 0 "$(sql "$U" "SELECT count(*) FROM apexops.purge_detached")"
assert_eq "the expired months are gone from the catalog" 0 \
	"$(sql "$U" "SELECT count(*) FROM pg_class WHERE relname < 'usage_events_p2024_02' AND relname LIKE 'usage_events_p20%'")"
assert_eq "after the kill and the stop, every row at/after the cutoff is kept" "$q_keep" "$(keepers "$U" usage_events "$C")"
assert_eq "every expired row went" 0 "$(older "$U" usage_events "$C")"
if [ "$q_old" -gt "$drows" ]; then ok "the boundary month's rows went row-wise"; else not_ok "the boundary month's rows went row-wise" "$q_old vs $drows"; fi
purge "$U" --drop-pause 1.5
expect_rc 64 "--drop-pause takes whole milliseconds"
assert_contains "and says so" "$ERR" "--drop-pause: invalid value '1.5': expected a whole number from 0 to 600000"

# --------------------------------------- concurrency, SIGTERM, SIGKILL, rerun
U=$(prep_db purge_kill) || exit 1
seed "$U" usage_events "$C" 200000
k_keep=$(keepers "$U" usage_events "$C")
k_old=$(older "$U" usage_events "$C")
wait_running() { # until a run row is running and has deleted some rows
	for _ in $(seq 1 100); do
		[ "$(older "$U" usage_events "$C")" -lt "$k_old" ] &&
			[ "$(sql "$U" "SELECT count(*) FROM apexops.job_runs WHERE job = 'usage-purge' AND status = 'running'")" -ge 1 ] && return 0
		sleep 0.1
	done
	return 1
}
slow=(--as-of 2025-08-31 --execute --batch-min 500 --batch-max 500 --sleep 40)

DATABASE_URL=$U "$APEXOPS_BIN" purge "${slow[@]}" >"$E2E_TMP/first.out" 2>"$E2E_TMP/first.err" &
first=$!
if wait_running; then ok "the first purge is running"; else not_ok "the first purge is running"; fi
purge "$U" --as-of 2025-08-31 --execute
expect_rc 75 "a second purge while one runs exits 75"
assert_contains "the second purge says another one is running" "$ERR" "another purge is running"
kill -TERM "$first"
wait "$first"
RC=$?
OUT=$(cat "$E2E_TMP/first.out")
ERR=$(cat "$E2E_TMP/first.err")
expect_rc 75 "SIGTERM stops the purge after its batch with exit 75"
assert_contains "the stopped purge prints a summary" "$OUT" "STOPPED"
assert_contains "the stopped purge says why rows are left" "$OUT" "not deleted: stopped by a signal"
assert_not_contains "a stop is not 'written or deleted meanwhile'" "$OUT" "written or deleted meanwhile"
assert_eq "the stopped run is recorded as stopped" stopped \
	"$(sql "$U" "SELECT status FROM apexops.job_runs ORDER BY id DESC LIMIT 1")"
left=$(older "$U" usage_events "$C")
if [ "$left" -gt 0 ] && [ "$left" -lt "$k_old" ]; then ok "the stop left part of the work ($left rows)"; else not_ok "the stop left part of the work" "left=$left of $k_old"; fi

DATABASE_URL=$U "$APEXOPS_BIN" purge "${slow[@]}" >/dev/null 2>&1 &
victim=$!
before_kill=$(older "$U" usage_events "$C")
# the run record shows progress while it runs (written as batches commit)
wait_for "$U" "SELECT ((counts ->> 'rows_deleted')::bigint > 0 AND (counts ->> 'rows_planned')::bigint > 0)::int FROM apexops.job_runs WHERE status = 'running' ORDER BY id DESC LIMIT 1" ||
	not_ok "the running purge records its progress"
kill -KILL "$victim"
wait "$victim" 2>/dev/null
killed_id=$(sql "$U" "SELECT max(id) FROM apexops.job_runs")
assert_eq "the killed run is left as running" running "$(sql "$U" "SELECT status FROM apexops.job_runs WHERE id = $killed_id")"
left=$(older "$U" usage_events "$C")
if [ "$left" -gt 0 ] && [ "$left" -lt "$before_kill" ]; then ok "SIGKILL hit in the middle ($left rows left)"; else not_ok "SIGKILL hit in the middle" "left=$left"; fi
assert_eq "after SIGKILL no row at/after the cutoff is lost" "$k_keep" "$(keepers "$U" usage_events "$C")"
rec=$(sql "$U" "SELECT (counts ->> 'rows_planned') || ' ' || (counts ->> 'rows_deleted') FROM apexops.job_runs WHERE id = $killed_id")
if [ "${rec% *}" = "$before_kill" ] && [ "${rec#* }" -gt 0 ] && [ "${rec#* }" -le $((before_kill - left)) ]; then
	ok "the killed run's record kept its plan and progress ($rec)"
else
	not_ok "the killed run's record kept its plan and progress" "record: $rec, planned $before_kill, deleted $((before_kill - left))"
fi
wait_gone || not_ok "the killed purge's backend went away"
purge "$U" --as-of 2025-08-31 --execute --json
expect_rc 0 "the rerun finishes the job"
assert_eq "the rerun deleted what it planned" "$(jget "$OUT" '{planned_rows}')" "$(jget "$OUT" '{deleted_rows}')"
assert_eq "final state: no row older than the cutoff is left" 0 "$(older "$U" usage_events "$C")"
assert_eq "final state: every row at/after the cutoff or NULL is kept" "$k_keep" "$(keepers "$U" usage_events "$C")"
assert_eq "history shows the killed run as abandoned" abandoned \
	"$(sql "$U" "SELECT status FROM apexops.job_runs WHERE id = $killed_id")"

purge "$U" history --json --limit 10
expect_rc 0 "history --json exits 0"
assert_eq "history lists the runs newest first" "succeeded abandoned stopped" \
	"$(jget "$OUT" '{0,status}') $(jget "$OUT" '{1,status}') $(jget "$OUT" '{2,status}')"
assert_eq "history records who ran it" "apexops/purge" "$(jget "$OUT" '{0,application_name}')"
assert_eq "history keeps the killed run's progress" "$rec" \
	"$(jget "$OUT" '{1,rows_planned}') $(jget "$OUT" '{1,rows_deleted}')"
purge "$U" history --limit 2
expect_rc 0 "history exits 0"
assert_eq "history --limit 2 shows a header and two runs" 3 "$(printf '%s\n' "$OUT" | wc -l)"
assert_contains "history text shows the abandoned run" "$OUT" "abandoned"
purge "$U" history --limit 0
expect_rc 64 "history --limit 0 is a usage error"

# the scheduled path: USAGE_RETENTION_MONTHS, executes, trigger scheduled
U=$(prep_db purge_sched) || exit 1
seed "$U" usage_events "$C" 2000
s_old=$(older "$U" usage_events "$C")
OUT=$(DATABASE_URL=$U USAGE_RETENTION_MONTHS=1200 RETENTION_MONTHS=1 "$APEXOPS_BIN" purge --scheduled --json 2>"$E2E_TMP/stderr")
RC=$?
ERR=$(cat "$E2E_TMP/stderr")
expect_rc 0 "purge --scheduled exits 0"
assert_eq "--scheduled takes USAGE_RETENTION_MONTHS and executes" "1200 execute" "$(jget "$OUT" '{months}') $(jget "$OUT" '{mode}')"
assert_eq "--scheduled with 1200 months deleted nothing of 2025" "$s_old" "$(older "$U" usage_events "$C")"
assert_eq "--scheduled is recorded as a scheduled execution" "scheduled execute succeeded" \
	"$(sql "$U" "SELECT trigger || ' ' || mode || ' ' || status FROM apexops.job_runs ORDER BY id DESC LIMIT 1")"
purge "$U" --scheduled --months 3
expect_rc 64 "--scheduled refuses other options"
assert_contains "the refusal says where the settings come from" "$ERR" "USAGE_RETENTION_MONTHS"
assert_contains "the systemd unit runs the scheduled path" "$(cat "$ROOT/deploy/apexops-purge.service")" "apexops purge --scheduled"

# a purge right after another never finds the first one's lock still held
# (the server frees session locks late; apexops releases them before exit)
conflicts=0
for _ in $(seq 1 15); do
	purge "$U" --as-of 2025-08-31
	[ "$RC" -eq 75 ] && conflicts=$((conflicts + 1))
done
assert_eq "15 back-to-back purges: no false 'another purge is running'" 0 "$conflicts"

done_testing
