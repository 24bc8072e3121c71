#!/usr/bin/env bash
# apexops stripe sync-usage against our Stripe double (meter events):
# the window and sums, the mapping to Stripe customers, a dry run, a rerun
# that sends nothing, late usage, a decrease, the duplicate-identifier
# answer, the key (rk_ keys, _FILE, missing, rotated), days refused, bad
# flags, the DST days of America/New_York, the SDK's encoding, 5xx, 429
# with and without Stripe-Should-Retry, a 429 storm, a timeout, SIGKILL
# during a 3,000-event run, the job and status, and the secret in no output.
. "$(dirname "$0")/lib.sh"
: "${OPS_TEST_STRIPE_DOUBLE_URL:?run through tests/run.sh}"
D=$OPS_TEST_STRIPE_DOUBLE_URL
ALL="$E2E_TMP/all-output.log" # everything the commands print, for the secret check
SECRET="sk_test_e2eSECRET$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
RKEY="rk_test_e2eRESTRICTED$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

url=$(new_db susage) || exit 1
export DATABASE_URL=$url APEXOPS_STRIPE_API_BASE=$D CRON_TZ=America/New_York
export STRIPE_SECRET_KEY=$SECRET STRIPE_MAX_RPS=500

sync() { # sync ARGS...: run_ops stripe sync-usage, output kept for the secret check
	run_ops stripe sync-usage "$@"
	printf '%s\n%s\n' "$OUT" "$ERR" >>"$ALL"
}
dpost() { curl -sf -X POST "$D$1" -H 'content-type: application/json' -d "${2:-}" >/dev/null; }
dget() { curl -sf "$D$1"; }
requests() { dget /__double/stats | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).requests))'; }
# the double's total per Stripe customer and event name, "cus event total" lines
dsums() { dget /__double/meter_events/sums | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);for(const k of Object.keys(o))console.log(k+" "+o[k])})' | LC_ALL=C sort; }
# the same from usage_records for the day(s), by the mapping rules
usums() { # usums DAY: recorded usage of DAY in CRON_TZ, by the mapping rules
	sql "$url" "SELECT cus || ' ' || metric_type || ' ' || total FROM (
		SELECT COALESCE(NULLIF(u.stripe_customer_id,''), s.stripe_customer_id) AS cus, r.metric_type, sum(r.quantity) AS total
		FROM usage_records r JOIN users u ON u.id = r.customer_id LEFT JOIN subscriptions s ON s.customer_id = r.customer_id
		WHERE r.recorded_at >= '$1'::date::timestamp AT TIME ZONE '$CRON_TZ' AND r.recorded_at < ('$1'::date + 1)::timestamp AT TIME ZONE '$CRON_TZ'
		AND r.metric_type IN ('impressions', 'api_calls', 'data_transfer')
		GROUP BY 1, 2) x WHERE cus IS NOT NULL" | LC_ALL=C sort
}

# fixtures: A has users.stripe_customer_id, B only subscriptions', C none
sql "$url" "INSERT INTO publishers (id, company_name) VALUES ('00000000-0000-0000-0000-0000000000aa', 'P')" >/dev/null
add_user() { # add_user UUID USERS_CUS
	sql "$url" "INSERT INTO users (id, publisher_id, email, password_hash, stripe_customer_id)
		VALUES ('$1', '00000000-0000-0000-0000-0000000000aa', '$1@x.test', 'x', NULLIF('$2', ''))" >/dev/null
}
add_sub() { # add_sub UUID SUB_CUS
	sql "$url" "INSERT INTO subscriptions (customer_id, plan_type, plan_limit_impressions, base_price_cents, included_impressions,
		billing_interval, next_billing_date, stripe_customer_id)
		VALUES ('$1', 'starter', 1000, 100, 1000, 'month', '2027-01-01', NULLIF('$2', ''))" >/dev/null
}
A=0000000a-0000-0000-0000-000000000001 B=0000000b-0000-0000-0000-000000000002 C=0000000c-0000-0000-0000-000000000003
add_user $A cus_A
add_sub $A cus_SHADOWED
add_user $B ""
add_sub $B cus_B
add_user $C ""
use() { # use CUSTOMER METRIC QTY 'LOCAL TIMESTAMP' : a usage record at local time in CRON_TZ
	sql "$url" "INSERT INTO usage_records (customer_id, metric_type, quantity, recorded_at)
		VALUES ('$1', '$2', $3, '$4'::timestamp AT TIME ZONE '$CRON_TZ')" >/dev/null
}
day=$(sql "$url" "SELECT ((now() AT TIME ZONE '$CRON_TZ')::date - 1)::text")
prev=$(sql "$url" "SELECT ('$day'::date - 1)::text")
next=$(sql "$url" "SELECT ('$day'::date + 1)::text")
use $A impressions 100 "$day 00:00:00"
use $A impressions 50 "$day 23:59:59"
use $A api_calls 7 "$day 12:00:00"
use $A impressions 1000 "$prev 23:59:59" # the day before: not in the window
use $A impressions 1000 "$next 00:00:00" # the day after: not in the window
use $A unmetered_thing 5 "$day 12:00:00"
use $B impressions 30 "$day 08:00:00"
use $C impressions 5 "$day 09:00:00"
dpost /__double/reset

