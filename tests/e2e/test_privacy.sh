#!/usr/bin/env bash
# Privacy requests (issue 11) as an operator and the platform's API server
# meet them: apexops.request_privacy() in the caller's transaction, its
# refusals, and one open request per (kind, tenant, user, format); the CLI
# refusing bad ids before any query; exports by a worker to local disk
# (JSONL and CSV, modes, checksum); tenant isolation; a worker SIGKILLed
# mid-export (one completion, one artifact); erasure (nothing personal
# left, another user untouched, earlier exports deleted, a second delete
# harmless); expiry (artifact deleted then marked; an unreachable
# provider leaves the request); list, show, url and status.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$ROOT/migrations/postgres"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
U=$(new_db privacy)
export DATABASE_URL=$U
q() { sql "$U" "$1"; }
T1=11111111-1111-4111-8111-111111111111
T2=22222222-2222-4222-8222-222222222222
A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
B=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
C=cccccccc-cccc-4ccc-8ccc-cccccccccccc
q "INSERT INTO publishers (id, company_name) VALUES ('$T1', 'Tenant One'), ('$T2', 'Tenant Two');
   INSERT INTO users (id, publisher_id, email, password_hash, api_key, stripe_customer_id)
   VALUES ('$A', '$T1', 'alice@example.com', '\$2b\$12\$alicehash', 'ak_alice_0123456789abcdef', 'cus_alice'),
          ('$B', '$T1', 'bob@example.com', '\$2b\$12\$bobhash', 'ak_bob_0123456789abcdef', 'cus_bob'),
          ('$C', '$T2', 'carol@example.com', '\$2b\$12\$carolhash', NULL, NULL)" >/dev/null

# ---- the SQL function, in the caller's transaction ---------------------------
psql -X -q "$U" -c "BEGIN" -c "SELECT apexops.request_privacy('export', '$T1', '$A', 'json')" -c "ROLLBACK" >/dev/null
assert_eq "a request filed in a transaction that rolls back leaves no row" 0 "$(q "SELECT count(*) FROM apexops.privacy_requests")"
assert_eq "and no job" 0 "$(q "SELECT count(*) FROM apexops.queue_jobs")"
R1=$(q "SELECT apexops.request_privacy('export', '$T1', '$A', 'json')")
assert_eq "json is taken as jsonl" jsonl "$(q "SELECT format FROM apexops.privacy_requests WHERE id = $R1")"
assert_eq "the request is queued, due one month after it was filed" "queued|t" \
	"$(q "SELECT status, due_at = requested_at + interval '1 month' FROM apexops.privacy_requests WHERE id = $R1")"
assert_eq "its job is in the queue" "privacy-export|$R1" \
	"$(q "SELECT q.kind, q.payload->>'request_id' FROM apexops.queue_jobs q JOIN apexops.privacy_requests r ON r.job_id = q.id WHERE r.id = $R1")"
assert_eq "the same request while open returns the open one" "$R1" "$(q "SELECT apexops.request_privacy('export', '$T1', '$A', 'jsonl')")"
assert_eq "and queues nothing more" 1 "$(q "SELECT count(*) FROM apexops.queue_jobs")"
for bad in "'import', '$T1', '$A', NULL|invalid privacy request kind" \
	"'export', '../../etc', '$A', NULL|invalid tenant id" \
	"'export', '$T1', '$A/../x', NULL|invalid user id" \
	"'export', '$T1', '$A', 'xml'|invalid export format" \
	"'delete', '$T1', '$A', 'csv'|a delete request takes no format"; do
	OUT=$(psql -X -At "$U" -c "SELECT apexops.request_privacy(${bad%%|*})" 2>&1)
	assert_contains "request_privacy(${bad%%|*}) is refused: ${bad#*|}" "$OUT" "${bad#*|}"
done
assert_eq "refusals leave nothing" "1 1" "$(q "SELECT count(*) FROM apexops.privacy_requests") $(q "SELECT count(*) FROM apexops.queue_jobs")"
q "DELETE FROM apexops.privacy_requests; DELETE FROM apexops.queue_jobs" >/dev/null

