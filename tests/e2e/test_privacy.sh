#!/usr/bin/env bash
# Privacy requests (issue 11) as an operator and the platform's API server
# meet them: apexops.request_privacy() in the caller's transaction, its
# refusals, and one open request per (kind, tenant, user, format).
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

done_testing
