# Helpers for end-to-end tests: each test file sources this, runs the real
# binary as an operator would, and prints TAP lines ("ok N - ..."). The
# runner (tests/run.sh) provides APEXOPS_BIN, OPS_TEST_ADMIN_URL,
# OPS_TEST_PGPORT and the migrated template database OPS_TEST_TEMPLATE.
set -u
: "${APEXOPS_BIN:?run through tests/run.sh}"
: "${E2E_TMP:=$(mktemp -d /tmp/e2e.XXXXXX)}"
TESTN=0
OUT="" ERR="" RC=0
# the repository root, before moving into the scratch directory
OPS_ROOT=${OPS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$E2E_TMP" || exit 1
# a test must never read the developer's .env or state
unset DATABASE_URL RETENTION_MONTHS USAGE_RETENTION_MONTHS CONFIRM STRIPE_SECRET_KEY APP_ENV NODE_ENV
# nor probe the AWS credential endpoints of the machine it runs on: a test
# that wants the container endpoint or IMDS points them at a double
unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI \
	AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \
	AWS_EC2_METADATA_SERVICE_ENDPOINT
export AWS_EC2_METADATA_DISABLED=true
export APEXOPS_HOME="$E2E_TMP/home"

ok() { TESTN=$((TESTN + 1)); echo "ok $TESTN - $*"; }
not_ok() {
	TESTN=$((TESTN + 1))
	echo "not ok $TESTN - $1"
	shift
	for l in "$@"; do printf '#   %s\n' "$l"; done
	printf '#   stdout: %s\n' "$(printf %s "$OUT" | tail -5 | tr '\n' '|')"
	printf '#   stderr: %s\n' "$(printf %s "$ERR" | tail -5 | tr '\n' '|')"
}

# new_db NAME: a fresh database cloned from the migrated template; prints its URL
new_db() {
	local name="e2e_$1_$$"
	psql -X -q "$OPS_TEST_ADMIN_URL" -c "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1
	psql -X -q "$OPS_TEST_ADMIN_URL" -c "CREATE DATABASE $name TEMPLATE ${OPS_TEST_TEMPLATE:-ops_tpl}" >/dev/null || return 1
	echo "postgresql://postgres@127.0.0.1:$OPS_TEST_PGPORT/$name"
}
# empty_db NAME: a fresh database with nothing in it
empty_db() {
	local name="e2e_$1_$$"
	psql -X -q "$OPS_TEST_ADMIN_URL" -c "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1
	psql -X -q "$OPS_TEST_ADMIN_URL" -c "CREATE DATABASE $name" >/dev/null || return 1
	echo "postgresql://postgres@127.0.0.1:$OPS_TEST_PGPORT/$name"
}

# run_ops ARGS...: runs the binary; sets OUT, ERR, RC
run_ops() {
	OUT=$("$APEXOPS_BIN" "$@" 2>"$E2E_TMP/stderr")
	RC=$?
	ERR=$(cat "$E2E_TMP/stderr")
}

# sql URL QUERY [ARGS...]: one value (psql -At)
sql() { psql -X -At -v ON_ERROR_STOP=1 "$1" -c "$2"; }

# wait_for URL SQL: until SQL answers 1, at most 30 s. Wait on conditions,
# not on time: a loaded machine stretches every step.
wait_for() {
	for _ in $(seq 1 300); do
		[ "$(sql "$1" "$2")" = 1 ] && return 0
		sleep 0.1
	done
	return 1
}

expect_rc() { # expect_rc CODE DESC
	if [ "$RC" -eq "$1" ]; then ok "$2"; else not_ok "$2" "expected exit $1, got $RC"; fi
}
assert_eq() { # assert_eq DESC EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $2" "actual:   $3"; fi
}
assert_contains() { # assert_contains DESC HAYSTACK NEEDLE
	case "$2" in *"$3"*) ok "$1" ;; *) not_ok "$1" "missing: $3" ;; esac
}
assert_not_contains() {
	case "$2" in *"$3"*) not_ok "$1" "unexpected: $3" ;; *) ok "$1" ;; esac
}
done_testing() { echo "1..$TESTN"; }

# s3_export_seed URL: the S3 export tests' tenant T1 with two users, A
# (alice, 40,000 usage events of about 250 bytes each: a multipart export)
# and B (bob, one); sets T1, A and B
s3_export_seed() {
	T1=11111111-1111-4111-8111-111111111111
	A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
	B=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
	sql "$1" "INSERT INTO publishers (id, company_name) VALUES ('$T1', 'Tenant One');
	  INSERT INTO users (id, publisher_id, email, password_hash) VALUES
	    ('$A', '$T1', 'alice@example.com', 'h'), ('$B', '$T1', 'bob@example.com', 'h');
	  INSERT INTO usage_events (customer_id, event_name, event_value, event_metadata)
	  SELECT '$A', 'impression', g, jsonb_build_object('pad', repeat('y', 250)) FROM generate_series(1, 40000) g;
	  INSERT INTO usage_events (customer_id, event_name, event_value) VALUES ('$B', 'b', 1)" >/dev/null
}