wait_exit() {
	for _ in $(seq 1 600); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	wait "$1"
	RC=$?
}
export PRIVACY_EXPORT_DIR="$E2E_TMP/exports"
# --wait blocks until the request finishes: bounded here, so a broken
# worker fails the test instead of hanging it
run_wait() {
	OUT=$(timeout 120 "$APEXOPS_BIN" "$@" 2>"$E2E_TMP/stderr")
	RC=$?
	ERR=$(cat "$E2E_TMP/stderr")
}
worker() { "$APEXOPS_BIN" worker --concurrency 2 --exit-when-idle "${1:-1500}" >>"$E2E_TMP/worker.log" 2>&1; }

# ---- the worker knows the privacy kinds --------------------------------------
run_ops worker --kinds mystery
expect_rc 64 "an unknown kind is refused"
assert_contains "naming the privacy kinds among those it handles" "$ERR" "(noop, privacy-export, privacy-delete)"
run_ops worker --kinds privacy-export,privacy-delete --exit-when-idle 200
expect_rc 0 "a worker for the privacy kinds only"

# a privacy job enqueued by hand with a payload that names no request: dead
# at once (no retry can mend it), saying what is wrong and what is allowed
for bad in '{"request_id": "7"}|not an integer' '{}|missing' '{"request_id": -3}|not positive' \
	'[7]|unreadable (the payload is not a JSON object)'; do
	q "SELECT apexops.enqueue('privacy-export', '${bad%%|*}')" >/dev/null
done
run_ops worker --kinds privacy-export --exit-when-idle 200
expect_rc 0 "a worker never exits because a job failed"
for bad in "not an integer" "missing" "not positive" "unreadable (the payload is not a JSON object)"; do
	assert_eq "a payload whose request_id is $bad: dead after one attempt, saying so" "dead|1" \
		"$(q "SELECT state || '|' || attempt FROM apexops.queue_jobs WHERE last_error = 'privacy-export: the payload''s request_id is $bad; it must be the id of a privacy request, a positive integer'")"
done
q "DELETE FROM apexops.queue_jobs" >/dev/null

# ---- bad ids and flags: refused before any query or path -------------------
for bad in "--tenant ../../etc --user $A|invalid tenant id '../../etc'" \
	"--tenant $T1 --user $A/../../x|invalid user id" \
	"--tenant $T1 --user {$A}|invalid user id" \
	"--tenant $T1|needs --tenant T and --user U" \
	"--tenant $T1 --user $A --format xml|--format 'xml': use jsonl" \
	"--tenant $T1 --user $A --form csv|--format"; do
	# an unreachable database: a query would fail with 69, not 64
	DATABASE_URL=postgresql://nobody@127.0.0.1:1/none run_ops privacy export ${bad%%|*}
	expect_rc 64 "privacy export ${bad%%|*} is a usage error"
	assert_contains "saying ${bad#*|}" "$ERR" "${bad#*|}"
done
for bad in "show abc" "show 0" "show -1" "url ../1" "show" "frobnicate"; do
	DATABASE_URL=postgresql://nobody@127.0.0.1:1/none run_ops privacy $bad
	expect_rc 64 "privacy $bad is a usage error"
done
assert_eq "nothing was filed" 0 "$(q "SELECT count(*) FROM apexops.privacy_requests")"
[ ! -e "$E2E_TMP/etc" ] && [ ! -e "$PRIVACY_EXPORT_DIR" ] && ok "and no path was made" || not_ok "and no path was made"