# ---- a dry run -------------------------------------------------------------
sync --date "$day" --dry-run
expect_rc 0 "a dry run exits 0"
assert_contains "it prints A's impressions as they would be sent" "$OUT" "impressions             150  event_name=impressions"
assert_contains "with the identifier" "$OUT" "identifier=apexops:$A:impressions:${day//-/}:0"
assert_contains "B maps through subscriptions.stripe_customer_id" "$OUT" "customer $B (Stripe cus_B)"
assert_contains "totals per metric" "$OUT" "impressions               180 in 2 events"
assert_contains "C is listed without a Stripe id" "$OUT" "customer $C $day impressions"
assert_not_contains "an unmetered metric is not sent" "$OUT" "unmetered_thing"
assert_eq "a dry run writes no ledger row" 0 "$(sql "$url" "SELECT count(*) FROM apexops.stripe_usage_events")"
assert_eq "and sends nothing" 0 "$(requests)"
STRIPE_SECRET_KEY= run_ops stripe sync-usage --date "$day" --dry-run
printf '%s\n%s\n' "$OUT" "$ERR" >>"$ALL"
expect_rc 78 "an empty STRIPE_SECRET_KEY is a configuration error, even for a dry run"
env -u STRIPE_SECRET_KEY "$APEXOPS_BIN" stripe sync-usage --date "$day" --dry-run >"$E2E_TMP/o" 2>&1
RC=$?
cat "$E2E_TMP/o" >>"$ALL"
expect_rc 0 "a dry run needs no key"

# ---- the sync --------------------------------------------------------------
sync --date "$day" --json
expect_rc 0 "the sync exits 0"
printf '%s\n' "$OUT" >"$E2E_TMP/first.json"
assert_eq "Stripe received what was recorded, per customer and meter" \
	"cus_A api_calls 7|cus_A impressions 150|cus_B impressions 30" "$(dsums | paste -sd'|')"
assert_eq "three ledger rows, sent" "3 sent" "$(sql "$url" "SELECT count(*) || ' ' || string_agg(DISTINCT status, ',') FROM apexops.stripe_usage_events")"
assert_eq "each event's timestamp is the day's start in CRON_TZ" \
	"$(sql "$url" "SELECT extract(epoch FROM '$day'::date::timestamp AT TIME ZONE '$CRON_TZ')::bigint")" \
	"$(dget /__double/meter_events | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log([...new Set(JSON.parse(s).map(e=>e.timestamp))].join(",")))')"
assert_eq "the Idempotency-Key is the identifier" 3 \
	"$(dget /__double/requests | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).filter(r=>r.body.includes("identifier="+encodeURIComponent(r.headers["idempotency-key"]))).length))')"
assert_eq "request ids are kept" 3 "$(sql "$url" "SELECT count(*) FROM apexops.stripe_usage_events WHERE request_id LIKE 'req_%'")"
assert_eq "billing_audit: synced for A and B" "$A|$B" \
	"$(sql "$url" "SELECT string_agg(customer_id::text, '|' ORDER BY customer_id) FROM billing_audit WHERE event_type = 'stripe_usage_synced'")"
assert_eq "billing_audit: failed for C, no Stripe id, with the usage" "$C impressions=5" \
	"$(sql "$url" "SELECT customer_id || ' impressions=' || (data->'usage'->>'impressions') FROM billing_audit WHERE event_type = 'stripe_usage_sync_failed' AND data->>'reason' LIKE 'no Stripe customer id%'")"
assert_eq "the run is in the job ledger" "stripe-usage-sync manual execute succeeded" \
	"$(sql "$url" "SELECT job || ' ' || trigger || ' ' || mode || ' ' || status FROM apexops.job_runs ORDER BY id DESC LIMIT 1")"

# ---- a rerun sends nothing -------------------------------------------------
before=$(requests)
sync --date "$day"
expect_rc 0 "a rerun exits 0"
assert_eq "a rerun sends zero events" "$before" "$(requests)"
assert_contains "and says so" "$OUT" "nothing to send"

# ---- late usage ------------------------------------------------------------
use $A impressions 20 "$day 18:00:00"
sync --date "$day"
expect_rc 0 "late usage: exit 0"
assert_eq "the difference is sent as a new event" "cus_A impressions 170" "$(dsums | grep 'cus_A impressions')"
assert_eq "under its own identifier, seq 1" "20 apexops:$A:impressions:${day//-/}:1" \
	"$(sql "$url" "SELECT quantity || ' ' || identifier FROM apexops.stripe_usage_events WHERE seq = 1")"

