#!/usr/bin/env bash
# Benchmark: `apexops stripe sync-usage` for CUSTOMERS customers (default
# 10,000) x 3 metrics against our Stripe double (tests/peers/stripe-double.mjs)
# with its rate limit at RPS requests/s (default 1,000: Stripe's live
# meter-events limit) and STRIPE_MAX_RPS=RPS, against a throwaway
# PostgreSQL 15 with durable settings. Prints a table: wall time against
# the bound (events / rate), Stripe calls per event, calls on a rerun, peak
# RSS, the share of wall time spent in ledger statements. Never asserts a
# time.
#   bench/stripe-sync/run.sh [path/to/apexops]     (or APEXOPS_BIN=...)
#   CUSTOMERS=10000 RPS=1000 CONCURRENCY=8 bench/stripe-sync/run.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CUSTOMERS=${CUSTOMERS:-10000}
RPS=${RPS:-1000}
CONCURRENCY=${CONCURRENCY:-8}
BIN=${1:-${APEXOPS_BIN:-}}
if [ -z "$BIN" ]; then
	# an optimised build without sanitizers: what an operator runs
	cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$ROOT/build-bench" -j"$(nproc)" --target apexops >/dev/null
	BIN=$ROOT/build-bench/apexops
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

WORK=$(mktemp -d /tmp/apexops-bench-stripe.XXXXXX)
chmod 755 "$WORK"
PGTMP="" DPID=""
cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null
	[ -n "$PGTMP" ] && "$ROOT/tests/peers/pg-down.sh" "$PGTMP"
	rm -rf "$WORK"
}
trap cleanup EXIT

port=55632
while (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done
PGTMP=$(PGPORT=$port tests/peers/pg-up.sh)
# pg-up.sh turns durability off for tests; a benchmark wants it on
cat >>"$PGTMP/data/postgresql.conf" <<CONF
fsync = on
synchronous_commit = on
full_page_writes = on
CONF
if [ "$(id -u)" = 0 ]; then AS="runuser -u postgres --"; else AS=""; fi
$AS /usr/lib/postgresql/15/bin/pg_ctl -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 restart >/dev/null
ADMIN="postgresql://postgres@127.0.0.1:$port/postgres"
URL="postgresql://postgres@127.0.0.1:$port/bench"
psql -X -q "$ADMIN" -c "CREATE DATABASE bench" >/dev/null
export DATABASE_URL=$URL CRON_TZ=UTC
unset RETENTION_MONTHS USAGE_RETENTION_MONTHS CONFIRM STRIPE_SECRET_KEY_FILE
(cd "$WORK" && "$BIN" migrate up) >"$WORK/migrate.log" 2>&1 || {
	cat "$WORK/migrate.log" >&2
	exit 1
}
q() { psql -X -At -v ON_ERROR_STOP=1 "$URL" -c "$1"; }

# CUSTOMERS customers with a Stripe id, two usage records per metric
DAY=$(q "SELECT (now() AT TIME ZONE 'UTC')::date - 1")
psql -X -q -v ON_ERROR_STOP=1 "$URL" >/dev/null <<SQL
INSERT INTO publishers (id, company_name) VALUES ('00000000-0000-0000-0000-0000000000bb', 'bench');
INSERT INTO users (id, publisher_id, email, password_hash, stripe_customer_id)
SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, '00000000-0000-0000-0000-0000000000bb',
       'bench' || g || '@x.test', 'x', 'cus_bench' || g
FROM generate_series(1, $CUSTOMERS) g;
INSERT INTO usage_records (customer_id, metric_type, quantity, recorded_at)
SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, m, 1 + (g * 7 + h) % 1000,
       '$DAY'::timestamptz + (h * 11 + g % 600) * interval '1 minute'
FROM generate_series(1, $CUSTOMERS) g, unnest(ARRAY['impressions', 'api_calls', 'data_transfer']) m, generate_series(1, 2) h;
ANALYZE;
SQL

: >"$WORK/double.log"
(cd tests/peers && PORT=0 exec node stripe-double.mjs) >>"$WORK/double.log" 2>&1 &
DPID=$!
for _ in $(seq 1 100); do
	dport=$(sed -n '1s/.* on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$WORK/double.log")
	[ -n "$dport" ] && break
	sleep 0.1
done
D=http://127.0.0.1:$dport
curl -sf -X POST "$D/__double/ratelimit" -d "{\"rps\":$RPS,\"burst\":$((RPS / 20 + 1))}" >/dev/null
stat() { curl -sf "$D/__double/stats" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).$1))"; }