# ---- a JSONL export by a worker ----------------------------------------------
q "INSERT INTO usage_events (customer_id, event_name, event_value, event_metadata)
   SELECT '$A', 'impression', g, '{\"ip\": \"198.51.100.7\"}' FROM generate_series(1, 3000) g;
   INSERT INTO usage_events (customer_id, event_name, event_value) VALUES ('$B', 'bob-event', 1);
   INSERT INTO api_keys (key, user_id) VALUES ('key_of_alice_0123456789', '$A'), ('key_of_bob_0123456789', '$B');
   INSERT INTO invoices (invoice_number, customer_id, due_date, amount_cents, total_amount_cents, line_items, notes)
   VALUES ('INV-A', '$A', CURRENT_DATE, 100, 119, '[]', 'Alice Example, 1 Main St'),
          ('INV-B', '$B', CURRENT_DATE, 200, 238, '[]', 'Bob Example');
   INSERT INTO billing_audit (event_type, actor, customer_id, data, ip_address, user_agent)
   VALUES ('charge', 'alice@example.com', '$A', '{\"amount\": 119, \"email\": \"alice@example.com\"}', '198.51.100.7', 'Firefox alice'),
          ('charge', 'bob@example.com', '$B', '{\"amount\": 238}', '203.0.113.9', 'Safari bob')" >/dev/null
run_ops privacy export --tenant "$T1" --user "$A" --format json
expect_rc 0 "privacy export files a request"
RA=$(echo "$OUT" | sed -n 's/^request \([0-9]*\) queued.*/\1/p')
assert_contains "and says so" "$OUT" "request $RA queued (export of user $A, tenant $T1)"
worker
assert_eq "a worker completed it" "completed|local" "$(q "SELECT status || '|' || provider FROM apexops.privacy_requests WHERE id = $RA")"
LOC=$(q "SELECT location FROM apexops.privacy_requests WHERE id = $RA")
case "$LOC" in "$PRIVACY_EXPORT_DIR/$T1/$A/"*.jsonl) ok "under PRIVACY_EXPORT_DIR/<tenant>/<user>/<ms>.jsonl" ;; *) not_ok "under PRIVACY_EXPORT_DIR/<tenant>/<user>/<ms>.jsonl" "$LOC" ;; esac
assert_eq "file 0600, directory 0700" "600 700" "$(stat -c %a "$LOC") $(stat -c %a "$(dirname "$LOC")")"
assert_eq "size and sha256 recorded" "$(stat -c %s "$LOC") $(sha256sum "$LOC" | cut -d' ' -f1)" \
	"$(q "SELECT size_bytes || ' ' || sha256 FROM apexops.privacy_requests WHERE id = $RA")"
assert_eq "the manifest comes first" "$RA $T1 $A 3000 1" \
	"$(head -1 "$LOC" | jq -r '.manifest | "\(.request_id) \(.tenant) \(.user) \(.counts.usage_events) \(.data_map_version)"')"
assert_eq "one line per record, each {table, record}" "3004" "$(tail -n +2 "$LOC" | jq -r 'select(.table and .record) | .table' | wc -l)"
assert_eq "rows per table recorded" 3000 "$(q "SELECT rows_per_table->>'usage_events' FROM apexops.privacy_requests WHERE id = $RA")"
assert_eq "expires PRIVACY_EXPIRY_DAYS (30) after it finished" t \
	"$(q "SELECT expires_at = finished_at + interval '30 days' FROM apexops.privacy_requests WHERE id = $RA")"
c=$(grep -c -e alicehash -e key_of_alice_0123456789 -e ak_alice_0123456789abcdef -e bob "$LOC")
assert_eq "no password hash, no clear API key, nobody else" 0 "$c"
assert_contains "API keys are masked" "$(cat "$LOC")" '"key":"key_****6789"'

# ---- CSV with --wait, and list/show/url ----------------------------------------
worker 4000 &
W=$!
PIDS+=($W)
run_wait privacy export --tenant "$T1" --user "$A" --format csv --wait
expect_rc 0 "--wait exits 0 once the export completed"
RC_ID=$(echo "$OUT" | sed -n 's/^request \([0-9]*\) queued.*/\1/p')
assert_contains "and prints where it is" "$OUT" "request $RC_ID completed: $PRIVACY_EXPORT_DIR/$T1/$A/"
LOC_CSV=$(q "SELECT location FROM apexops.privacy_requests WHERE id = $RC_ID")
assert_eq "CSV starts with the manifest section, CRLF" "section,manifest" "$(head -1 "$LOC_CSV" | tr -d '\r')"
assert_contains "quotes fields with commas (RFC 4180)" "$(cat "$LOC_CSV")" '"Alice Example, 1 Main St"'

