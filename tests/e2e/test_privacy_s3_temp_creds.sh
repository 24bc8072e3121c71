#!/usr/bin/env bash
# Privacy exports to S3 with temporary credentials only (no AWS_ACCESS_KEY_ID,
# no shared files): from the container endpoint (EKS style: full URI and a
# token file), then from IMDSv2, both served by our double
# (tests/peers/aws-creds-double.mjs) that the official SDK's providers accept
# (the oracle), against s3rver behind the SigV4 front, which takes the
# double's keys only with their session token. A rotation mid-run (short
# expiry, a slow part) makes apexops fetch again and keep going; failures
# of the endpoint are retried; a refused or absent endpoint fails with a
# non-zero exit naming the source and leaves nothing in S3; no secret
# (keys, session tokens, the authorization token) ever appears in
# apexops's output or logs.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$ROOT/migrations/postgres"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
U=$(new_db privacy_s3_creds)
export DATABASE_URL=$U
q() { sql "$U" "$1"; }
s3_export_seed "$U"

# ---- the peers -------------------------------------------------------------------
wait_port() { # wait_port LOG PATTERN: the port a peer printed
	local p=""
	for _ in $(seq 1 300); do
		p=$(sed -n "s/.*$2 on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p" "$1" | head -1)
		[ -n "$p" ] && break
		sleep 0.1
	done
	echo "$p"
}
mkdir -p "$E2E_TMP/s3data"
PORT=0 S3_DIR="$E2E_TMP/s3data" BUCKETS=privacy-exports-dev \
	node --openssl-legacy-provider --no-warnings "$OPS_ROOT/tests/peers/s3-sigv4-front.mjs" >"$E2E_TMP/front.log" 2>&1 &
PIDS+=($!)
AUTH="eks-pod-identity-token/$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PORT=0 AUTH_TOKEN=$AUTH CONTAINER_PATH=/v1/credentials \
	node --no-warnings "$OPS_ROOT/tests/peers/aws-creds-double.mjs" >"$E2E_TMP/double.log" 2>&1 &
PIDS+=($!)
FPORT=$(wait_port "$E2E_TMP/front.log" "s3 front")
DPORT=$(wait_port "$E2E_TMP/double.log" "aws creds double")
if [ -n "$FPORT" ] && [ -n "$DPORT" ]; then ok "the S3 front and the credentials double are up"; else
	not_ok "the S3 front and the credentials double are up" "$(cat "$E2E_TMP/front.log" "$E2E_TMP/double.log")"
	done_testing
	exit 1
fi
EP=http://127.0.0.1:$FPORT
DBL=http://127.0.0.1:$DPORT
front() { curl -s -X "$1" -H 'content-type: application/json' ${3:+-d "$3"} "$EP$2"; }
double() { curl -s -X "$1" -H 'content-type: application/json' ${3:+-d "$3"} "$DBL$2"; }
stat_of() { double GET /__double/stats | jq -r ".$1"; }
front POST /__front/temp_keys "{\"lookup\":\"$DBL/__double/issued\"}" >/dev/null
# apexops drops one trailing newline of a mounted token; the SDK for
# JavaScript sends the file as is, so its copy has none
printf '%s\n' "$AUTH" >"$E2E_TMP/token"
printf '%s' "$AUTH" >"$E2E_TMP/token-sdk"
chmod 600 "$E2E_TMP/token" "$E2E_TMP/token-sdk"

# ---- the official SDK takes the double for AWS (the oracle) -------------------------
sdk_creds() { node --no-warnings "$OPS_ROOT/tests/peers/aws-creds-sdk.mjs" "$@" 2>"$E2E_TMP/sdk.err"; }
o=$(AWS_CONTAINER_CREDENTIALS_FULL_URI=$DBL/v1/credentials AWS_CONTAINER_AUTHORIZATION_TOKEN=$AUTH sdk_creds container)
case "$o" in *'"accessKeyId":"ASIA'*'"token":true'*) ok "the SDK's fromContainerMetadata takes the double's answer" ;; *) not_ok "the SDK's fromContainerMetadata takes the double's answer" "$o $(cat "$E2E_TMP/sdk.err")" ;; esac
o=$(AWS_CONTAINER_CREDENTIALS_FULL_URI=$DBL/v1/credentials AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$E2E_TMP/token-sdk sdk_creds http)
case "$o" in *'"accessKeyId":"ASIA'*'"expiration":"20'*) ok "the SDK's fromHttp (EKS Pod Identity, token file) takes it" ;; *) not_ok "the SDK's fromHttp takes it" "$o $(cat "$E2E_TMP/sdk.err")" ;; esac
if AWS_CONTAINER_CREDENTIALS_FULL_URI=$DBL/v1/credentials AWS_CONTAINER_AUTHORIZATION_TOKEN=wrong sdk_creds http >/dev/null; then
	not_ok "the SDK is refused with a wrong authorization token"
