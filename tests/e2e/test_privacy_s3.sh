#!/usr/bin/env bash
# Privacy exports to S3 and GCS (issue 11), as a worker writes them:
# s3rver behind the SigV4-checking front (AWS's own signer), every
# artifact read back with @aws-sdk/client-s3 and compared with the
# request's sha256; multipart (a 5 MiB threshold, a ~12 MiB export);
# 500s injected and retried; privacy url's presigned link fetched with
# curl; erasure deleting the S3 artifacts; expiry removing S3 and GCS
# (GOOG1 HMAC key) artifacts.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$ROOT/migrations/postgres"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
U=$(new_db privacy_s3)
export DATABASE_URL=$U
q() { sql "$U" "$1"; }
s3_export_seed "$U"

# ---- the peers: s3rver behind the SigV4 front -------------------------------
mkdir -p "$E2E_TMP/s3data"
PORT=0 S3_DIR="$E2E_TMP/s3data" BUCKETS=privacy-exports-dev,gcs-bucket \
	EXTRA_AK=GOOG1EXAMPLEHMACKEYPRIVACY EXTRA_SK=gcsHmacSecret/+privacy \
	node --openssl-legacy-provider --no-warnings "$OPS_ROOT/tests/peers/s3-sigv4-front.mjs" >"$E2E_TMP/front.log" 2>&1 &
PIDS+=($!)
FPORT=""
for _ in $(seq 1 300); do
	FPORT=$(sed -n 's/.*s3 front on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$E2E_TMP/front.log" | head -1)
	[ -n "$FPORT" ] && break
	sleep 0.1
done
[ -n "$FPORT" ] && ok "the S3 front is up" || { not_ok "the S3 front is up" "$(cat "$E2E_TMP/front.log")"; done_testing; exit 1; }
EP=http://127.0.0.1:$FPORT
s3env() {
	export PRIVACY_EXPORT_PROVIDER=s3 PRIVACY_EXPORT_BUCKET=privacy-exports-dev
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 AWS_ENDPOINT_URL_S3=$EP
	export APEXOPS_S3_MULTIPART_THRESHOLD_MB=5
}
sdk_get() { # sdk_get REGION AK SK BUCKET KEY OUT
	node --no-warnings "$OPS_ROOT/tests/peers/s3-sdk-get.mjs" "$EP" "$@" 2>>"$E2E_TMP/sdk.log"
}
worker() { "$APEXOPS_BIN" worker --concurrency 2 --exit-when-idle "${1:-1500}" >>"$E2E_TMP/worker.log" 2>&1; }
front() { curl -s -X "$1" -H 'content-type: application/json' ${3:+-d "$3"} "$EP$2"; }
rid() { echo "$OUT" | sed -n 's/^request \([0-9]*\) queued.*/\1/p'; }

# ---- an S3 export: multipart, with 500s injected -------------------------------
s3env
front POST /__front/faults '[{"method":"PUT","match":"partNumber=2","status":500,"count":2}]' >/dev/null
run_ops privacy export --tenant "$T1" --user "$A"
R1=$(rid)
worker
assert_eq "the S3 export completed" "completed|s3" "$(q "SELECT status || '|' || provider FROM apexops.privacy_requests WHERE id = $R1")"
LOC=$(q "SELECT location FROM apexops.privacy_requests WHERE id = $R1")
case "$LOC" in "s3://privacy-exports-dev/privacy-exports/$T1/$A/"*.jsonl) ok "at s3://BUCKET/privacy-exports/<tenant>/<user>/<ms>.jsonl" ;; *) not_ok "at s3://BUCKET/privacy-exports/..." "$LOC" ;; esac
KEY=${LOC#s3://privacy-exports-dev/}
if sdk_get us-east-1 S3RVER S3RVER privacy-exports-dev "$KEY" "$E2E_TMP/a.jsonl"; then ok "the AWS SDK reads it back"; else not_ok "the AWS SDK reads it back" "$(tail -2 "$E2E_TMP/sdk.log")"; fi
assert_eq "byte for byte what the request recorded" \
	"$(q "SELECT size_bytes || ' ' || sha256 FROM apexops.privacy_requests WHERE id = $R1")" \
	"$(stat -c %s "$E2E_TMP/a.jsonl") $(sha256sum "$E2E_TMP/a.jsonl" | cut -d' ' -f1)"
sz=$(stat -c %s "$E2E_TMP/a.jsonl")
[ "$sz" -gt $((10 * 1024 * 1024)) ] && ok "big enough for several parts ($sz bytes)" || not_ok "big enough for several parts" "$sz"
n=$(front GET /__front/requests | jq '[.[] | select(.method == "PUT" and (.url | test("partNumber=2")) and .status == 500)] | length')
assert_eq "part 2 was refused twice with 500, then retried" 2 "$n"
assert_eq "no multipart upload left pending" 0 "$(front GET /__front/uploads | jq length)"
assert_eq "the manifest comes first" "$R1 40000" "$(head -1 "$E2E_TMP/a.jsonl" | jq -r '.manifest | "\(.request_id) \(.counts.usage_events)"')"
run_ops privacy url "$R1"
expect_rc 0 "privacy url"
case "$OUT" in "$EP/"*X-Amz-Expires=*) ok "a presigned URL" ;; *) not_ok "a presigned URL" "$OUT" ;; esac
exp=$(echo "$OUT" | sed -n 's/.*X-Amz-Expires=\([0-9]*\).*/\1/p')
[ -n "$exp" ] && [ "$exp" -le 604800 ] && ok "valid at most 7 days ($exp s)" || not_ok "valid at most 7 days" "$exp"
curl -sf -o "$E2E_TMP/url.jsonl" "$OUT" && cmp -s "$E2E_TMP/url.jsonl" "$E2E_TMP/a.jsonl" &&
	ok "curl fetches the same bytes through it" || not_ok "curl fetches the same bytes through it"
