#!/usr/bin/env bash
# apexops sandbox revenue, end to end: flags and their errors, the tier
# totals, row-for-row agreement with a JavaScript oracle of the original's
# formulas (revenue_ref.js), determinism, the delete window, other
# publishers untouched, --keep-history, dry-run and the SVG chart.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

SANDBOX=138f62be-5cee-4c73-aba4-ba78ea77ab44
OTHER=00000000-0000-4000-8000-0000000000aa

URL=$(new_db revenue) || { echo "Bail out! cannot create database"; exit 1; }
export DATABASE_URL=$URL

assert_eq "migration: index on revenue_events(publisher_id, event_date)" \
	"{publisher_id,event_date}" \
	"$(sql "$URL" "SELECT array_agg(a.attname ORDER BY k.n)::text FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(att, n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.att WHERE i.indexrelid = 'idx_revenue_events_publisher_date'::regclass")"

run_ops sandbox revenue --help
expect_rc 0 "--help: exit 0"
assert_contains "--help: documents --keep-history" "$OUT" "--keep-history"
assert_contains "--help: says a tier is required unless --dry-run" "$OUT" "Required,"

# --- before the sandbox exists -------------------------------------------
run_ops sandbox revenue starter --start 2025-01-01
expect_rc 1 "no placements: exit 1"
assert_contains "no placements: tells to run bootstrap" "$ERR" "apexops sandbox bootstrap"
run_ops sandbox revenue --dry-run
expect_rc 1 "no placements: dry-run exits 1 too"

# --- seed the sandbox inventory (ORIGINAL-SYSTEM.md §4.2) ----------------
# (sandbox bootstrap is written in parallel; the fixture is seeded here)
seed() {
	psql -X -q -v ON_ERROR_STOP=1 "$URL" <<SQL
INSERT INTO publishers (id, company_name) VALUES
  ('$SANDBOX', 'Apex Sandbox Studio'), ('$OTHER', 'Other Publisher')
  ON CONFLICT DO NOTHING;
INSERT INTO apps (id, publisher_id, name, bundle_id, platform) VALUES
  ('7bcfc807-1834-4d69-a1ca-27e258f4ce75', '$SANDBOX', 'Apex Sandbox Android', 'com.apex.sandbox.android', 'android'),
  ('6b8213e3-b331-40b8-a32f-2bac1678e737', '$SANDBOX', 'Apex Sandbox iOS', 'com.apex.sandbox.ios', 'ios'),
  ('26c1c1eb-9fe1-4d3d-9218-6a2d863d57ac', '$SANDBOX', 'Apex Sandbox Unity', 'com.apex.sandbox.unity', 'unity'),
  ('3a6dac72-aa81-44af-909c-5b48ab9cbe67', '$SANDBOX', 'Apex Sandbox Android TV/CTV', 'com.apex.sandbox.androidtv', 'android_tv'),
  ('f79cd436-751a-4e26-b2cc-298d1029f794', '$SANDBOX', 'Apex Sandbox tvOS', 'com.apex.sandbox.tvos', 'tvos'),
  ('00000000-0000-4000-8000-0000000000ab', '$OTHER', 'Other App', 'com.other', 'android')
  ON CONFLICT DO NOTHING;
INSERT INTO placements (id, app_id, name, type)
SELECT p.id::uuid, a.id::uuid, a.label || ' ' || t.label, t.type
FROM (VALUES
  (1, '7bcfc807-1834-4d69-a1ca-27e258f4ce75', 'Android'),
  (2, '6b8213e3-b331-40b8-a32f-2bac1678e737', 'iOS'),
  (3, '26c1c1eb-9fe1-4d3d-9218-6a2d863d57ac', 'Unity'),
  (4, '3a6dac72-aa81-44af-909c-5b48ab9cbe67', 'Android TV'),
  (5, 'f79cd436-751a-4e26-b2cc-298d1029f794', 'tvOS')) AS a(n, id, label)
CROSS JOIN (VALUES
  (1, 'Interstitial 01', 'interstitial'), (2, 'Interstitial 02', 'interstitial'),
  (3, 'Rewarded 01', 'rewarded'), (4, 'Rewarded 02', 'rewarded'),
  (5, 'Banner 01', 'banner')) AS t(k, label, type)
JOIN (VALUES
  (1, 1, 'edcbe420-5e96-4c0f-b7ee-e5a10eb11db3'), (1, 2, '92fe3cb3-8028-4a65-aacf-c9916b2efc29'),
  (1, 3, 'b8372490-f300-49e8-b7c2-a77fc04f85e9'), (1, 4, '631c2a8a-94b8-4448-8d56-a7cddb280ea5'),
  (1, 5, '47998e9f-dfbe-4ba9-922c-3001f106722e'),
  (2, 1, '26c8907d-7635-4a13-a94b-6c3b12af1779'), (2, 2, '3b94ce00-15d2-4b96-9d1e-b096cd12cdb9'),
  (2, 3, 'ca610a0c-8607-4a38-8a21-9cbfd3018b7b'), (2, 4, '83d155c1-d3ab-413a-8d6f-bb282d4a058b'),
  (2, 5, 'bdf98482-e3c8-4792-bc06-7e98f7184d08'),
  (3, 1, '3d1094ab-a85b-4737-a749-d8a153a0f026'), (3, 2, '7f7f250e-48c0-4a89-9015-5c6cea325b3e'),
  (3, 3, '074b2dc7-3173-4da0-aba0-250f3f129df1'), (3, 4, 'e159286d-7f60-437c-9f58-83aebdcdbf13'),
  (3, 5, 'f6e7aa9b-09c5-4644-bf56-f8ab781ac62d'),
  (4, 1, '28f1d412-71d4-486b-93c7-e3d7101f2b2c'), (4, 2, '15d8efc7-0e45-4eb8-9eec-47eedb8424bb'),
  (4, 3, '916aa3f1-b875-45f9-b672-bb6461ceadf4'), (4, 4, '430810ca-0549-4755-ae74-cd0df596cfee'),
  (4, 5, '1a5c9eca-b8b7-4b9a-b8a7-2ec5942d5645'),
  (5, 1, '8a94e8fd-8995-4b17-b308-38f1104d1e84'), (5, 2, 'd8f4ec50-cde4-47b7-a139-ed02bd1f88d8'),
  (5, 3, '090ce110-b9dc-4722-93dd-8bd3fcfdb2e0'), (5, 4, '24ed4867-b16e-4a4b-b8ac-43dd05788a81'),
  (5, 5, 'f7defcdc-33e5-41f3-8577-2bceb73015d3')) AS p(n, k, id)
  ON p.n = a.n AND p.k = t.k
ON CONFLICT DO NOTHING;
INSERT INTO placements (id, app_id, name, type) VALUES
  ('00000000-0000-4000-8000-0000000000ac', '00000000-0000-4000-8000-0000000000ab', 'Other Banner', 'banner')
  ON CONFLICT DO NOTHING;
SQL
}
seed_adapters() {
	psql -X -q -v ON_ERROR_STOP=1 "$URL" <<SQL
INSERT INTO adapters (id, name) VALUES
  ('a7f66258-6c5c-462f-9ff4-126886c1d7d3', 'FakeNetworkA'),
  ('ca13eef0-bdbd-4475-823f-93c5b2932d6d', 'FakeNetworkB'),
  ('dc801f21-749c-46ae-ad33-ded15da2f5f0', 'FakeNetworkC')
  ON CONFLICT DO NOTHING;
SQL
}
seed || { echo "Bail out! cannot seed the sandbox"; exit 1; }
assert_eq "seed: 25 sandbox placements" 25 "$(sql "$URL" "SELECT count(*) FROM placements p JOIN apps a ON a.id = p.app_id WHERE a.publisher_id = '$SANDBOX'")"

run_ops sandbox revenue starter --start 2025-01-01
expect_rc 1 "adapters missing: exit 1"
assert_contains "adapters missing: tells to run bootstrap" "$ERR" "apexops sandbox bootstrap"
assert_contains "adapters missing: names them" "$ERR" "FakeNetwork"

seed_adapters || { echo "Bail out! cannot seed adapters"; exit 1; }
# another publisher's revenue in the same dates must never be touched
psql -X -q -v ON_ERROR_STOP=1 "$URL" -c "
INSERT INTO revenue_events (publisher_id, placement_id, adapter_id, impressions, clicks, revenue, event_date)
SELECT '$OTHER', '00000000-0000-4000-8000-0000000000ac', 'a7f66258-6c5c-462f-9ff4-126886c1d7d3', 1000 + g, g, g * 1.25, date '2024-12-20' + g
FROM generate_series(0, 59) g" || { echo "Bail out! cannot seed other revenue"; exit 1; }

count() { sql "$URL" "SELECT count(*) FROM revenue_events WHERE publisher_id = '$1'"; }
total() { sql "$URL" "SELECT coalesce(sum(revenue), 0) FROM revenue_events WHERE publisher_id = '$SANDBOX'"; }
dump() { # dump PUBLISHER: every row in a fixed order, md5
	psql -X -q -v ON_ERROR_STOP=1 "$URL" -c "COPY (SELECT placement_id, adapter_id, impressions, clicks, revenue, event_date FROM revenue_events WHERE publisher_id = '$1' ORDER BY event_date, placement_id, adapter_id, id) TO STDOUT" | md5sum | cut -d' ' -f1
}
OTHER_MD5=$(dump $OTHER)
# within ±10%: lo <= x <= hi (decimal strings)
within() { awk -v x="$1" -v t="$2" 'BEGIN { exit !(x >= t * 0.9 && x <= t * 1.1) }'; }

# --- usage errors: exit 64, named flag, nothing written -----------------
bad() { # bad "DESC" NEEDLE ARGS...
	local desc=$1 needle=$2
	shift 2
	run_ops sandbox revenue "$@"
	if [ "$RC" -eq 64 ] && [[ $ERR == *"$needle"* ]]; then
		ok "usage error: $desc"
	else
		not_ok "usage error: $desc" "expected exit 64 and '$needle', got $RC"
	fi
}
bad "--days 0" "--days" starter --days 0
bad "--days 3661" "1 to 3660" starter --days 3661
bad "--days 30x" "'30x'" starter --days 30x
bad "--days=abc" "--days" starter --days=abc
bad "--days -5" "--days" starter --days -5
bad "--days empty" "--days" starter --days=
bad "--days without value" "needs a value" starter --days
bad "--start 2025-02-30" "2025-02-30" starter --start 2025-02-30
bad "--start 2025-13-01" "--start" starter --start 2025-13-01
bad "--start 2025-1-1" "YYYY-MM-DD" starter --start=2025-1-1
bad "--start garbage" "--start" starter --start 2025-01-01x
bad "window past 9999" "9999-12-31" starter --start 9999-12-01 --days 60
bad "--tier gold" "starter, growth or scale" --tier gold
bad "positional gold" "unknown tier 'gold'" gold
bad "--tier all without --dry-run" "only allowed with --dry-run" --tier all
bad "no tier without --dry-run" "a tier is required" --start 2025-01-01
bad "tier twice" "given twice" growth --tier scale
bad "unknown option" "unknown option '--frobnicate'" starter --frobnicate
bad "extra argument" "unexpected argument 'extra'" starter extra
bad "--plot with all" "--plot" --dry-run --plot x.svg
assert_eq "usage errors wrote nothing" 0 "$(count $SANDBOX)"

# --- dry-run --------------------------------------------------------------
run_ops sandbox revenue starter --start 2025-01-01 --days 30 --dry-run
expect_rc 0 "dry-run: exit 0"
assert_contains "dry-run: rows, total, range" "$OUT" "starter: 750 rows, total "
assert_contains "dry-run: range" "$OUT" "2025-01-01 to 2025-01-30 (30 days)"
assert_contains "dry-run: says nothing written" "$OUT" "nothing written"
assert_eq "dry-run: nothing written" 0 "$(count $SANDBOX)"
DRY_TOTAL=$(printf '%s\n' "$OUT" | sed -n 's/^starter: 750 rows, total \([0-9.]*\) USD.*/\1/p')

run_ops sandbox revenue --dry-run --start=2025-01-01
expect_rc 0 "dry-run without a tier: all tiers"
assert_eq "dry-run all: three tier lines" 3 "$(printf '%s\n' "$OUT" | grep -cE '^(starter|growth|scale): 750 rows')"
run_ops sandbox revenue --tier=all --dry-run --days 7
expect_rc 0 "--tier=all --dry-run, default start"
assert_eq "--tier=all: three tiers of 7 days" 3 "$(printf '%s\n' "$OUT" | grep -cE '^(starter|growth|scale): 175 rows, .* \(7 days\)$')"
assert_eq "dry-run all: nothing written" 0 "$(count $SANDBOX)"

# --- starter: totals, oracle, determinism --------------------------------
oracle() { # oracle TIER DAYS START: expected rows, same order as dump_rows
	sql "$URL" "SELECT p.id || chr(9) || p.name || chr(9) || p.type FROM placements p JOIN apps a ON a.id = p.app_id WHERE a.publisher_id = '$SANDBOX' ORDER BY p.name COLLATE \"C\", p.id" >"$E2E_TMP/placements.tsv"
	node "$HERE/revenue_ref.js" "$@" <"$E2E_TMP/placements.tsv" | grep -v '^total' | sort
}
dump_rows() { # dump_rows FROM TO
	psql -X -q -v ON_ERROR_STOP=1 "$URL" -c "COPY (SELECT placement_id, adapter_id, impressions, clicks, revenue, event_date FROM revenue_events WHERE publisher_id = '$SANDBOX' AND event_date BETWEEN '$1' AND '$2') TO STDOUT" | sort
}

run_ops sandbox revenue starter --start 2025-01-01 --days 30
expect_rc 0 "starter: exit 0"
assert_contains "starter: reports rows written" "$OUT" "wrote 750 rows"
assert_eq "starter: 750 rows" 750 "$(count $SANDBOX)"
T=$(total)
assert_eq "starter: printed total equals the table's" "$DRY_TOTAL" "$T"
if within "$T" 3000; then ok "starter: total $T within 10% of 3000"; else not_ok "starter: total $T not within 10% of 3000"; fi
if diff <(oracle starter 30 2025-01-01) <(dump_rows 2025-01-01 2025-01-30) >"$E2E_TMP/diff" 2>&1; then
	ok "starter: every row equals the JavaScript oracle"
else
	not_ok "starter: rows differ from the JavaScript oracle" "$(head -4 "$E2E_TMP/diff")"
fi
MD5_1=$(dump $SANDBOX)
run_ops sandbox revenue starter --start 2025-01-01 --days 30
expect_rc 0 "starter rerun: exit 0"
assert_contains "starter rerun: deleted the earlier 750" "$OUT" "deleted 750 earlier rows"
assert_eq "starter rerun: still 750 rows (replaced)" 750 "$(count $SANDBOX)"
assert_eq "starter rerun: byte-identical rows" "$MD5_1" "$(dump $SANDBOX)"

# --- growth: positional tier, --flag=value --------------------------------
run_ops sandbox revenue growth --start=2025-01-01 --days=30
expect_rc 0 "growth (positional, --flag=value): exit 0"
assert_eq "growth: replaced the window: 750 rows" 750 "$(count $SANDBOX)"
T=$(total)
if within "$T" 50000; then ok "growth: total $T within 10% of 50000"; else not_ok "growth: total $T not within 10% of 50000"; fi
if diff <(oracle growth 30 2025-01-01) <(dump_rows 2025-01-01 2025-01-30) >"$E2E_TMP/diff" 2>&1; then
	ok "growth: every row equals the JavaScript oracle"
else
	not_ok "growth: rows differ from the JavaScript oracle" "$(head -4 "$E2E_TMP/diff")"
fi

# --- the run ledger: each write is a run of the job sandbox-revenue ------
assert_contains "growth: the run is in the ledger" "$OUT" "sandbox-revenue: run "
assert_eq "ledger: the growth run, its parameters and counts" \
	"sandbox-revenue|manual|succeeded|execute|growth|30|2025-01-01|750|750" \
	"$(sql "$URL" "SELECT job || '|' || trigger || '|' || status || '|' || mode || '|' || (params->'tiers'->>0) || '|' || (params->>'days') || '|' || (params->>'start') || '|' || (counts->'growth'->>'rows') || '|' || (counts->'growth'->>'inserted') FROM apexops.job_runs WHERE job = 'sandbox-revenue' ORDER BY id DESC LIMIT 1")"
RUNS=$(sql "$URL" "SELECT count(*) FROM apexops.job_runs WHERE job = 'sandbox-revenue'")
run_ops sandbox revenue growth --start=2025-01-01 --dry-run
expect_rc 0 "a dry run: exit 0"
assert_eq "ledger: a dry run (a preview) is not kept" "$RUNS" "$(sql "$URL" "SELECT count(*) FROM apexops.job_runs WHERE job = 'sandbox-revenue'")"
assert_not_contains "a dry run names no run" "$OUT" "sandbox-revenue: run "

# --- production: refused without --force, nothing written ---------------
GROWTH_MD5=$(dump $SANDBOX)
for env in "APP_ENV=production" "APP_ENV=production " "NODE_ENV=PRODUCTION" "APP_ENV= production"; do
	env "$env" "$APEXOPS_BIN" sandbox revenue growth --start=2025-01-01 >"$E2E_TMP/prod.out" 2>"$E2E_TMP/prod.err"
	RC=$? ERR=$(cat "$E2E_TMP/prod.err")
	expect_rc 78 "production ('$env'): refused with exit 78"
	assert_contains "production ('$env'): the message names the variable" "$ERR" "${env%%=*}"
	case "$env" in
	*=production | *=PRODUCTION)
		assert_contains "production ('$env'): says it is production" "$ERR" "apexops sandbox revenue: error: refusing to run: ${env%%=*} is '${env#*=}'"
		assert_contains "production ('$env'): and --force" "$ERR" "--force" ;;
	*)	# the configuration refuses a value with surrounding spaces
		# outright (src/core/config.c); either way nothing is written
		assert_contains "production ('$env'): names the value's spaces" "$ERR" "white space" ;;
	esac