# ---- a decrease is reported, never sent --------------------------------------
sql "$url" "DELETE FROM usage_records WHERE customer_id = '$B'" >/dev/null
use $B impressions 10 "$day 08:00:00"
before=$(requests)
sync --date "$day"
expect_rc 0 "a decrease: exit 0"
assert_contains "with a warning" "$ERR" "1 decrease: recorded usage is below what Stripe was told"
assert_contains "the figures in the output" "$OUT" "reported 30, recorded 10"
assert_eq "nothing is sent" "$before" "$(requests)"
assert_eq "it is kept for an operator" "$B impressions 30 10" \
	"$(sql "$url" "SELECT customer_id || ' ' || metric || ' ' || reported || ' ' || recorded FROM apexops.stripe_usage_decreases WHERE resolved_at IS NULL")"
# the operator's fix within 24 hours: cancel the event at Stripe, mark the
# row cancelled; the next run reports the corrected total under a new seq
printf 'Authorization: Bearer %s\n' "$SECRET" >"$E2E_TMP/auth"
ident=$(sql "$url" "SELECT identifier FROM apexops.stripe_usage_events WHERE customer_id = '$B'")
curl -sf -H @"$E2E_TMP/auth" -H 'Idempotency-Key: cancel-1' "$D/v1/billing/meter_event_adjustments" \
	-d type=cancel -d event_name=impressions --data-urlencode "cancel[identifier]=$ident" >/dev/null &&
	ok "the event is cancelled at Stripe" || not_ok "the event is cancelled at Stripe"
sql "$url" "UPDATE apexops.stripe_usage_events SET status = 'cancelled' WHERE identifier = '$ident'" >/dev/null
sync --date "$day"
expect_rc 0 "after a cancellation: exit 0"
assert_eq "the corrected total is sent under the next seq" "10 sent 1" \
	"$(sql "$url" "SELECT quantity || ' ' || status || ' ' || seq FROM apexops.stripe_usage_events WHERE customer_id = '$B' AND status <> 'cancelled'")"
assert_eq "Stripe now holds the recorded usage" "cus_B impressions 10" "$(dsums | grep cus_B)"
use $B impressions 25 "$day 09:00:00"
sync --date "$day"
expect_rc 0 "usage back above the reported figure: exit 0"
assert_eq "only the difference is sent" "cus_B impressions 35" "$(dsums | grep cus_B)"
assert_eq "and the decrease is resolved" "0 1" \
	"$(sql "$url" "SELECT count(*) FILTER (WHERE resolved_at IS NULL) || ' ' || count(*) FILTER (WHERE note LIKE 'recorded usage back%') FROM apexops.stripe_usage_decreases")"

# ---- Stripe's duplicate-identifier answer settles a row ----------------------
# a crash after Stripe took the event, a day later: the key is forgotten,
# the identifier is not
sql "$url" "UPDATE apexops.stripe_usage_events SET status = 'pending', sent_at = NULL, outcome = NULL WHERE metric = 'api_calls'" >/dev/null
dpost /__double/idempotency/expire
sync --date "$day"
expect_rc 0 "a known identifier: exit 0"
assert_eq "the row is settled as delivered" "sent duplicate" \
	"$(sql "$url" "SELECT status || ' ' || outcome FROM apexops.stripe_usage_events WHERE metric = 'api_calls'")"
assert_eq "Stripe counted it once" "cus_A api_calls 7" "$(dsums | grep api_calls)"
assert_eq "Stripe said Stripe-Should-Retry: false, so one call" 1 \
	"$(dget /__double/requests | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).filter(r=>r.body.some(b=>b.startsWith("payload%5Bvalue%5D=7")||b==="payload[value]=7")).length-1))')"