export APEXOPS_STRIPE_API_BASE=$D STRIPE_SECRET_KEY=sk_test_bench STRIPE_MAX_RPS=$RPS
export APEXOPS_STRIPE_CONCURRENCY=$CONCURRENCY APEXOPS_LOG_LEVEL=warn
run() { # run NAME: one sync of DAY, JSON to $WORK/NAME.json, time -v to $WORK/NAME.time
	(cd "$WORK" && /usr/bin/time -v -o "$WORK/$1.time" "$BIN" stripe sync-usage --date "$DAY" --json \
		>"$WORK/$1.json" 2>"$WORK/$1.err") || {
		tail -5 "$WORK/$1.err" >&2
		exit 1
	}
}
jget() { node -e "const o=JSON.parse(require('fs').readFileSync('$WORK/$1.json'));console.log($2)"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.1f MiB", $2 / 1024}' "$WORK/$1.time"; }

r0=$(stat requests)
run first
r1=$(stat requests)
throttled=$(stat throttled)
run rerun
r2=$(stat requests)

events=$(jget first 'o.events.length')
wall=$(jget first 'o.timing.wall_s.toFixed(2)')
send=$(jget first 'o.timing.send_s.toFixed(2)')
ledger=$(jget first 'o.timing.ledger_s.toFixed(2)')
serial=$(jget first 'o.timing.ledger_serial_s.toFixed(2)')
plan=$(jget first 'o.timing.plan_s.toFixed(2)')
audit=$(jget first 'o.timing.audit_s.toFixed(2)')
bound=$(node -e "console.log(($events / $RPS).toFixed(2))")
over=$(node -e "console.log((($wall / ($events / $RPS) - 1) * 100).toFixed(1))")
share=$(node -e "console.log(($ledger / $wall * 100).toFixed(1))")
sshare=$(node -e "console.log(($serial / $wall * 100).toFixed(1))")
ashare=$(node -e "console.log(($audit / $wall * 100).toFixed(1))")
calls=$(node -e "console.log((($r1 - $r0) / $events).toFixed(3))")
sums_ok=$(curl -sf "$D/__double/meter_events/sums" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(Object.values(JSON.parse(s)).reduce((a,b)=>a+b,0)))")
recorded=$(q "SELECT sum(quantity) FROM usage_records")

cat <<TABLE
Stripe usage sync: $CUSTOMERS customers x 3 metrics, double at $RPS req/s, STRIPE_MAX_RPS=$RPS, $CONCURRENCY threads
$(nproc) cores, PostgreSQL $(q "SHOW server_version"), fsync $(q "SHOW fsync")

| measure | value | target |
| --- | --- | --- |
| events | $events | |
| wall time | $wall s (sending $send s) | |
| bound (events / rate) | $bound s | |
| over the bound | $over % | within 5 % |
| Stripe calls per event | $calls ($throttled answered 429) | 1.000 |
| calls on a rerun | $((r2 - r1)) | 0 |
| peak RSS (first run) | $(rss first) | |
| ledger statements (plan $plan s, settling) | $ledger s ($share % of wall) | under 10 % |
| billing_audit writes | $audit s ($ashare % of wall) | |
| database time with no call in flight | $serial s ($sshare % of wall) | |
| units reported / recorded | $sums_ok / $recorded | equal |
TABLE