done
APP_ENV=production run_ops sandbox revenue --dry-run
expect_rc 78 "production: a dry run is refused too"
assert_eq "production: nothing was deleted or rewritten" "$GROWTH_MD5" "$(dump $SANDBOX)"
APP_ENV=production run_ops sandbox revenue growth --start=2025-01-01 --force
expect_rc 0 "production with --force: runs"
assert_contains "production with --force: rewrote the window" "$OUT" "deleted 750 earlier rows"
assert_eq "production with --force: the same rows" "$GROWTH_MD5" "$(dump $SANDBOX)"

# --- the lock: another writer holds it -> exit 75 at once, naming it ----
lock_key() { # the FNV-1a 64 key apexops derives from a lock name (db_lock_key)
	python3 -c 'import sys
h = 1469598103934665603
for b in sys.argv[1].encode(): h = ((h ^ b) * 1099511628211) % 2**64
print(h - 2**64 if h >= 2**63 else h)' "$1"
}
PGAPPNAME=revenue-holder-test psql -X -q "$URL" -c "SELECT pg_advisory_lock($(lock_key apexops/sandbox-revenue)); SELECT pg_sleep(60)" >/dev/null 2>&1 &
HOLDER=$!
wait_for "$URL" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'revenue-holder-test'" ||
	not_ok "the holder took the revenue lock"