# ---- the encoding, compared with the official stripe SDK ---------------------
dget /__double/requests >"$E2E_TMP/c-capture.json"
cat >"$E2E_TMP/replay.cjs" <<'JS'
// replays the C client's meter-event calls through the official stripe SDK
const { createRequire } = require('module');
const req = createRequire(process.env.OPS_ROOT + '/tests/peers/package.json');
const Stripe = req('stripe');
const fs = require('fs');
const [capFile, base] = process.argv.slice(2);
const calls = JSON.parse(fs.readFileSync(capFile, 'utf8')).filter((c) => c.path === '/v1/billing/meter_events');
const u = new URL(base);
const stripe = new Stripe('sk_test_sdk_replay', { host: u.hostname, port: +u.port, protocol: 'http', apiVersion: '2023-10-16', maxNetworkRetries: 0 });
function nest(tokens) {
  const root = {};
  for (const tok of tokens) {
    const i = tok.indexOf('=');
    const key = decodeURIComponent(tok.slice(0, i)), value = decodeURIComponent(tok.slice(i + 1));
    const m = key.match(/^([^[\]]+)((?:\[[^[\]]*\])*)$/);
    const path = [m[1], ...[...m[2].matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1])];
    let o = root;
    for (let j = 0; j < path.length - 1; j++) o = o[path[j]] ??= {};
    o[path[path.length - 1]] = value;
  }
  return root;
}
(async () => {
  await fetch(`${base}/__double/reset`, { method: 'POST' });
  for (const c of calls) {
    const b = nest(c.body);
    if (b.timestamp !== undefined) b.timestamp = Number(b.timestamp); // the SDK takes a number
    try { await stripe.billing.meterEvents.create(b, { idempotencyKey: c.headers['idempotency-key'] }); } catch (e) { if (!e.type) throw e; }
  }
  const seen = await (await fetch(`${base}/__double/requests`)).json();
  const pick = (r) => JSON.stringify([r.method, r.path, r.body, r.headers['idempotency-key'], r.headers['content-type'], r.headers['stripe-version']]);
  const a = calls.map(pick), s = seen.map(pick);
  let same = a.length === s.length && a.length > 0;
  for (let i = 0; same && i < a.length; i++) if (a[i] !== s[i]) { same = false; console.error('C:   ' + a[i] + '\nSDK: ' + s[i]); }
  console.log(same ? `same ${a.length}` : 'different');
})();
JS
assert_eq "every call encoded as the official stripe SDK encodes it" "same $(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).filter(c=>c.path==="/v1/billing/meter_events").length)' "$E2E_TMP/c-capture.json")" \
	"$(OPS_ROOT=$OPS_ROOT node "$E2E_TMP/replay.cjs" "$E2E_TMP/c-capture.json" "$D" 2>>"$E2E_TMP/replay.err")"

# ---- keys --------------------------------------------------------------------
dpost /__double/reset
sql "$url" "TRUNCATE apexops.stripe_usage_events, apexops.stripe_usage_decreases" >/dev/null
env -u STRIPE_SECRET_KEY "$APEXOPS_BIN" stripe sync-usage --date "$day" >"$E2E_TMP/o" 2>"$E2E_TMP/e"
RC=$?
ERR=$(cat "$E2E_TMP/e")
cat "$E2E_TMP/o" "$E2E_TMP/e" >>"$ALL"
expect_rc 78 "without a key: exit 78"
assert_contains "naming STRIPE_SECRET_KEY" "$ERR" "STRIPE_SECRET_KEY is not set"
assert_eq "and nothing sent" 0 "$(requests)"
printf '%s\n' "$RKEY" >"$E2E_TMP/key"
env -u STRIPE_SECRET_KEY STRIPE_SECRET_KEY_FILE="$E2E_TMP/key" "$APEXOPS_BIN" stripe sync-usage --date "$day" >"$E2E_TMP/o" 2>"$E2E_TMP/e"
RC=$?
cat "$E2E_TMP/o" "$E2E_TMP/e" >>"$ALL"
expect_rc 0 "a restricted rk_test_ key from STRIPE_SECRET_KEY_FILE works"
assert_eq "and delivered" "cus_A api_calls 7|cus_A impressions 170|cus_B impressions 35" "$(dsums | paste -sd'|')"
STRIPE_SECRET_KEY_FILE="$E2E_TMP/key" run_ops stripe sync-usage --date "$day"
printf '%s\n%s\n' "$OUT" "$ERR" >>"$ALL"
expect_rc 78 "STRIPE_SECRET_KEY and STRIPE_SECRET_KEY_FILE both set: exit 78"

# ---- days refused, bad flags -------------------------------------------------
old=$(sql "$url" "SELECT ((now() AT TIME ZONE '$CRON_TZ')::date - 36)::text")
use $A impressions 9 "$old 12:00:00"
before=$(requests)
sync --date "$old"
expect_rc 64 "a day older than 35 days: exit 64"
assert_contains "with the reason" "$ERR" "Stripe accepts meter events only with a timestamp within the past 35 days"
sync --from "$old" --to "$day"
expect_rc 64 "a range reaching past 35 days is refused whole"
assert_eq "nothing sent for either" "$before" "$(requests)"
assert_eq "nor written" 0 "$(sql "$url" "SELECT count(*) FROM apexops.stripe_usage_events WHERE usage_day = '$old'")"
today=$(sql "$url" "SELECT (now() AT TIME ZONE '$CRON_TZ')::date::text")
sync --date "$today"
expect_rc 64 "today is not over: exit 64"
assert_contains "saying so" "$ERR" "is not over yet in CRON_TZ"
for bad in "--date 2026-02-30" "--date yesterday" "--from $day" "--date $day --from $day --to $day" "--from $day --to $prev" "--dr" "--date" "extra"; do
	# shellcheck disable=SC2086
	sync $bad
	expect_rc 64 "bad flags '$bad': exit 64"