# tenant isolation: carol asked for through tenant one
run_wait privacy export --tenant "$T1" --user "$C" --wait
expect_rc 1 "--wait exits 1 when the request failed"
RX=$(echo "$OUT" | sed -n 's/^request \([0-9]*\) queued.*/\1/p')
assert_contains "a user of another tenant is refused with the reason" "$OUT" "user $C is not a user of tenant $T1"
assert_eq "the request failed at once (no retry)" "failed|1" \
	"$(q "SELECT r.status || '|' || j.attempt FROM apexops.privacy_requests r JOIN apexops.queue_jobs j ON j.id = r.job_id WHERE r.id = $RX")"
[ ! -e "$PRIVACY_EXPORT_DIR/$T1/$C" ] && ok "nothing written for her" || not_ok "nothing written for her"
wait_exit "$W"

run_ops privacy list
expect_rc 0 "privacy list"
assert_contains "lists the requests" "$OUT" "failed     $T1 $C"
run_ops privacy list --json
assert_eq "--json: an array, newest first" "$RX" "$(echo "$OUT" | jq -r '.[0].id')"
q "UPDATE apexops.privacy_requests SET due_at = now() - interval '1 day' WHERE id = $RX" >/dev/null
run_ops privacy list --overdue --json
assert_eq "--overdue: open or failed past the due date" "$RX" "$(echo "$OUT" | jq -r 'map(.id) | join(",")')"
run_ops status
assert_contains "apexops status has a privacy section" "$OUT" "privacy requests"
assert_contains "naming the overdue request" "$OUT" "OVERDUE"
run_ops privacy show "$RA"
expect_rc 0 "privacy show"
assert_eq "shows the request" "completed 3000" "$(echo "$OUT" | jq -r '"\(.status) \(.rows_per_table.usage_events)"')"
run_ops privacy show 999999
expect_rc 1 "an unknown request id exits 1"
run_ops privacy url "$RA"
expect_rc 0 "privacy url"
assert_eq "local: the file's path" "$LOC" "$OUT"
run_ops privacy url "$RX"
expect_rc 1 "a failed request has no url"

# ---- a failed attempt, then `apexops queue retry` ------------------------------
# the export directory is a file: the attempt fails (transient), the
# request says so and waits; an operator fixes it and retries the job,
# whose attempts start from 1 again
: >"$E2E_TMP/notadir"
run_ops privacy export --tenant "$T1" --user "$B" --format csv
RF=$(echo "$OUT" | sed -n 's/^request \([0-9]*\) queued.*/\1/p')
PRIVACY_EXPORT_DIR="$E2E_TMP/notadir" worker 500
assert_eq "a failed attempt leaves the request queued with its error" "queued|1|true" \
	"$(q "SELECT status || '|' || attempt || '|' || (error IS NOT NULL) FROM apexops.privacy_requests WHERE id = $RF")"
run_ops queue retry "$(q "SELECT job_id FROM apexops.privacy_requests WHERE id = $RF")"
expect_rc 0 "the operator retries its job"
worker
assert_eq "the retried job (attempt 1 again) completes the request" "completed|" \
	"$(q "SELECT status || '|' || COALESCE(error, '') FROM apexops.privacy_requests WHERE id = $RF")"
q "UPDATE apexops.privacy_requests SET status = 'expired' WHERE id = $RF" >/dev/null
rm -f "$(q "SELECT location FROM apexops.privacy_requests WHERE id = $RF")"

# ---- a worker SIGKILLed mid-export --------------------------------------------
export APEXOPS_WORKER_LEASE_S=5
q "INSERT INTO usage_events (customer_id, event_name, event_value, event_metadata)
   SELECT '$B', 'impression', g, jsonb_build_object('pad', repeat('x', 200)) FROM generate_series(1, 20000) g" >/dev/null