else ok "the SDK is refused with a wrong authorization token"; fi
o=$(AWS_EC2_METADATA_SERVICE_ENDPOINT=$DBL sdk_creds imds)
case "$o" in *'"accessKeyId":"ASIA'*'"token":true'*) ok "the SDK's fromInstanceMetadata (IMDSv2) takes it" ;; *) not_ok "the SDK's fromInstanceMetadata takes it" "$o $(cat "$E2E_TMP/sdk.err")" ;; esac
# IMDSv2 as AWS documents it
assert_eq "IMDS: a token PUT without its TTL header is 400" 400 \
	"$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$DBL/latest/api/token")"
assert_eq "IMDS: the role without a token is 401" 401 \
	"$(curl -s -o /dev/null -w '%{http_code}' "$DBL/latest/meta-data/iam/security-credentials/")"
assert_eq "IMDS: ... and with a wrong one" 401 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H 'X-aws-ec2-metadata-token: nope' "$DBL/latest/meta-data/iam/security-credentials/")"

# ---- apexops, the container endpoint only ------------------------------------------------
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE
export HOME=$E2E_TMP/home # no ~/.aws
export PRIVACY_EXPORT_PROVIDER=s3 PRIVACY_EXPORT_BUCKET=privacy-exports-dev
export AWS_REGION=us-east-1 AWS_ENDPOINT_URL_S3=$EP APEXOPS_S3_MULTIPART_THRESHOLD_MB=5 APEXOPS_LOG_LEVEL=debug
container_env() {
	unset AWS_EC2_METADATA_SERVICE_ENDPOINT
	export AWS_EC2_METADATA_DISABLED=true
	export AWS_CONTAINER_CREDENTIALS_FULL_URI=$DBL/v1/credentials AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$E2E_TMP/token
}
imds_env() {
	unset AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE AWS_CONTAINER_AUTHORIZATION_TOKEN
	export AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT=$DBL
}
# everything apexops printed, for the secret check, but privacy url's
# answer: a presigned URL made with temporary credentials must carry the
# session token (X-Amz-Security-Token), that is what it is for
LOGS=$E2E_TMP/apexops.log
ops() {
	run_ops "$@"
	if [ "$1 $2" = "privacy url" ]; then printf '%s\n' "$ERR"; else printf '%s\n%s\n' "$OUT" "$ERR"; fi >>"$LOGS"
}
worker() { "$APEXOPS_BIN" worker --concurrency 1 --exit-when-idle 1500 >>"$E2E_TMP/worker.log" 2>&1; }
rid() { echo "$OUT" | sed -n 's/^request \([0-9]*\) queued.*/\1/p'; }
sdk_get() { node --no-warnings "$OPS_ROOT/tests/peers/s3-sdk-get.mjs" "$EP" us-east-1 S3RVER S3RVER privacy-exports-dev "$@" 2>>"$E2E_TMP/sdk.log"; }
# export_ok DESC USER: one export through the worker, read back and compared
export_ok() {
	ops privacy export --tenant "$T1" --user "$2"
	R=$(rid)
	worker
	assert_eq "$1: the export completed" completed \
		"$(q "SELECT status || coalesce(' ' || error, '') FROM apexops.privacy_requests WHERE id = ${R:-0}")"
	local loc key
	loc=$(q "SELECT location FROM apexops.privacy_requests WHERE id = ${R:-0}")
	key=${loc#s3://privacy-exports-dev/}
	if sdk_get "$key" "$E2E_TMP/got" &&
		[ "$(sha256sum <"$E2E_TMP/got" | cut -d' ' -f1)" = "$(q "SELECT sha256 FROM apexops.privacy_requests WHERE id = ${R:-0}")" ]; then
		ok "$1: read back, it is what the request recorded"
	else not_ok "$1: read back, it is what the request recorded" "$loc"; fi
}
# the access keys the front saw since the last clear, but the test's own
# reader's (S3RVER, reading exports back)
keys_seen() { front GET /__front/requests | jq -r '[.[] | .ak // "none" | select(. != "S3RVER")] | unique | join(" ")'; }
# one_temp_key DESC: apexops signed everything since the last clear with
# one temporary key of the double's
one_temp_key() {
	local k
	k=$(keys_seen)
	case "$k" in ASIA*" "* | "") not_ok "$1" "$k" ;; ASIA*) ok "$1 ($k)" ;; *) not_ok "$1" "$k" ;; esac
}
# fresh_export DESC USER: clear the front's log, export, and check the keys
fresh_export() {
	front DELETE /__front/requests >/dev/null
	export_ok "$1" "$2"
	one_temp_key "$1: every request was signed with the double's temporary key"
}

