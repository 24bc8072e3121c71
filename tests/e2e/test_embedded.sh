#!/usr/bin/env bash
# End-to-end: the embedded cluster (DATABASE_URL unset), as the invoking
# user and, when the tests run as root, as an unprivileged user too.
. "$(dirname "$0")/lib.sh"

# stop the cluster and remove its data (root keeps it under /var/tmp)
stop_home() {
	local base
	APEXOPS_HOME=$1 "$APEXOPS_BIN" db stop >/dev/null 2>&1
	base=$(sed -n 's/^base=//p' "$1/cluster.conf" 2>/dev/null)
	case "$base" in /var/tmp/apexops-* | "$1"/*) rm -rf "$base" ;; esac
}

H="$E2E_TMP/home-self"
cleanup() {
	stop_home "$H"
	if [ -n "${H2:-}" ]; then
		(cd /tmp && runuser -u nobody -- env APEXOPS_HOME="$H2/home" \
			"$APEXOPS_BIN" db stop >/dev/null 2>&1)
		rm -rf "$H2"
	fi
}
trap cleanup EXIT
APEXOPS_HOME=$H run_ops db status
expect_rc 3 "db status before start exits 3 (not running)"
APEXOPS_HOME=$H run_ops db start
expect_rc 0 "db start exits 0"
assert_contains "db start prints the url" "$OUT" "postgresql://apexops@/apexops?host="
APEXOPS_HOME=$H run_ops db start
expect_rc 0 "db start again is a no-op"
APEXOPS_HOME=$H run_ops db status
expect_rc 0 "db status exits 0 when running"
assert_contains "db status says running" "$OUT" "running:     yes"
APEXOPS_HOME=$H run_ops db url
url=$OUT
assert_eq "db url answers SELECT 1" 1 "$(psql -X -At "$url" -c 'SELECT 1' 2>/dev/null)"
APEXOPS_HOME=$H run_ops migrate up
expect_rc 0 "migrate up without DATABASE_URL uses the embedded cluster"
n=$(printf '%s\n' "$ERR" | grep -c 'DATABASE_URL is unset: using the embedded cluster')
assert_eq "and says so in one line" 1 "$n"
APEXOPS_HOME=$H run_ops status
expect_rc 0 "status on the embedded cluster exits 0"
assert_contains "status names the embedded cluster" "$OUT" "(embedded cluster)"
APEXOPS_HOME=$H run_ops db stop
expect_rc 0 "db stop exits 0"
APEXOPS_HOME=$H run_ops db status
expect_rc 3 "db status after stop exits 3"
APEXOPS_HOME=$H run_ops migrate status
expect_rc 0 "a command restarts a stopped embedded cluster"
APEXOPS_HOME=$H run_ops db bogus
expect_rc 64 "db with an unknown subcommand exits 64"

# as a normal user: a copy of the binary and the migrations in a directory
# the user owns, so a checkout closed to others (/root/...) is no reason to
# skip; only the machine's own limits are (see SKIP_ALLOWED in tests/run.sh)
if [ "$(id -u)" != 0 ]; then
	ok "# SKIP not root: only root can run the binary as another user (runuser)"
elif ! id nobody >/dev/null 2>&1; then
	ok "# SKIP needs a normal user: this machine has no user 'nobody'"
else
	H2=$(mktemp -d /tmp/apexops-nobody.XXXXXX)
	chmod 755 "$H2"
	mkdir -p "$H2/bin" "$H2/migrations"
	cp "$APEXOPS_BIN" "$H2/bin/apexops"
	cp -r "$OPS_ROOT/migrations/postgres" "$H2/migrations/"
	chown -R nobody "$H2"
	OUT=$(cd /tmp && runuser -u nobody -- env APEXOPS_HOME="$H2/home" ASAN_OPTIONS="$ASAN_OPTIONS" \
		"$H2/bin/apexops" migrate up 2>&1)
	rc=$?
	assert_eq "as a normal user (nobody): migrate up on the embedded cluster" 0 "$rc"
	owner=$(stat -c %U "$H2/home/pg/data" 2>/dev/null)
	assert_eq "the normal user's cluster lives in its APEXOPS_HOME, owned by it" nobody "$owner"
	(cd /tmp && runuser -u nobody -- env APEXOPS_HOME="$H2/home" ASAN_OPTIONS="$ASAN_OPTIONS" \
		"$H2/bin/apexops" db stop >/dev/null 2>&1)
fi
done_testing