HOLDER_PID=$(sql "$URL" "SELECT pid FROM pg_stat_activity WHERE application_name = 'revenue-holder-test'")
run_ops sandbox revenue growth --start=2025-01-01
expect_rc 75 "a held revenue lock: exit 75"
assert_contains "the message names the lock and its holder" "$ERR" "apexops sandbox revenue: error: another 'apexops sandbox revenue' is running: lock 'apexops/sandbox-revenue' is held by backend pid $HOLDER_PID (application_name 'revenue-holder-test', "
assert_eq "a held lock: nothing rewritten" "$GROWTH_MD5" "$(dump $SANDBOX)"
run_ops sandbox revenue growth --start=2025-01-01 --dry-run
expect_rc 0 "a dry run takes no lock"
sql "$URL" "SELECT pg_terminate_backend($HOLDER_PID)" >/dev/null
wait "$HOLDER" 2>/dev/null

# --- scale, with a chart --------------------------------------------------
run_ops sandbox revenue --tier scale --start 2025-01-01 --plot "$E2E_TMP/scale.svg"
expect_rc 0 "scale (default 30 days, --plot): exit 0"
assert_eq "scale: 750 rows" 750 "$(count $SANDBOX)"
T=$(total)
if within "$T" 150000; then ok "scale: total $T within 10% of 150000"; else not_ok "scale: total $T not within 10% of 150000"; fi
if [ -s "$E2E_TMP/scale.svg" ] && python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$E2E_TMP/scale.svg"; then
	ok "scale: SVG chart written and well-formed XML"