done
assert_contains "an abbreviation is refused naming the option" "$(sync --dr; echo "$ERR")" "--dry-run"

# ---- DST days of America/New_York: 23 and 25 hours ---------------------------
dst() { # dst DAY CLOCK UTC_IN... -- UTC_OUT...: records at UTC instants
	local d=$1 clock=$2
	shift 2
	sql "$url" "TRUNCATE usage_records, apexops.stripe_usage_events" >/dev/null
	local in=1 t
	for t in "$@"; do
		[ "$t" = -- ] && { in=0; continue; }
		sql "$url" "INSERT INTO usage_records (customer_id, metric_type, quantity, recorded_at) VALUES ('$A', 'impressions', $((in ? 1 : 1000)), '$t')" >/dev/null
	done
	dpost /__double/reset
	dpost /__double/meters/clock "{\"now\": $(date -d "$clock" +%s)}"
	APEXOPS_CLOCK_START=$clock sync --date "$d"
}
dst 2026-03-08 2026-03-10T12:00:00Z 2026-03-08T05:00:00Z 2026-03-09T03:59:59Z -- 2026-03-08T04:59:59Z 2026-03-09T04:00:00Z
expect_rc 0 "spring forward day syncs"
assert_contains "a 23-hour window" "$OUT" "day 2026-03-08 (CRON_TZ America/New_York): 2026-03-08T05:00:00Z to 2026-03-09T04:00:00Z, 23 hours"
assert_eq "exactly the records inside it" "cus_A impressions 2" "$(dsums)"
dst 2026-11-01 2026-11-03T12:00:00Z 2026-11-01T04:00:00Z 2026-11-02T04:59:59Z -- 2026-11-01T03:59:59Z 2026-11-02T05:00:00Z
expect_rc 0 "fall back day syncs"
assert_contains "a 25-hour window" "$OUT" "day 2026-11-01 (CRON_TZ America/New_York): 2026-11-01T04:00:00Z to 2026-11-02T05:00:00Z, 25 hours"
assert_eq "exactly the records inside it" "cus_A impressions 2" "$(dsums)"
dpost /__double/meters/clock '{"now": null}'

# ---- faults: 5xx, 429 with and without Stripe-Should-Retry, a timeout ----------
reset_day() { # reset_day N: N customers with 1..N impressions on $day, fresh ledger and double
	sql "$url" "TRUNCATE usage_records, apexops.stripe_usage_events, apexops.stripe_usage_decreases" >/dev/null
	sql "$url" "INSERT INTO publishers (id, company_name) SELECT '00000000-0000-0000-0000-0000000000bb', 'Q' WHERE NOT EXISTS (SELECT 1 FROM publishers WHERE id = '00000000-0000-0000-0000-0000000000bb')" >/dev/null
	sql "$url" "INSERT INTO users (id, publisher_id, email, password_hash, stripe_customer_id)
		SELECT ('00000000-0000-0000-0001-' || lpad(g::text, 12, '0'))::uuid, '00000000-0000-0000-0000-0000000000bb', 'u' || g || '@y.test', 'x', 'cus_u' || g
		FROM generate_series(1, $1) g ON CONFLICT DO NOTHING" >/dev/null
	sql "$url" "INSERT INTO usage_records (customer_id, metric_type, quantity, recorded_at)
		SELECT ('00000000-0000-0000-0001-' || lpad(g::text, 12, '0'))::uuid, m, g, ('$day'::date + interval '12 hours')::timestamp AT TIME ZONE '$CRON_TZ'
		FROM generate_series(1, $1) g, unnest(ARRAY[${2:-'impressions'}]) m" >/dev/null
	dpost /__double/reset
}
reset_day 6
dpost /__double/faults '{"count":3,"status":503}'
sync --date "$day"
expect_rc 0 "503s are retried"
assert_eq "and every event lands once" "$(usums "$day" | paste -sd'|')" "$(dsums | paste -sd'|')"
reset_day 6
dpost /__double/faults '{"count":2,"status":429}'
sync --date "$day"
expect_rc 0 "a plain 429 is retried"
assert_eq "every event lands once" "$(usums "$day" | paste -sd'|')" "$(dsums | paste -sd'|')"
reset_day 6
dpost /__double/faults '{"count":2,"status":429,"shouldRetry":"false"}'
APEXOPS_STRIPE_CONCURRENCY=1 sync --date "$day"
expect_rc 1 "a 429 with Stripe-Should-Retry: false is not retried: exit 1"
assert_eq "two rows failed, the others delivered" "failed 2|sent 4" \
	"$(sql "$url" "SELECT status || ' ' || count(*) FROM apexops.stripe_usage_events GROUP BY status ORDER BY 1" | paste -sd'|')"
