#!/usr/bin/env bash
# Privacy export benchmark: one user with ROWS usage_events (default
# 1,000,000) plus their other tables, exported by `apexops worker`
#   1. local provider, JSONL, against psql's `\copy (SELECT ...) TO file`
#      of the same rows in the same run (text rows, and the same JSON
#      records row_to_json() makes);
#   2. S3 (s3rver on loopback), against @aws-sdk/lib-storage uploading
#      the finished export file to the same server.
# Wall time of an export is the request row's finished_at - started_at
# (the worker's own start-up and idle wait excluded); peak RSS is the
# worker process's, from /usr/bin/time -v. Each measured RUNS times
# (default 3), the median shown. Never asserts: it measures.
#
#   bench/export/run.sh [path/to/apexops]      (default build/apexops)
#   ROWS=1000000 RUNS=3 bench/export/run.sh
# The node peers are installed from bench/export/package-lock.json with
# `npm ci` on first run. Not part of `make test`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-${APEXOPS_BIN:-$ROOT/build/apexops}}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
ROWS=${ROWS:-1000000}
RUNS=${RUNS:-3}
export APEXOPS_MIGRATIONS_DIR=$ROOT/migrations/postgres
[ -x "$BIN" ] || { echo "bench/export: no binary at $BIN (build first)" >&2; exit 64; }
if [ ! -d "$HERE/node_modules/@aws-sdk/lib-storage" ]; then
	echo "bench/export: installing the peers (npm ci)" >&2
	(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
free_port() {
	local p=$1
	while (echo >/dev/tcp/127.0.0.1/"$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
PORT=$(free_port 59532)
WORK=$(mktemp -d /tmp/apexops-bench-export.XXXXXX)
chmod 755 "$WORK"
PGTMP="" SPID=""
cleanup() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
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
"$BIN" migrate up >"$WORK/migrate.log" 2>&1
q() { psql -X -At -v ON_ERROR_STOP=1 -d bench -c "$1"; }
T=11111111-1111-4111-8111-111111111111
U=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
say "seeding $ROWS usage_events of one user (and 200,000 of others)"
q "INSERT INTO publishers (id, company_name) VALUES ('$T', 'Bench');
   INSERT INTO users (id, publisher_id, email, password_hash, api_key)
   VALUES ('$U', '$T', 'bench@example.com', 'h', 'ak_bench_0123456789abcdef');
   INSERT INTO users (publisher_id, email, password_hash)
   SELECT '$T', 'other' || g || '@example.com', 'h' FROM generate_series(1, 20) g" >/dev/null
q "INSERT INTO usage_events (customer_id, event_name, event_value, event_metadata, created_at, stripe_synced)
   SELECT '$U', (ARRAY['impressions', 'api_calls', 'data_transfer'])[1 + g % 3], g % 5000,
          jsonb_build_object('placement', g % 25, 'app', 'bench'), now() - (g || ' seconds')::interval, g % 2 = 0
   FROM generate_series(1, $ROWS) g" >/dev/null
q "INSERT INTO usage_events (customer_id, event_name, event_value)
   SELECT u.id, 'impressions', g FROM users u, generate_series(1, 10000) g WHERE u.id <> '$U'" >/dev/null
q "INSERT INTO events (event_type, data, customer_id) SELECT 'email', '{}', '$U' FROM generate_series(1, 1000);
   INSERT INTO api_keys (key, user_id) SELECT 'key_' || g || '_0123456789abcdef', '$U' FROM generate_series(1, 3) g;
   INSERT INTO invoices (invoice_number, customer_id, due_date, amount_cents, total_amount_cents, line_items)
   SELECT 'INV-' || g, '$U', CURRENT_DATE, 4900, 5831, '[]' FROM generate_series(1, 24) g;
   INSERT INTO billing_audit (event_type, actor, customer_id, data)
   SELECT 'charge', 'bench@example.com', '$U', '{\"amount\": 5831}' FROM generate_series(1, 100)" >/dev/null
q "VACUUM ANALYZE" >/dev/null

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
# time_rss CMD...: runs it; prints "seconds kB" (wall, peak RSS)
time_rss() {
	/usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>>"$WORK/cmd.log"
	cat "$WORK/time"
}
# export_once PROVIDER: one export by a worker; prints "seconds bytes kB"
export_once() {
	local id rss
	id=$("$BIN" privacy export --tenant "$T" --user "$U" 2>>"$WORK/cmd.log" | sed -n 's/^request \([0-9]*\) queued.*/\1/p')
	rss=$(PRIVACY_EXPORT_PROVIDER=$1 time_rss "$BIN" worker --concurrency 1 --exit-when-idle 300 | cut -d' ' -f2)
	q "SELECT extract(epoch FROM finished_at - started_at)::numeric(10,3) || ' ' || size_bytes || ' $rss'
	   FROM apexops.privacy_requests WHERE id = $id AND status = 'completed'"
}
export PRIVACY_EXPORT_DIR=$WORK/exports

say "local: \\copy vs apexops export, $RUNS runs each"
: >"$WORK/copy_text" && : >"$WORK/copy_json" && : >"$WORK/local"
for _ in $(seq 1 "$RUNS"); do
	t=$(time_rss psql -X -q -d bench -c "\\copy (SELECT * FROM usage_events WHERE customer_id = '$U') TO '$WORK/copy.txt'")
	echo "$t $(stat -c %s "$WORK/copy.txt")" >>"$WORK/copy_text"
	t=$(time_rss psql -X -q -d bench -c "\\copy (SELECT row_to_json(t) FROM usage_events t WHERE customer_id = '$U') TO '$WORK/copy.json'")
	echo "$t $(stat -c %s "$WORK/copy.json")" >>"$WORK/copy_json"
	export_once local >>"$WORK/local"
done
FILE=$(q "SELECT location FROM apexops.privacy_requests WHERE provider = 'local' ORDER BY id DESC LIMIT 1")

say "s3: apexops export vs lib-storage upload of the finished file"
mkdir -p "$WORK/s3"
DIR=$WORK/s3 BUCKET=privacy-exports-dev node --no-warnings "$HERE/s3rver.mjs" >"$WORK/s3rver.log" 2>&1 &
SPID=$!
SPORT=""
for _ in $(seq 1 100); do
	SPORT=$(sed -n '1s/.* on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$WORK/s3rver.log")
	[ -n "$SPORT" ] && break
	sleep 0.1
done
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$SPORT PRIVACY_EXPORT_BUCKET=privacy-exports-dev
: >"$WORK/s3.tsv" && : >"$WORK/sdk.tsv"
for i in $(seq 1 "$RUNS"); do
	export_once s3 >>"$WORK/s3.tsv"
	t=$(node --no-warnings "$HERE/sdk_upload.mjs" "$AWS_ENDPOINT_URL_S3" privacy-exports-dev "sdk/$i.jsonl" "$FILE")
	echo "$t $(stat -c %s "$FILE") 0" >>"$WORK/sdk.tsv"
done

# rows: "what seconds bytes rss_kB"
row() { # row LABEL FILE SECCOL BYTESCOL RSSCOL
	local s b r
	s=$(awk -v c="$3" '{print $c}' "$2" | median)
	b=$(awk -v c="$4" '{print $c}' "$2" | median)
	r=$(awk -v c="$5" '{print $c}' "$2" | median)
	printf '| %s | %s | %.1f | %.1f | %.1f |\n' "$1" "$s" "$(echo "$b / 1048576" | bc -l)" \
		"$(echo "$b / 1048576 / $s" | bc -l)" "$(echo "$r / 1024" | bc -l)"
}
{
	echo "One user, $ROWS usage_events (+ 1,000 events, 24 invoices, 100 billing_audit, 3 API keys; 200,000 rows of 20 other users), median of $RUNS, $(nproc) cores, $(date -u +%Y-%m-%d)."
	echo
	echo "| what | wall s | MB | MB/s | peak RSS MiB |"
	echo "| --- | ---: | ---: | ---: | ---: |"
	row "psql \\copy (SELECT * ...) to file, text" "$WORK/copy_text" 1 3 2
	row "psql \\copy (SELECT row_to_json(t) ...) to file" "$WORK/copy_json" 1 3 2
	row "apexops export, local, JSONL (whole export)" "$WORK/local" 1 2 3
	row "apexops export, s3rver, JSONL (read, encode, upload)" "$WORK/s3.tsv" 1 2 3
	row "@aws-sdk/lib-storage upload of the finished file" "$WORK/sdk.tsv" 1 2 3
} | sed 's/| 0\.0 |$/| (node, not measured) |/'