container_env
c0=$(stat_of container)
t0=$(stat_of imds_token)
bad0=$(stat_of bad_request)
fresh_export "container" "$B"
[ "$(stat_of container)" -gt "$c0" ] && ok "the container endpoint was asked" || not_ok "the container endpoint was asked"
assert_eq "IMDS was never asked" "$t0" "$(stat_of imds_token)"
RB=$R
ops privacy url "$RB"
expect_rc 0 "privacy url with container credentials"
case "$OUT" in *X-Amz-Security-Token=*) ok "the presigned URL carries the session token" ;; *) not_ok "the presigned URL carries the session token" "$OUT" ;; esac
exp=$(echo "$OUT" | sed -n 's/.*X-Amz-Expires=\([0-9]*\).*/\1/p')
[ -n "$exp" ] && [ "$exp" -le 3600 ] && ok "no longer than the credentials' hour ($exp s)" || not_ok "no longer than the credentials' hour" "$exp"
curl -sf -o "$E2E_TMP/url.jsonl" "$OUT" && ok "curl fetches the export through it" || not_ok "curl fetches the export through it"

# ---- the same, IMDSv2 only ------------------------------------------------------------------
imds_env
c0=$(stat_of container)
i0=$(stat_of imds_creds)
fresh_export "IMDS" "$B"
[ "$(stat_of imds_creds)" -gt "$i0" ] && ok "IMDS: token, role and credentials were fetched" || not_ok "IMDS: credentials were fetched"
assert_eq "IMDS: the container endpoint was not asked" "$c0" "$(stat_of container)"
assert_eq "IMDS: apexops never sent a bad request (TTL header present)" "$bad0" "$(stat_of bad_request)"

# ---- a rotation mid-run -----------------------------------------------------------------------
# credentials that live 303 s, renewed by the double when fewer than 301 s
# are left, and by apexops 300 s ahead: after 3 s apexops must fetch again
# and gets new keys; part 2 of alice's ~12 MiB export is held 4 s
container_env
double POST /__double/config '{"ttl_s":303,"rotate_ahead_s":301,"rotate":true}' >/dev/null
front POST /__front/faults '[{"method":"PUT","match":"partNumber=2","delay_ms":4000,"count":1}]' >/dev/null
front DELETE /__front/requests >/dev/null
c0=$(stat_of container)
n0=$(stat_of issued)
export_ok "rotation" "$A"
read -r -a seen <<<"$(keys_seen)"
set -- "${seen[@]}"
[ "$#" -ge 2 ] && case "$*" in *S3RVER*) false ;; esac && ok "the export went on with the rotated keys ($# keys)" || not_ok "the export went on with the rotated keys" "$*"
[ "$(stat_of issued)" -ge $((n0 + 2)) ] && ok "the double issued new keys mid-run" || not_ok "the double issued new keys mid-run" "$(double GET /__double/stats)"
[ "$(stat_of container)" -ge $((c0 + 2)) ] && ok "apexops fetched again ($(($(stat_of container) - c0)) fetches)" || not_ok "apexops fetched again"
assert_eq "no request was refused" 0 "$(front GET /__front/requests | jq '[.[] | select(.status >= 400)] | length')"
ops privacy url "$R"
exp=$(echo "$OUT" | sed -n 's/.*X-Amz-Expires=\([0-9]*\).*/\1/p')
[ -n "$exp" ] && [ "$exp" -le 303 ] && ok "a presigned URL never outlives its credentials ($exp s)" || not_ok "a presigned URL never outlives its credentials" "$exp"
double POST /__double/config '{"ttl_s":3600,"rotate_ahead_s":0,"rotate":true}' >/dev/null