run_ops privacy export --tenant "$T1" --user "$B"
RK=$(echo "$OUT" | sed -n 's/^request \([0-9]*\) queued.*/\1/p')
APEXOPS_TEST_PRIVACY_WRITE_DELAY_MS=400 "$APEXOPS_BIN" worker --concurrency 1 >"$E2E_TMP/victim.log" 2>&1 &
V=$!
PIDS+=($V)
for _ in $(seq 1 300); do
	ls -a "$PRIVACY_EXPORT_DIR/$T1/$B" 2>/dev/null | grep -q '\.tmp\.' && break
	sleep 0.1
done
if ls -a "$PRIVACY_EXPORT_DIR/$T1/$B" 2>/dev/null | grep -q '\.tmp\.'; then ok "the export is being written"; else not_ok "the export is being written"; fi
kill -9 "$V"
wait "$V" 2>/dev/null
assert_eq "killed mid-export: running, nothing committed" "running|0" \
	"$(q "SELECT status || '|' || (location IS NOT NULL)::int FROM apexops.privacy_requests WHERE id = $RK")"
assert_eq "no artifact under its key yet" 0 "$(find "$PRIVACY_EXPORT_DIR/$T1/$B" -type f ! -name '.*' | wc -l)"
worker 8000
assert_eq "after the lease lapsed, the retry completed it once" "completed|2" \
	"$(q "SELECT status || '|' || attempt FROM apexops.privacy_requests WHERE id = $RK")"
assert_eq "exactly one artifact" 1 "$(find "$PRIVACY_EXPORT_DIR/$T1/$B" -type f ! -name '.*' | wc -l)"
LOCB=$(q "SELECT location FROM apexops.privacy_requests WHERE id = $RK")
assert_eq "the one recorded, complete" "20001 $(sha256sum "$LOCB" | cut -d' ' -f1)" \
	"$(tail -n +2 "$LOCB" | jq -r .table | grep -c '^usage_events$') $(q "SELECT sha256 FROM apexops.privacy_requests WHERE id = $RK")"
assert_eq "its queue job succeeded on attempt 2" "succeeded 2" \
	"$(q "SELECT j.state || ' ' || j.attempt FROM apexops.queue_jobs j JOIN apexops.privacy_requests r ON r.job_id = j.id WHERE r.id = $RK")"
unset APEXOPS_WORKER_LEASE_S
STRAY=$(find "$PRIVACY_EXPORT_DIR/$T1/$B" -name '.*.tmp.*' | head -1)
[ -n "$STRAY" ] && ok "the killed write left its temporary file" || not_ok "the killed write left its temporary file"

# ---- erasure ------------------------------------------------------------------
digest_b() { q "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
	SELECT t::text x FROM users t WHERE id = '$B' UNION ALL SELECT t::text FROM usage_events t WHERE customer_id = '$B'
	UNION ALL SELECT t::text FROM invoices t WHERE customer_id = '$B' UNION ALL SELECT t::text FROM billing_audit t WHERE customer_id = '$B'
	UNION ALL SELECT t::text FROM api_keys t WHERE user_id = '$B') s"; }
before=$(digest_b)
# the preview first: nothing filed, nothing changed, every table counted
nreq=$(q "SELECT count(*) FROM apexops.privacy_requests")
digest_a() { q "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM (SELECT u::text AS t FROM users u WHERE id = '$A'
	UNION ALL SELECT e::text FROM usage_events e WHERE customer_id = '$A') x"; }
alice=$(digest_a)
run_ops privacy delete --tenant "$T1" --user "$A" --dry-run
expect_rc 0 "privacy delete --dry-run exits 0"
assert_contains "it says nothing is filed or changed" "$OUT" "dry run: no request filed, nothing changed"
assert_contains "it counts her usage events to delete" "$OUT" "$(printf '  %-24s %-10s %10s' usage_events delete 3000)"
assert_contains "and the earlier exports to delete" "$OUT" "$(printf '  %-24s %-10s %10s' 'earlier exports' delete 2) artifact(s)"
run_ops privacy delete --tenant "$T1" --user "$A" --dry-run --json
expect_rc 0 "privacy delete --dry-run --json exits 0"
echo "$OUT" >"$E2E_TMP/preview.json"
assert_eq "the JSON preview has the receipt's shape" "true 3000 2" \
	"$(jq -r '"\(.dry_run) \(.tables.usage_events.rows) \(.exports_to_delete)"' "$E2E_TMP/preview.json")"