assert_eq "billing_audit says which customers failed" 2 "$(sql "$url" "SELECT count(*) FROM billing_audit WHERE event_type = 'stripe_usage_sync_failed' AND data->>'day' = '$day' AND data ? 'events'")"
sync --date "$day"
expect_rc 0 "a rerun delivers the failed rows"
assert_eq "every event lands once" "$(usums "$day" | paste -sd'|')" "$(dsums | paste -sd'|')"
reset_day 3
dpost /__double/faults '{"count":1,"delayMs":3000}'
APEXOPS_STRIPE_TIMEOUT_MS=500 APEXOPS_STRIPE_CONCURRENCY=1 sync --date "$day" --json
expect_rc 0 "a timed-out call is retried"
assert_contains "and Stripe replays its first answer" "$OUT" '"outcome":"replayed"'
assert_eq "counted once" "$(usums "$day" | paste -sd'|')" "$(dsums | paste -sd'|')"

# ---- a 429 storm -------------------------------------------------------------
reset_day 40 "'impressions','api_calls'"
dpost /__double/ratelimit '{"rps":20,"burst":5}'
for i in 1 2 3; do
	STRIPE_MAX_RPS=400 sync --date "$day"
	[ "$RC" -eq 0 ] && break
done
expect_rc 0 "a 429 storm: delivered within three runs"
throttled=$(dget /__double/stats | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).throttled))')
[ "$throttled" -gt 0 ] && ok "the double throttled ($throttled answers 429)" || not_ok "the double throttled" "throttled=$throttled"
assert_eq "every unit reported once" "$(usums "$day" | paste -sd'|')" "$(dsums | paste -sd'|')"
dpost /__double/ratelimit '{"rps":0}'

# ---- SIGTERM: a clean stop, rows left pending, a rerun finishes ---------------
reset_day 300
STRIPE_MAX_RPS=100 "$APEXOPS_BIN" stripe sync-usage --date "$day" >"$E2E_TMP/o" 2>"$E2E_TMP/e" &
pid=$!
for _ in $(seq 1 600); do
	[ "$(dget /__double/meter_events | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).length))')" -ge 20 ] && break
	sleep 0.05
done
kill -TERM $pid
wait $pid
RC=$?
ERR=$(cat "$E2E_TMP/e")
cat "$E2E_TMP/o" "$E2E_TMP/e" >>"$ALL"
expect_rc 75 "SIGTERM stops the sync: exit 75"
assert_contains "saying the rest stays pending" "$ERR" "rows not sent stay pending"
left=$(sql "$url" "SELECT count(*) FROM apexops.stripe_usage_events WHERE status = 'pending'")
[ "$left" -gt 0 ] && ok "rows are left pending ($left)" || not_ok "rows are left pending" "left=$left"
assert_eq "the run is recorded stopped" "stopped" "$(sql "$url" "SELECT status FROM apexops.job_runs ORDER BY id DESC LIMIT 1")"
sync --date "$day"
expect_rc 0 "the next run finishes"
assert_eq "every unit reported once" "$(usums "$day" | md5sum)" "$(dsums | md5sum)"

# ---- the scheduler's daemon reads a rotated key file on its next run ----------
reset_day 3
printf '%s\n' "$SECRET" >"$E2E_TMP/rot.key"
runs() { sql "$url" "SELECT count(*) FROM apexops.job_runs WHERE job = 'stripe-usage-sync' AND trigger = 'scheduled' AND status = '$1'"; }
env -u STRIPE_SECRET_KEY STRIPE_SECRET_KEY_FILE="$E2E_TMP/rot.key" APEXOPS_SCHEDULE_STRIPE_USAGE_SYNC='* * * * *' \
	APEXOPS_SCHEDULE_USAGE_PURGE=off APEXOPS_SCHEDULE_DUNNING_RETRIES=off APEXOPS_SCHEDULE_PRIVACY_EXPIRY=off \
	APEXOPS_SCHEDULE_QUEUE_PRUNE=off APEXOPS_CLOCK_START=$(date -u +%Y-%m-%dT%H:%M:%SZ) APEXOPS_CLOCK_SPEED=60 \
	APEXOPS_CRON_LEASE_S=600 "$APEXOPS_BIN" cron --run-for 100000 >>"$ALL" 2>&1 &
cron_pid=$!
if wait_for "$url" "SELECT (count(*) > 0)::int FROM apexops.job_runs WHERE job = 'stripe-usage-sync' AND trigger = 'scheduled' AND status = 'succeeded'"; then
	ok "the daemon's scheduled run syncs with the key file"
else
	not_ok "the daemon's scheduled run syncs with the key file"