# ---- failures of the endpoint are retried ------------------------------------------------------
double POST /__double/config '{"fail":2,"fail_status":500,"fail_on":"container"}' >/dev/null
export_ok "two 500s of the endpoint" "$B"
assert_eq "both injected failures were met, then retried" "0 2" \
	"$(double POST /__double/config '{}' | jq .fail) $(stat_of injected)"
assert_contains "the retries were logged" "$(cat "$E2E_TMP/worker.log")" "http retry method=GET"
assert_not_contains "naming the endpoint, not the path that identifies the credentials" \
	"$(grep 'http retry' "$E2E_TMP/worker.log")" "/v1/credentials"

# ---- refused and absent endpoints ------------------------------------------------------------------
# nothing may reach S3: the front sees no request at all
front DELETE /__front/requests >/dev/null
printf 'not-the-token\n' >"$E2E_TMP/token"
ops privacy url "$RB"
[ "$RC" -ne 0 ] && ok "a refused token: privacy url fails ($RC)" || not_ok "a refused token: privacy url fails"
assert_contains "... naming the endpoint and its variable" "$ERR" "AWS_CONTAINER_CREDENTIALS_FULL_URI (http://127.0.0.1:$DPORT) refused"
assert_contains "... and what to check" "$ERR" "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
ops privacy export --tenant "$T1" --user "$B"
RX=$(rid)
worker
st=$(q "SELECT status || ' ' || coalesce(error, '') FROM apexops.privacy_requests WHERE id = ${RX:-0}")
case "$st" in completed*) not_ok "a refused token: the export does not complete" "$st" ;; *) ok "a refused token: the export does not complete" ;; esac
assert_contains "... and its error names the source" "$st" "AWS_CONTAINER_CREDENTIALS_FULL_URI"
q "DELETE FROM apexops.privacy_requests WHERE id = ${RX:-0}" >/dev/null
printf '%s\n' "$AUTH" >"$E2E_TMP/token"
export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/v1/credentials
ops privacy url "$RB"
[ "$RC" -ne 0 ] && ok "an absent container endpoint: privacy url fails ($RC)" || not_ok "an absent container endpoint: privacy url fails"
assert_contains "... naming it" "$ERR" "the container credentials endpoint AWS_CONTAINER_CREDENTIALS_FULL_URI (http://127.0.0.1:1) did not answer"
export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://10.1.2.3/v1/credentials
ops privacy url "$RB"
expect_rc 78 "plain http to a host that is not allowed is a configuration error"
assert_contains "... naming the variable and what is allowed" "$ERR" "only loopback"
imds_env
export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1
ops privacy url "$RB"
expect_rc 78 "no credentials anywhere, IMDS absent: exit 78"
assert_contains "... naming the IMDS endpoint" "$ERR" "the instance metadata service at http://127.0.0.1:1 did not answer"
assert_contains "... and what was tried before it" "$ERR" "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
double POST /__double/config '{"refuse":"imds"}' >/dev/null
export AWS_EC2_METADATA_SERVICE_ENDPOINT=$DBL
ops privacy url "$RB"
assert_contains "IMDS refusing the token: named with its answer" "$ERR" "answered HTTP 403 to the IMDSv2 token request"
double POST /__double/config '{"refuse":null}' >/dev/null
unset AWS_EC2_METADATA_SERVICE_ENDPOINT
export AWS_EC2_METADATA_DISABLED=true
ops privacy url "$RB"
expect_rc 78 "no source at all: exit 78"
assert_contains "... naming every source" "$ERR" "AWS_EC2_METADATA_DISABLED=true"
assert_eq "nothing reached S3 meanwhile" 0 "$(front GET /__front/requests | jq length)"

# ---- no secret in what apexops printed or logged --------------------------------------------------------
cat "$E2E_TMP/worker.log" >>"$LOGS"
leaks=0
while read -r secret; do
	[ -n "$secret" ] && grep -qF -- "$secret" "$LOGS" && leaks=$((leaks + 1))
done < <(double GET /__double/issued | jq -r '.[] | .SecretAccessKey, .Token'; echo "$AUTH")
[ -s "$LOGS" ] && ok "apexops's output and logs were collected ($(wc -l <"$LOGS") lines)" || not_ok "apexops's output and logs were collected"
assert_eq "no key, session token or authorization token in them" 0 "$leaks"

done_testing