assert_eq "no request was filed" "$nreq" "$(q "SELECT count(*) FROM apexops.privacy_requests")"
assert_eq "none of her rows changed" "$alice" "$(digest_a)"
assert_eq "her exports are still on disk" 2 "$(find "$PRIVACY_EXPORT_DIR/$T1/$A" -type f ! -name '.*' | wc -l)"
for bad in "--dry-run --wait|--dry-run files no request to --wait for" "--json|--json goes with --dry-run"; do
	DATABASE_URL=postgresql://nobody@127.0.0.1:1/none run_ops privacy delete --tenant "$T1" --user "$A" ${bad%%|*}
	expect_rc 64 "privacy delete ${bad%%|*} is a usage error"
	assert_contains "saying ${bad#*|}" "$ERR" "${bad#*|}"
done
run_ops privacy delete --tenant "$T2" --user "$A" --dry-run
expect_rc 1 "a preview for a user of another tenant is refused"
assert_contains "saying so" "$ERR" "is not a user of tenant $T2"
worker 4000 &
W=$!
PIDS+=($W)
run_wait privacy delete --tenant "$T1" --user "$A" --wait
expect_rc 0 "privacy delete --wait completes"
RD=$(echo "$OUT" | sed -n 's/^request \([0-9]*\) queued.*/\1/p')
assert_eq "the erasure did what the preview said, table by table" \
	"$(jq -cS .tables "$E2E_TMP/preview.json")" "$(q "SELECT receipt->'tables' FROM apexops.privacy_requests WHERE id = $RD" | jq -cS .)"
assert_eq "the receipt counts rows per table and the artifacts" "3000 2 false" \
	"$(q "SELECT (receipt->'tables'->'usage_events'->>'rows') || ' ' || (receipt->>'artifacts_deleted') || ' ' || (receipt->>'nothing_left') FROM apexops.privacy_requests WHERE id = $RD")"
assert_eq "her earlier exports are gone from disk" 0 "$(find "$PRIVACY_EXPORT_DIR/$T1/$A" -type f ! -name '.*' | wc -l)"
assert_eq "and marked expired" "expired expired" "$(q "SELECT string_agg(status, ' ') FROM apexops.privacy_requests WHERE id IN ($RA, $RC_ID)")"
found=0
for needle in alice@example.com alicehash ak_alice_0123456789abcdef cus_alice key_of_alice_0123456789 198.51.100.7 'Alice Example' 'Firefox alice'; do
	for t in $(q "SELECT string_agg(table_name, ' ') FROM information_schema.tables WHERE table_schema = 'public'"); do
		n=$(q "SELECT count(*) FROM public.$t t WHERE t::text LIKE '%$needle%'")
		[ "$n" != 0 ] && { found=$((found + n)); echo "# $needle in $t"; }
	done
done
assert_eq "a scan of every table finds none of her personal data" 0 "$found"
assert_eq "her invoice amounts are kept" 119 "$(q "SELECT total_amount_cents FROM invoices WHERE invoice_number = 'INV-A'")"
assert_eq "bob is untouched" "$before" "$(digest_b)"
wait_exit "$W"
worker 4000 &
W=$!
PIDS+=($W)
run_wait privacy delete --tenant "$T1" --user "$A" --wait
expect_rc 0 "a second delete is harmless"
RD2=$(echo "$OUT" | sed -n 's/^request \([0-9]*\) queued.*/\1/p')
assert_eq "and says there was nothing left" "true 0" \
	"$(q "SELECT (receipt->>'nothing_left') || ' ' || (receipt->>'rows_total') FROM apexops.privacy_requests WHERE id = $RD2")"