q "UPDATE apexops.privacy_requests SET expires_at = now() + interval '1 hour' WHERE id = $R1" >/dev/null
run_ops privacy url "$R1"
exp=$(echo "$OUT" | sed -n 's/.*X-Amz-Expires=\([0-9]*\).*/\1/p')
[ -n "$exp" ] && [ "$exp" -le 3600 ] && ok "never past expires_at ($exp s)" || not_ok "never past expires_at" "$exp"

# ---- erasure deletes the S3 artifacts ------------------------------------------
run_ops privacy export --tenant "$T1" --user "$A" --format csv
R2=$(rid)
worker
KEY2=$(q "SELECT location FROM apexops.privacy_requests WHERE id = $R2")
KEY2=${KEY2#s3://privacy-exports-dev/}
run_ops privacy delete --tenant "$T1" --user "$A"
RD=$(rid)
worker
assert_eq "the delete completed, two artifacts deleted" "completed 2" \
	"$(q "SELECT status || ' ' || (receipt->>'artifacts_deleted') FROM apexops.privacy_requests WHERE id = $RD")"
if sdk_get us-east-1 S3RVER S3RVER privacy-exports-dev "$KEY" "$E2E_TMP/gone"; then not_ok "the JSONL artifact is gone from S3"; else ok "the JSONL artifact is gone from S3"; fi
if sdk_get us-east-1 S3RVER S3RVER privacy-exports-dev "$KEY2" "$E2E_TMP/gone"; then not_ok "the CSV artifact is gone from S3"; else ok "the CSV artifact is gone from S3"; fi

# ---- expiry in S3 ---------------------------------------------------------------
run_ops privacy export --tenant "$T1" --user "$B"
RB=$(rid)
worker
KEYB=$(q "SELECT location FROM apexops.privacy_requests WHERE id = $RB")
KEYB=${KEYB#s3://privacy-exports-dev/}
sdk_get us-east-1 S3RVER S3RVER privacy-exports-dev "$KEYB" "$E2E_TMP/b.jsonl" && ok "bob's export is in S3" || not_ok "bob's export is in S3"
q "UPDATE apexops.privacy_requests SET expires_at = now() - interval '1 minute' WHERE id = $RB" >/dev/null
run_ops privacy expire
expect_rc 0 "privacy expire"
if sdk_get us-east-1 S3RVER S3RVER privacy-exports-dev "$KEYB" "$E2E_TMP/gone"; then not_ok "expiry deleted it in S3"; else ok "expiry deleted it in S3"; fi
assert_eq "then marked it expired" expired "$(q "SELECT status FROM apexops.privacy_requests WHERE id = $RB")"

# ---- GCS with an HMAC key -----------------------------------------------------------
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_ENDPOINT_URL_S3
export PRIVACY_EXPORT_PROVIDER=gcs PRIVACY_EXPORT_BUCKET=gcs-bucket APEXOPS_GCS_ENDPOINT=$EP
export APEXOPS_GCS_HMAC_ACCESS_ID=GOOG1EXAMPLEHMACKEYPRIVACY APEXOPS_GCS_HMAC_SECRET=gcsHmacSecret/+privacy
run_ops privacy export --tenant "$T1" --user "$B"
RG=$(rid)
worker
LOCG=$(q "SELECT location FROM apexops.privacy_requests WHERE id = $RG")
case "$LOCG" in "gs://gcs-bucket/privacy-exports/$T1/$B/"*.jsonl) ok "a GCS export at gs://BUCKET/privacy-exports/..." ;; *) not_ok "a GCS export at gs://BUCKET/privacy-exports/..." "$LOCG $(q "SELECT error FROM apexops.privacy_requests WHERE id = $RG")" ;; esac
KEYG=${LOCG#gs://gcs-bucket/}
sdk_get auto GOOG1EXAMPLEHMACKEYPRIVACY gcsHmacSecret/+privacy gcs-bucket "$KEYG" "$E2E_TMP/g.jsonl" &&
	assert_eq "read back, it is what the request recorded" "$(q "SELECT sha256 FROM apexops.privacy_requests WHERE id = $RG")" \
		"$(sha256sum "$E2E_TMP/g.jsonl" | cut -d' ' -f1)" || not_ok "read back, it is what the request recorded"
q "UPDATE apexops.privacy_requests SET expires_at = now() - interval '1 minute' WHERE id = $RG" >/dev/null
run_ops privacy expire
expect_rc 0 "privacy expire (gcs)"
if sdk_get auto GOOG1EXAMPLEHMACKEYPRIVACY gcsHmacSecret/+privacy gcs-bucket "$KEYG" "$E2E_TMP/gone"; then not_ok "expiry deleted it in GCS"; else ok "expiry deleted it in GCS"; fi
assert_eq "then marked it expired" expired "$(q "SELECT status FROM apexops.privacy_requests WHERE id = $RG")"

done_testing
