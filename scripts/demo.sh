#!/usr/bin/env bash
# `make demo`: the main job on the embedded default. Starts the private
# PostgreSQL cluster under APEXOPS_HOME (default ./.apexops), migrates it,
# bootstraps the sandbox, builds revenue scenarios, previews a retention
# purge, runs one accelerated scheduler cycle, previews a Stripe usage sync
# and a dunning run against the project's Stripe test double, completes a
# privacy export with a worker and prints the status screen. It never
# touches DATABASE_URL: the demo always runs on the embedded cluster.
set -euo pipefail
BIN=${1:-build/apexops}
cd "$(dirname "$0")/.."
unset DATABASE_URL
export APEXOPS_HOME=${APEXOPS_HOME:-$PWD/.apexops}
OUT=${APEXOPS_DEMO_OUT:-$APEXOPS_HOME/demo}
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ops() { printf '$ apexops %s\n' "$*"; "$BIN" "$@"; }

step "1. embedded PostgreSQL cluster"
ops db start
step "2. schema migrations"
ops migrate up
ops migrate status
step "3. sandbox bootstrap (publisher, apps, placements, logins, FakeNetworkA/B/C, waterfalls)"
ops sandbox bootstrap
step "   a second run changes nothing"
ops sandbox bootstrap
step "4. sandbox revenue: the three tiers previewed, Growth written"
ops sandbox revenue --tier all --dry-run --start 2026-10-01 --days 30
ops sandbox revenue growth --start 2026-10-01 --days 30 --plot "$OUT/revenue-growth.svg"
step "5. retention purge preview (dry-run: nothing is deleted)"
# demo data only: three years of daily usage events for the sandbox logins,
# so that the plan has something to show (idempotent: tagged demo rows are
# replaced, nothing else is touched)
psql -X -q -v ON_ERROR_STOP=1 "$("$BIN" db url 2>/dev/null)" <<'SQL'
DELETE FROM public.usage_events WHERE event_metadata->>'source' = 'apexops-demo';
INSERT INTO public.usage_events (customer_id, event_name, event_value, event_metadata, created_at)
SELECT u.id, 'impressions', 1000 + (extract(doy FROM d)::int * 37) % 5000,
       '{"source": "apexops-demo"}', d + interval '13 hours'
FROM public.users u
CROSS JOIN generate_series(date_trunc('day', now()) - interval '36 months',
                           date_trunc('day', now()) - interval '1 day', interval '1 day') AS d