fi
assert_eq "and delivers yesterday's usage" "$(usums "$day" | paste -sd'|')" "$(dsums | paste -sd'|')"
printf 'sk_live_ROTATEDbutWRONG%s\n' "$RANDOM" >"$E2E_TMP/rot.key"
use 00000000-0000-0000-0001-000000000001 impressions 5 "$day 20:00:00"
if wait_for "$url" "SELECT (count(*) > 0)::int FROM apexops.stripe_usage_events WHERE status = 'failed' AND error LIKE '%HTTP 401%'"; then
	ok "a rotated key file is used by the next run, without a restart (Stripe refuses this one)"
else
	not_ok "a rotated key file is used by the next run, without a restart"
fi
printf '%s\n' "$RKEY" >"$E2E_TMP/rot.key"
if wait_for "$url" "SELECT (count(*) = 0)::int FROM apexops.stripe_usage_events WHERE status <> 'sent'"; then
	ok "rotated again: the failed row is delivered by a later run"
else
	not_ok "rotated again: the failed row is delivered by a later run"
fi
kill -TERM $cron_pid
wait $cron_pid
assert_eq "every unit reported once" "$(usums "$day" | paste -sd'|')" "$(dsums | paste -sd'|')"

# ---- the double follows Stripe's rules (what the tests above rely on) ---------
dcall() { # dcall BODY...: POST a meter event to the double, prints the HTTP status and error message
	curl -s -H @"$E2E_TMP/auth" -H "Idempotency-Key: k$RANDOM$RANDOM" "$D/v1/billing/meter_events" "$@" |
		node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);console.log(o.error?o.error.message:"ok "+o.identifier)})'
}
now_s=$(date +%s)
assert_contains "the double: payload[value] is required" "$(dcall -d event_name=x -d 'payload[stripe_customer_id]=cus_1')" "Missing required param: payload[value]"
assert_contains "the double: value must be a whole number" "$(dcall -d event_name=x -d 'payload[stripe_customer_id]=cus_1' -d 'payload[value]=1.5')" "must be a whole number"
assert_contains "the double: timestamps older than 35 days are refused" "$(dcall -d event_name=x -d 'payload[stripe_customer_id]=cus_1' -d 'payload[value]=1' -d timestamp=$((now_s - 36 * 86400)))" "within the past 35 days"
assert_contains "the double: more than 5 minutes ahead is refused" "$(dcall -d event_name=x -d 'payload[stripe_customer_id]=cus_1' -d 'payload[value]=1' -d timestamp=$((now_s + 600)))" "within the past 35 days"
assert_contains "the double: an event without an identifier gets one" "$(dcall -d event_name=x -d 'payload[stripe_customer_id]=cus_1' -d 'payload[value]=1')" "ok mevt_"
dcall -d event_name=x -d 'payload[stripe_customer_id]=cus_1' -d 'payload[value]=1' -d identifier=dup-1 >/dev/null
assert_contains "the double: a reused identifier is refused" "$(dcall -d event_name=y -d 'payload[stripe_customer_id]=cus_2' -d 'payload[value]=2' -d identifier=dup-1)" "An event already exists with identifier dup-1"
assert_contains "the double: with Stripe-Should-Retry: false" \
	"$(curl -s -D - -o /dev/null -H @"$E2E_TMP/auth" -H 'Idempotency-Key: kdup2' "$D/v1/billing/meter_events" -d event_name=x -d 'payload[stripe_customer_id]=cus_1' -d 'payload[value]=1' -d identifier=dup-1 | tr -d '\r')" \
	"stripe-should-retry: false"

# ---- SIGKILL during a 3,000-event run, then reruns ---------------------------
reset_day 1000 "'impressions','api_calls','data_transfer'"
for n in $((RANDOM % 300 + 50)) $((RANDOM % 600 + 800)) $((RANDOM % 800 + 1700)); do
	STRIPE_MAX_RPS=1000 "$APEXOPS_BIN" stripe sync-usage --date "$day" >>"$ALL" 2>&1 &
	pid=$!
	# wait on the condition: the double has taken n events (or the run ended)
	for _ in $(seq 1 600); do
		kill -0 $pid 2>/dev/null || break
		[ "$(dget /__double/meter_events | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).length))')" -ge "$n" ] && break
		sleep 0.05
	done
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
done
sync --date "$day"
expect_rc 0 "the run after the kills finishes"
assert_eq "3,000 events, all sent" "3000 sent" "$(sql "$url" "SELECT count(*) || ' ' || string_agg(DISTINCT status, ',') FROM apexops.stripe_usage_events")"
assert_eq "the total per customer and metric equals recorded usage exactly" "$(usums "$day" | md5sum)" "$(dsums | md5sum)"
assert_eq "Stripe holds 3,000 events" 3000 "$(dget /__double/meter_events | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).length))')"
assert_eq "no identifier was sent with two different values" 0 \
	"$(dget /__double/requests | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=new Map();let bad=0;for(const r of JSON.parse(s)){if(r.path!=="/v1/billing/meter_events")continue;const id=r.body.find(b=>b.startsWith("identifier="));const v=JSON.stringify(r.body);if(m.has(id)&&m.get(id)!==v)bad++;m.set(id,v)}console.log(bad)})')"