else
	not_ok "scale: SVG chart missing or malformed"
fi
if command -v xmllint >/dev/null; then
	if xmllint --noout "$E2E_TMP/scale.svg"; then ok "scale: xmllint accepts the SVG"; else not_ok "scale: xmllint rejects the SVG"; fi
else
	not_ok "scale: xmllint is not installed (libxml2-utils; install it with scripts/install-deps.sh --test)"
fi
SVG=$(cat "$E2E_TMP/scale.svg" 2>/dev/null)
assert_contains "SVG: legend FakeNetworkA" "$SVG" ">FakeNetworkA<"
assert_contains "SVG: legend FakeNetworkC" "$SVG" ">FakeNetworkC<"
assert_contains "SVG: title with tier" "$SVG" "scale tier"
assert_contains "SVG: first date label" "$SVG" ">2025-01-01<"
assert_eq "SVG: 30 days x 3 adapters of bars" 90 "$(grep -c '<rect x=.*fill="#\(4e79a7\|f28e2b\|59a14f\)"/>' "$E2E_TMP/scale.svg" | awk '{print $1 - 3}')"
assert_eq "other publisher untouched after three tiers" "$OTHER_MD5" "$(dump $OTHER)"

# --- windows: delete only inside [start, end], --keep-history -------------
outside_md5() {
	psql -X -q -v ON_ERROR_STOP=1 "$URL" -c "COPY (SELECT placement_id, adapter_id, impressions, clicks, revenue, event_date FROM revenue_events WHERE publisher_id = '$SANDBOX' AND event_date NOT BETWEEN '2025-01-20' AND '2025-01-24' ORDER BY event_date, placement_id, id) TO STDOUT" | md5sum | cut -d' ' -f1
}
OUTSIDE_MD5=$(outside_md5)
run_ops sandbox revenue starter --start 2025-01-20 --days 5 --keep-history
expect_rc 0 "--keep-history: exit 0"
assert_contains "--keep-history: nothing deleted" "$OUT" "kept earlier rows"
assert_eq "--keep-history: earlier rows kept, 125 added" 875 "$(count $SANDBOX)"
run_ops sandbox revenue starter --start 2025-01-20 --days 5
expect_rc 0 "window replace: exit 0"
assert_contains "window replace: deleted both copies in the window" "$OUT" "deleted 250 earlier rows"
assert_eq "window replace: rows outside the window kept" 750 "$(count $SANDBOX)"
assert_eq "window replace: scale rows outside the window unchanged" "$OUTSIDE_MD5" "$(outside_md5)"
assert_eq "window replace: 625 scale rows outside, 125 starter inside" "625 125" \
	"$(sql "$URL" "SELECT count(*) FILTER (WHERE event_date NOT BETWEEN '2025-01-20' AND '2025-01-24'), count(*) FILTER (WHERE event_date BETWEEN '2025-01-20' AND '2025-01-24') FROM revenue_events WHERE publisher_id = '$SANDBOX'" | tr '|' ' ')"