WHERE u.publisher_id = '138f62be-5cee-4c73-aba4-ba78ea77ab44';
SQL
echo "seeded $(psql -X -At "$("$BIN" db url 2>/dev/null)" -c "SELECT count(*) FROM public.usage_events WHERE event_metadata->>'source' = 'apexops-demo'") demo usage events over 36 months"
ops purge
# the project's Stripe test double (tests/peers/stripe-double.mjs, never
# the real Stripe): the scheduler's 02:00 usage sync and 03:00 dunning, and
# the dunning dry-run below, talk to it with a fake test key
PORT=0 node tests/peers/stripe-double.mjs >"$OUT/stripe-double.log" 2>&1 &
DPID=$!
trap 'kill "$DPID" 2>/dev/null || true' EXIT
DPORT=""
for _ in $(seq 1 100); do
	DPORT=$(sed -n '1s/.* on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$OUT/stripe-double.log")
	[ -n "$DPORT" ] && break
	sleep 0.1
done
[ -n "$DPORT" ] || { echo "demo: the Stripe test double did not start; see $OUT/stripe-double.log" >&2; exit 1; }
DOUBLE="http://127.0.0.1:$DPORT"
step "6. one scheduler cycle, accelerated: 01:50 to 04:20 in about 12 seconds"
# a virtual clock (never in production): the scheduler's 02:00 usage sync,
# 02:30 retention purge (executing, USAGE_RETENTION_MONTHS), 03:00 dunning,
# 04:00 privacy expiry and 04:15 queue prune fire within seconds (each
# slot runs once: a second demo on the same day finds them done)
DAY=$(date -u +%Y-%m-%d)
# (the daemon reaches the embedded cluster in well under a second, ten
# virtual minutes before the 02:00 slot)
printf '$ APEXOPS_CLOCK_START=%sT01:50:00Z APEXOPS_CLOCK_SPEED=720 apexops cron --run-for 9000\n' "$DAY"
APEXOPS_CLOCK_START="${DAY}T01:50:00Z" APEXOPS_CLOCK_EPOCH=$(date +%s.%N) APEXOPS_CLOCK_SPEED=720 \
	APEXOPS_CRON_LEASE_S=3600 STRIPE_SECRET_KEY=sk_test_FAKE_demo APEXOPS_STRIPE_API_BASE="$DOUBLE" \
	"$BIN" cron --run-for 9000 2>"$OUT/cron-cycle.log" || true
grep -E 'claimed run|run finished' "$OUT/cron-cycle.log" | sed 's/^ts=[^ ]* //' || true
ops cron history --limit 5
step "7. Stripe usage sync: yesterday's dry run (nothing is sent, no key needed)"
# demo data only: yesterday's usage_records for the sandbox logins (tagged
# demo rows are replaced, nothing else is touched); logins without a Stripe
# customer id are listed as such
psql -X -q -v ON_ERROR_STOP=1 "$("$BIN" db url 2>/dev/null)" <<'SQL'
DELETE FROM public.usage_records WHERE metadata->>'source' = 'apexops-demo';
INSERT INTO public.usage_records (customer_id, metric_type, quantity, metadata, recorded_at)
SELECT u.id, m, 100 * length(u.email) + h * 7, '{"source": "apexops-demo"}',
       date_trunc('day', now()) - interval '1 day' + h * interval '3 hours'
FROM public.users u, unnest(ARRAY['impressions', 'api_calls', 'data_transfer']) m, generate_series(0, 7) h
WHERE u.publisher_id = '138f62be-5cee-4c73-aba4-ba78ea77ab44';
SQL
ops stripe sync-usage --dry-run || true
step "8. dunning dry-run on the sandbox data, against the Stripe test double"
# a failed invoice of the sandbox owner, as the platform's webhook intake
# records it (idempotent: the demo row is replaced), and the double holding
# that invoice; a dry-run reads Stripe and writes or pays nothing
curl -s -X POST -H 'content-type: application/json' \
	-d '{"invoices":[{"id":"in_demo_sandbox_1","customer":"cus_demo_sandbox","amount_due":4900,"payment_method":"pm_card_chargeCustomerFail"}]}' \
	"$DOUBLE/__double/billing/seed" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 "$("$BIN" db url 2>/dev/null)" <<'SQL'
DELETE FROM public.billing_audit WHERE actor = 'apexops-demo' AND event_type = 'payment_failed';
INSERT INTO public.billing_audit (event_type, actor, customer_id, data, created_at)
VALUES ('payment_failed', 'apexops-demo', '821cd756-d945-4efd-8f7c-3e7d3520a899',
'{"invoice": "in_demo_sandbox_1", "source": "apexops-demo"}', now() - interval '4 days');
SQL
printf '$ STRIPE_SECRET_KEY=sk_test_... apexops stripe dunning --dry-run\n'
STRIPE_SECRET_KEY=sk_test_FAKE_demo APEXOPS_STRIPE_API_BASE="$DOUBLE" \
	"$BIN" stripe dunning --dry-run 2>>"$OUT/dunning.log" || true
step "9. a privacy export for a sandbox login, completed by a worker"
# the developer login of the sandbox publisher; the export goes to local
# disk under the demo's output directory
export PRIVACY_EXPORT_DIR="$OUT/exports"
ops privacy export --tenant 138f62be-5cee-4c73-aba4-ba78ea77ab44 \
	--user 6348ae56-dcd1-474a-9563-f6cf5f96395e --format jsonl
ops worker --concurrency 1 --exit-when-idle 2000 2>"$OUT/privacy-worker.log" || true
PRQ=$(psql -X -At "$("$BIN" db url 2>/dev/null)" -c "SELECT max(id) FROM apexops.privacy_requests WHERE kind = 'export'")
ops privacy show "$PRQ"
PLOC=$("$BIN" privacy url "$PRQ")
printf '$ head -3 %s | cut -c1-160\n' "$PLOC"
head -3 "$PLOC" | cut -c1-160
step "10. status"
ops status || true
step "done"
cat <<EOT
The embedded cluster keeps running: 'apexops db url' prints its URL,
'apexops db stop' stops it. Revenue chart: $OUT/revenue-growth.svg
EOT