assert_eq "billing_audit: every customer's day is recorded synced, even what a killed run delivered" "1000 0" \
	"$(sql "$url" "SELECT count(DISTINCT customer_id) FILTER (WHERE event_type = 'stripe_usage_synced') || ' ' || count(*) FILTER (WHERE event_type = 'stripe_usage_sync_failed') FROM billing_audit WHERE data->>'day' = '$day' AND customer_id::text LIKE '00000000-0000-0000-0001-%' AND created_at > (SELECT min(created_at) FROM apexops.stripe_usage_events)")"
assert_eq "each event audited once" 3000 \
	"$(sql "$url" "SELECT count(*) FROM billing_audit, jsonb_array_elements(data->'events') e WHERE event_type = 'stripe_usage_synced' AND data->>'day' = '$day' AND created_at > (SELECT min(created_at) FROM apexops.stripe_usage_events)")"
before=$(requests)
sync --date "$day"
assert_eq "a rerun after that sends zero events" "$before" "$(requests)"

# ---- the scheduled job and status ---------------------------------------------
sql "$url" "UPDATE apexops.stripe_usage_events SET status = 'failed', sent_at = NULL, error = 'x' WHERE id = (SELECT min(id) FROM apexops.stripe_usage_events)" >/dev/null
run_ops status
printf '%s\n%s\n' "$OUT" "$ERR" >>"$ALL"
assert_contains "status has the usage sync section" "$OUT" "stripe usage sync"
assert_contains "with the last synced day" "$OUT" "last synced  $day"
assert_contains "and the rows to retry" "$OUT" "0 pending, 1 failed"
run_ops cron run stripe-usage-sync
printf '%s\n%s\n' "$OUT" "$ERR" >>"$ALL"
expect_rc 0 "cron run stripe-usage-sync (yesterday, and open earlier days)"
assert_eq "the failed row is settled" 0 "$(sql "$url" "SELECT count(*) FROM apexops.stripe_usage_events WHERE status <> 'sent'")"
assert_eq "recorded as a succeeded run of the job" "stripe-usage-sync succeeded" \
	"$(sql "$url" "SELECT job || ' ' || status FROM apexops.job_runs ORDER BY id DESC LIMIT 1")"
env -u STRIPE_SECRET_KEY "$APEXOPS_BIN" cron run stripe-usage-sync >"$E2E_TMP/o" 2>"$E2E_TMP/e"
RC=$?
ERR=$(cat "$E2E_TMP/e")
cat "$E2E_TMP/o" "$E2E_TMP/e" >>"$ALL"
expect_rc 78 "the job without a key exits 78"
assert_contains "naming STRIPE_SECRET_KEY" "$ERR" "STRIPE_SECRET_KEY"

# ---- the cancellation migration reverts and reapplies ------------------------
sql "$url" "UPDATE apexops.stripe_usage_events SET status = 'cancelled' WHERE id = (SELECT min(id) FROM apexops.stripe_usage_events)" >/dev/null
# this migration and any newer one (other capabilities' migrations may follow)
n=$(find "$OPS_ROOT/migrations/postgres" -name '*.up.sql' | sort | sed -n '/20261201_130001_stripe_usage_cancelled/,$p' | wc -l)
APEXOPS_MIGRATIONS_DIR="$OPS_ROOT/migrations/postgres" run_ops migrate down "$n" --execute
expect_rc 0 "the cancellation migration reverts"
assert_eq "a cancelled row went back to sent" "0 3000" "$(sql "$url" "SELECT count(*) FILTER (WHERE status = 'cancelled') || ' ' || count(*) FILTER (WHERE status = 'sent') FROM apexops.stripe_usage_events")"
APEXOPS_MIGRATIONS_DIR="$OPS_ROOT/migrations/postgres" run_ops migrate up
expect_rc 0 "and applies again"
APEXOPS_MIGRATIONS_DIR="$OPS_ROOT/migrations/postgres" run_ops migrate verify
expect_rc 0 "migrate verify is clean"

# ---- the secret in no output ------------------------------------------------------
for k in "$SECRET" "$RKEY"; do
	if grep -qF -- "$k" "$ALL" || sql "$url" "SELECT count(*) FROM apexops.stripe_usage_events WHERE error LIKE '%$k%'" | grep -qv '^0$' ||
		sql "$url" "SELECT count(*) FROM apexops.job_runs WHERE error LIKE '%$k%' OR params::text LIKE '%$k%'" | grep -qv '^0$'; then
		not_ok "the key ${k:0:8}... appears in no output, ledger or run record"
	else
		ok "the key ${k:0:8}... appears in no output, ledger or run record"
	fi
done
done_testing