assert_eq "other publisher untouched" "$OTHER_MD5" "$(dump $OTHER)"
assert_eq "other publisher: 60 rows" 60 "$(count $OTHER)"

# --- reference checks: once for the load when equivalent, else per row ---
run_ops sandbox revenue starter --start 2025-01-01 --days 30
expect_rc 0 "bulk checks: exit 0"
assert_contains "a superuser's load checks the references once" "$OUT" "locked and checked once for the load"
BULK_MD5=$(dump $SANDBOX)
run_ops sandbox revenue starter --start 2025-01-01 --days 30 --row-checks
expect_rc 0 "--row-checks: exit 0"
assert_contains "--row-checks leaves the checks to the triggers" "$OUT" "checked per row by the foreign-key triggers (asked for (--row-checks))"
assert_eq "bulk and per-row checks write the same rows" "$BULK_MD5" "$(dump $SANDBOX)"
assert_eq "and the same rows as the first starter run" "$MD5_1" "$(dump $SANDBOX)"

# a role that may not set session_replication_role: per row, same rows
ROLE=ops_rev_$$
sql "$URL" "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1
sql "$URL" "CREATE ROLE $ROLE LOGIN; GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA public TO $ROLE; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO $ROLE; GRANT USAGE ON SCHEMA apexops TO $ROLE; GRANT SELECT ON ALL TABLES IN SCHEMA apexops TO $ROLE; GRANT INSERT, UPDATE, DELETE ON apexops.job_runs TO $ROLE; GRANT USAGE ON ALL SEQUENCES IN SCHEMA apexops TO $ROLE" >/dev/null
RURL=${URL/postgres@/$ROLE@}
DATABASE_URL=$RURL run_ops sandbox revenue starter --start 2025-01-01 --days 30
expect_rc 0 "non-superuser: exit 0"
assert_contains "non-superuser: checked per row, and says why" "$OUT" "(the role may not set session_replication_role)"
assert_eq "non-superuser: same rows" "$MD5_1" "$(dump $SANDBOX)"
if [ "$(sql "$URL" "SHOW server_version_num")" -ge 150000 ]; then
	sql "$URL" "GRANT SET ON PARAMETER session_replication_role TO $ROLE" >/dev/null
	# locking the referenced rows as the triggers do needs UPDATE on them
	DATABASE_URL=$RURL run_ops sandbox revenue starter --start 2025-01-01 --days 30
	expect_rc 0 "without UPDATE on the referenced tables: exit 0"
	assert_contains "without UPDATE on the referenced tables: per row, and says why" "$OUT" "(the role may not lock the referenced rows"
	sql "$URL" "GRANT UPDATE ON publishers, placements, adapters TO $ROLE" >/dev/null
	DATABASE_URL=$RURL run_ops sandbox revenue starter --start 2025-01-01 --days 30
	expect_rc 0 "GRANT SET ON PARAMETER: exit 0"
	assert_contains "GRANT SET ON PARAMETER allows the bulk checks" "$OUT" "locked and checked once for the load"
	assert_eq "GRANT SET ON PARAMETER: same rows" "$MD5_1" "$(dump $SANDBOX)"
	sql "$URL" "REVOKE SET ON PARAMETER session_replication_role FROM $ROLE" >/dev/null
