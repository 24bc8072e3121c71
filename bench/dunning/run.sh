#!/usr/bin/env bash
# Dunning benchmark: N open cases (default 5,000) against the project's
# Stripe double under a rate limit, the double's own token bucket at RPS
# and apexops's client-side limit (STRIPE_MAX_RPS) at the same RPS.
#
#   bench/dunning/run.sh [path/to/apexops]      (default build/apexops)
#   CASES=5000 RPS=200 CONCURRENCY=8 bench/dunning/run.sh
#
# 1. open: a run on day 1 after the failures; reconciliation lists the
#    open invoices (100 a page) and opens every case (none is due yet).
# 2. pay: the run on day 3; every case is due: GET the invoice, POST pay.
#    Half the customers pay (pm_card_visa), half decline
#    (pm_card_chargeCustomerFail). The bound is Stripe calls / RPS: no
#    client can go faster without 429s. Target (issue): within 10 %.
# 3. rerun: the same day again: nothing is due, no charge is made.
# Prints one table; writes it to docs/benchmarks.md ("Dunning") unless
# NO_DOCS=1. Never asserts; it measures. Not part of `make test`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-${APEXOPS_BIN:-$ROOT/build/apexops}}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
CASES=${CASES:-5000}
RPS=${RPS:-200}
CONCURRENCY=${CONCURRENCY:-8}
export APEXOPS_MIGRATIONS_DIR=$ROOT/migrations/postgres
[ -x "$BIN" ] || { echo "bench/dunning: no binary at $BIN (build first)" >&2; exit 64; }
free_port() {
	local p=$1
	while (echo >/dev/tcp/127.0.0.1/"$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
PORT=$(free_port $((59432 + RANDOM % 400))) # other benchmarks may start beside this one
WORK=$(mktemp -d /tmp/apexops-bench-dunning.XXXXXX)
chmod 755 "$WORK"
PGTMP="" DPID=""
cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null || true
	[ -n "$PGTMP" ] && "$ROOT/tests/peers/pg-down.sh" "$PGTMP" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PGTMP=$(PGPORT=$PORT "$ROOT/tests/peers/pg-up.sh")
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres
psql -X -q -d postgres -c "CREATE DATABASE bench"
export DATABASE_URL="postgresql://postgres@127.0.0.1:$PORT/bench"
unset CRON_TZ APEXOPS_CLOCK_START APEXOPS_CLOCK_EPOCH APEXOPS_CLOCK_SPEED STRIPE_SECRET_KEY_FILE
"$BIN" migrate up >"$WORK/migrate.log" 2>&1
q() { psql -X -At -v ON_ERROR_STOP=1 -d bench -c "$1"; }

PORT=0 node "$ROOT/tests/peers/stripe-double.mjs" >"$WORK/double.log" 2>&1 &
DPID=$!
for _ in $(seq 1 100); do
	DPORT=$(sed -n '1s/.* on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$WORK/double.log")
	[ -n "$DPORT" ] && break
	sleep 0.1
done
D=http://127.0.0.1:$DPORT
export APEXOPS_STRIPE_API_BASE=$D STRIPE_SECRET_KEY=sk_test_FAKE_bench_dunning
export STRIPE_MAX_RPS=$RPS APEXOPS_STRIPE_CONCURRENCY=$CONCURRENCY APEXOPS_LOG_LEVEL=warn

# users, subscriptions and invoices: customer i pays when i is even
say "seeding $CASES customers and failed invoices"
q "INSERT INTO publishers (id, company_name) VALUES ('30000000-0000-4000-8000-000000000001', 'Bench');
INSERT INTO users (publisher_id, email, password_hash, stripe_customer_id)
 SELECT '30000000-0000-4000-8000-000000000001', 'u' || i || '@bench.test', 'x', 'cus_b' || i FROM generate_series(1, $CASES) i;
INSERT INTO subscriptions (customer_id, plan_type, status, plan_limit_impressions, stripe_subscription_id, stripe_customer_id,
  base_price_cents, included_impressions, billing_interval, next_billing_date)
 SELECT u.id, 'growth', 'past_due', 1000, 'sub_b' || substr(u.stripe_customer_id, 6), u.stripe_customer_id, 4900, 1000, 'monthly', '2026-04-01'
 FROM users u WHERE u.stripe_customer_id LIKE 'cus_b%';" >/dev/null
T0=$(date -u -d 2026-03-01T10:00:00Z +%s)
python3 - "$D" "$CASES" "$T0" <<'PY'
import json, sys, urllib.request
d, n, t0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
inv = [{"id": f"in_b{i}", "customer": f"cus_b{i}", "subscription": f"sub_b{i}", "amount_due": 4900,
        "payment_method": "pm_card_visa" if i % 2 == 0 else "pm_card_chargeCustomerFail", "created": t0}
       for i in range(1, n + 1)]
req = urllib.request.Request(d + "/__double/billing/seed", data=json.dumps({"invoices": inv}).encode(),
                             headers={"content-type": "application/json"})
urllib.request.urlopen(req).read()
PY
curl -s -X POST -d "{\"rps\":$RPS,\"burst\":$RPS}" "$D/__double/ratelimit" >/dev/null

stat() { curl -s "$D/__double/stats" | python3 -c "import json,sys; s=json.load(sys.stdin); print(s['requests'], s['throttled'])"; }
charges() { curl -s "$D/__double/billing/charges" | python3 -c "import json,sys; c=json.load(sys.stdin); print(sum(1 for x in c if x['status']=='succeeded'), len(c))"; }
# run NAME AT: one dunning run on the clock at AT; prints wall seconds
run() {
	local t1 t2
	t1=$(date +%s.%N)
	APEXOPS_CLOCK_START=$2 "$BIN" stripe dunning --json >"$WORK/$1.json" 2>"$WORK/$1.err" || true
	t2=$(date +%s.%N)
	echo "$t1 $t2" | awk '{printf "%.2f", $2 - $1}'
}
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/$1.json" "$2"; }

say "open: reconciliation over $CASES open invoices"
read -r r0 th0 <<<"$(stat)"
w_open=$(run open 2026-03-02T03:00:00Z)
read -r r1 th1 <<<"$(stat)"
say "pay: $CASES due cases at $RPS requests/s"
w_pay=$(run pay 2026-03-04T03:00:00Z)
read -r r2 th2 <<<"$(stat)"
read -r paid1 all1 <<<"$(charges)"
say "rerun"
w_re=$(run rerun 2026-03-04T03:10:00Z)
read -r r3 th3 <<<"$(stat)"
read -r paid2 all2 <<<"$(charges)"

opened=$(field open opened)
calls_open=$(field open stripe_calls)
calls_pay=$(field pay stripe_calls)
due=$(field pay due)
bound_pay=$(awk -v c="$calls_pay" -v r="$RPS" 'BEGIN{printf "%.2f", c / r}')
bound_open=$(awk -v c="$calls_open" -v r="$RPS" 'BEGIN{printf "%.2f", c / r}')
over=$(awk -v w="$w_pay" -v b="$bound_pay" 'BEGIN{printf "%+.1f %%", (w - b) / b * 100}')
per_case=$(awk -v c="$calls_pay" -v n="$due" 'BEGIN{printf "%.2f", c / n}')
table=$(cat <<TABLE
| measure | result | target |
|---|---|---|
| open: cases opened by reconciliation | $opened in ${w_open} s ($calls_open list calls, bound ${bound_open} s) | |
| pay: due cases | $due (paid $(field pay paid), declined $(field pay declined)) | |
| pay: wall time | ${w_pay} s | |
| pay: bound (Stripe calls / ${RPS} per s) | ${bound_pay} s | |
| pay: over the bound | $over | within 10 % |
| Stripe calls per case | $per_case (GET invoice, POST pay; a recovered case also POSTs pause_collection="") | |
| 429s from the double (open, pay, rerun) | $((th1 - th0)), $((th2 - th1)), $((th3 - th2)) | 0 |
| successful charges after the pay run | $paid1 of $all1 charge attempts | one per paying customer |
| rerun: wall time, Stripe calls | ${w_re} s, $(field rerun stripe_calls) | |
| rerun: new charges | $((all2 - all1)) | 0 |
TABLE
)
head="bench/dunning on 2 cores, $(date -u +%Y-%m-%d), binary $(basename "$BIN"): $CASES cases against the Stripe double, its token bucket and STRIPE_MAX_RPS both at $RPS/s, APEXOPS_STRIPE_CONCURRENCY=$CONCURRENCY. The pay run's floor is its Stripe calls divided by the rate (no client goes faster without 429s); the open run is bound by its database writes (one transaction per case, with its transition, audit row and notice). Rerun with \`bench/dunning/run.sh\` (CASES, RPS, CONCURRENCY)."
printf '%s\n\n%s\n' "$head" "$table"
if [ "${NO_DOCS:-0}" != 1 ]; then
	python3 - "$ROOT/docs/benchmarks.md" "$head" "$table" <<'PY'
import sys, re
path, head, table = sys.argv[1:4]
s = open(path).read()
sec = "## Dunning\n\n" + head + "\n\n" + table + "\n"
if "## Dunning\n" in s:
    s = re.sub(r"## Dunning\n.*?(?=\n## |\Z)", sec.rstrip("\n") + "\n", s, flags=re.S)
else:
    s = s.rstrip("\n") + "\n\n" + sec
open(path, "w").write(s)
PY
fi