wait_exit "$W"

# bob's erasure removes the killed write's leftover too (it holds his
# data); a write younger than a minute could be in progress, so age it
touch -d '2 minutes ago' "$STRAY"
worker 4000 &
W=$!
PIDS+=($W)
run_wait privacy delete --tenant "$T1" --user "$B" --wait
expect_rc 0 "bob's erasure completes"
assert_eq "no file of bob's is left, temporary or not" 0 "$(find "$PRIVACY_EXPORT_DIR/$T1/$B" -type f 2>/dev/null | wc -l)"
wait_exit "$W"
q "UPDATE apexops.privacy_requests SET status = 'completed' WHERE id = $RK" >/dev/null
mkdir -p "$(dirname "$LOCB")" && echo stand-in >"$LOCB" && chmod 600 "$LOCB"

# ---- expiry -----------------------------------------------------------------------
q "UPDATE apexops.privacy_requests SET expires_at = now() - interval '1 minute' WHERE id = $RK" >/dev/null
run_ops privacy expire --dry-run
expect_rc 0 "privacy expire --dry-run"
assert_contains "counts what is due" "$OUT" "1 export(s) past expires_at (dry run"
[ -f "$LOCB" ] && ok "and deletes nothing" || not_ok "and deletes nothing"
# an export in a provider that cannot be reached
q "INSERT INTO apexops.privacy_requests (kind, tenant_id, user_id, format, status, due_at, provider, location, expires_at)
   VALUES ('export', '$T2', '$C', 'jsonl', 'completed', now(), 's3', 's3://privacy-exports-dev/privacy-exports/$T2/$C/1.jsonl', now() - interval '1 day')" >/dev/null
AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI AWS_REGION=us-east-1 AWS_ENDPOINT_URL_S3=http://127.0.0.1:1 \
	APEXOPS_HTTP_RETRIES=0 run_ops privacy expire
expect_rc 75 "an unreachable provider: exit 75"
assert_contains "the rest is expired" "$OUT" "2 export(s) past expires_at: 1 expired, 1 left for the next run"
assert_contains "and it says why" "$ERR" "left for the next run"
[ ! -e "$LOCB" ] && ok "the local artifact is deleted" || not_ok "the local artifact is deleted"
assert_eq "then marked expired" "expired" "$(q "SELECT status FROM apexops.privacy_requests WHERE id = $RK")"
assert_eq "the unreachable one stays completed" "completed" "$(q "SELECT status FROM apexops.privacy_requests WHERE tenant_id = '$T2'")"
q "DELETE FROM apexops.privacy_requests WHERE tenant_id = '$T2'" >/dev/null
# unfinished writes of killed exports that no request names: swept once a
# day old, younger ones (a write that may still be going on) left alone
mkdir -p "$PRIVACY_EXPORT_DIR/$T2/$C"
OLD_TMP="$PRIVACY_EXPORT_DIR/$T2/$C/.1700000000000.jsonl.tmp.0123456789abcdef"
NEW_TMP="$PRIVACY_EXPORT_DIR/$T2/$C/.1700000000001.jsonl.tmp.fedcba9876543210"
echo partial >"$OLD_TMP" && touch -d '2 days ago' "$OLD_TMP"
echo partial >"$NEW_TMP"
run_ops cron run privacy-expiry
expect_rc 0 "the scheduler's privacy-expiry job runs"
[ ! -e "$OLD_TMP" ] && ok "it sweeps a day-old unfinished write" || not_ok "it sweeps a day-old unfinished write"
[ -e "$NEW_TMP" ] && ok "and leaves a recent one" || not_ok "and leaves a recent one"
assert_eq "the sweep is counted in the run" "1" "$(q "SELECT counts ->> 'swept' FROM apexops.job_runs WHERE job = 'privacy-expiry' ORDER BY id DESC LIMIT 1")"
assert_eq "recorded in the ledger" "succeeded" "$(q "SELECT status FROM apexops.job_runs WHERE job = 'privacy-expiry' ORDER BY id DESC LIMIT 1")"

done_testing