else
	not_ok "GRANT SET ON PARAMETER needs PostgreSQL 15, which scripts/install-deps.sh installs"
fi
sql "$URL" "DROP OWNED BY $ROLE; DROP ROLE $ROLE" >/dev/null

# an INSERT trigger of the operator's own must fire for every row
psql -X -q -v ON_ERROR_STOP=1 "$URL" >/dev/null <<'SQL'
CREATE TABLE rev_audit (n int);
CREATE FUNCTION rev_audit_fn() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO rev_audit VALUES (1); RETURN NEW; END $$;
CREATE TRIGGER rev_audit_t AFTER INSERT ON revenue_events FOR EACH ROW EXECUTE FUNCTION rev_audit_fn();
SQL
run_ops sandbox revenue starter --start 2025-01-01 --days 30
expect_rc 0 "own trigger: exit 0"
assert_contains "own trigger: checked per row, and says why" "$OUT" "(revenue_events has an INSERT trigger of its own)"
assert_eq "own trigger: it fired for each of the 750 rows" 750 "$(sql "$URL" "SELECT count(*) FROM rev_audit")"
# a replica-only trigger would fire under the bulk path's setting: per row too
sql "$URL" "TRUNCATE rev_audit; ALTER TABLE revenue_events ENABLE REPLICA TRIGGER rev_audit_t" >/dev/null
run_ops sandbox revenue starter --start 2025-01-01 --days 30
assert_contains "replica-only trigger: checked per row" "$OUT" "(revenue_events has an INSERT trigger of its own)"
assert_eq "replica-only trigger: it did not fire, as without apexops" 0 "$(sql "$URL" "SELECT count(*) FROM rev_audit")"
# a disabled trigger fires in neither mode: bulk is still equivalent
sql "$URL" "ALTER TABLE revenue_events DISABLE TRIGGER rev_audit_t" >/dev/null
run_ops sandbox revenue starter --start 2025-01-01 --days 30
assert_contains "disabled trigger: checked once for the load" "$OUT" "locked and checked once for the load"
sql "$URL" "DROP TRIGGER rev_audit_t ON revenue_events; DROP FUNCTION rev_audit_fn(); DROP TABLE rev_audit" >/dev/null
# a foreign key apexops does not know: the triggers check it
sql "$URL" "CREATE TABLE rev_days (d date PRIMARY KEY); INSERT INTO rev_days SELECT generate_series(date '2024-01-01', date '2026-12-31', interval '1 day')::date; ALTER TABLE revenue_events ADD CONSTRAINT rev_day_fk FOREIGN KEY (event_date) REFERENCES rev_days (d)" >/dev/null
run_ops sandbox revenue starter --start 2025-01-01 --days 30
assert_contains "extra foreign key: checked per row" "$OUT" "(revenue_events has a foreign key apexops does not know)"
run_ops sandbox revenue starter --start 2027-01-01 --days 3
expect_rc 1 "extra foreign key: a row it rejects fails the run"
assert_contains "and the error is PostgreSQL's" "$ERR" "rev_day_fk"
assert_eq "the failed run changed nothing" "$MD5_1" "$(dump $SANDBOX)"
sql "$URL" "ALTER TABLE revenue_events DROP CONSTRAINT rev_day_fk; DROP TABLE rev_days" >/dev/null
run_ops sandbox revenue starter --start 2025-01-01 --days 30
assert_contains "without it: once for the load again" "$OUT" "locked and checked once for the load"
assert_eq "the log names the way references were checked" 1 "$(printf '%s\n' "$ERR" | grep -c 'reference_checks=bulk')"

# --- terminal output: sparkline ------------------------------------------
if command -v script >/dev/null; then
	TTY_OUT=$(script -qec "$APEXOPS_BIN sandbox revenue starter --start 2025-01-01 --days 10 --dry-run" /dev/null 2>&1)
	case "$TTY_OUT" in
	*daily*[▁▂▃▄▅▆▇█]*) ok "terminal: daily sparkline shown" ;;
	*) not_ok "terminal: no sparkline" "$TTY_OUT" ;;
	esac
	assert_not_contains "pipe: no sparkline" "$OUT" "daily"
else
	not_ok "terminal: script(1) is not installed (bsdutils, part of every Debian system)"
fi

# --- with the real bootstrap ---------------------------------------------
# (the fixture above stands in for it; this checks the two fit together, so
# a failed bootstrap fails the test)
BURL=$(new_db revenue_boot) || { echo "Bail out! cannot create database"; exit 1; }
DATABASE_URL=$BURL run_ops sandbox bootstrap
expect_rc 0 "sandbox bootstrap on a fresh database succeeds"
DATABASE_URL=$BURL run_ops sandbox revenue starter --start 2025-01-01
expect_rc 0 "after sandbox bootstrap: exit 0"
assert_contains "after sandbox bootstrap: 750 rows" "$OUT" "wrote 750 rows"
assert_eq "after sandbox bootstrap: same rows as the fixture's starter run" "$MD5_1" \
	"$(psql -X -q -v ON_ERROR_STOP=1 "$BURL" -c "COPY (SELECT placement_id, adapter_id, impressions, clicks, revenue, event_date FROM revenue_events WHERE publisher_id = '$SANDBOX' ORDER BY event_date, placement_id, adapter_id, id) TO STDOUT" | md5sum | cut -d' ' -f1)"

done_testing
