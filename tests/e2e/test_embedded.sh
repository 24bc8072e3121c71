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
APEXOPS_HOME=$H run_ops db start --bogus
expect_rc 64 "db with an unknown option exits 64"
assert_contains "naming it" "$ERR" "unknown option '--bogus'"
APEXOPS_HOME="$E2E_TMP/never-started" run_ops db stop
expect_rc 1 "db stop on a home without a cluster exits 1"
assert_contains "saying there is no cluster there" "$ERR" "no embedded cluster under"
assert_not_contains "not that it stopped one" "$OUT" "stopped"

# ---- a home that lost its record of the cluster finds the cluster's port
# (a home deleted and made again at the same path finds, as root, the old
# cluster under /var/tmp: it came up on port 0 and every command failed)
port_of() { sed -n 's/.*[?&]port=\([0-9]*\).*/\1/p' | head -1; }
APEXOPS_HOME=$H run_ops db url
p0=$(printf '%s\n' "$OUT" | port_of)
rm -f "$H/cluster.conf"
APEXOPS_HOME=$H run_ops db start
expect_rc 0 "db start on a running cluster whose record was lost exits 0"
assert_eq "and finds its port" "$p0" "$(printf '%s\n' "$OUT" | port_of)"
APEXOPS_HOME=$H run_ops db url
assert_eq "its url answers SELECT 1" 1 "$(psql -X -At "$OUT" -c 'SELECT 1' 2>/dev/null)"
APEXOPS_HOME=$H run_ops db stop
rm -f "$H/cluster.conf"
APEXOPS_HOME=$H run_ops db start
expect_rc 0 "db start on a stopped cluster whose record was lost exits 0"
APEXOPS_HOME=$H run_ops db url
assert_not_contains "its url has a real port" "$OUT" "port=0"
assert_eq "and answers SELECT 1" 1 "$(psql -X -At "$OUT" -c 'SELECT 1' 2>/dev/null)"

# ---- a directory apexops did not create is never adopted -------------------
# The cluster directory's name can be computed by anyone (a hash of
# APEXOPS_HOME). A local user who makes it first, with run/ a symbolic link
# to a root-owned file, must not get that file chowned to postgres.
base_of() { # base_of HOME [runuser args]: the cluster directory db status names
	sed -n 's|^data: *||p' <<<"$1" | sed 's|/data$||'
}
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	HA="$E2E_TMP/home-attacked"
	APEXOPS_HOME=$HA run_ops db status
	base=$(base_of "$OUT")
	target="$E2E_TMP/root-owned-file"
	echo "root's" >"$target"
	chmod 0600 "$target"
	rm -rf "$base"
	runuser -u nobody -- mkdir -m 0755 "$base"
	runuser -u nobody -- ln -s "$target" "$base/run"
	APEXOPS_HOME=$HA run_ops db start
	if [ "$RC" -ne 0 ]; then ok "as root: db start refuses a directory another user made"; else not_ok "as root: db start refuses a directory another user made" "exit 0"; fi
	assert_contains "naming the path" "$ERR" "'$base'"
	assert_eq "the link's target keeps its owner and mode" "root 600" "$(stat -c '%U %a' "$target")"
	assert_eq "the directory keeps its owner and mode" "nobody 755" "$(stat -c '%U %a' "$base")"
	assert_eq "run/ is still the user's link" "$target" "$(readlink "$base/run")"
	rm -rf "$base"
	# a directory of ours whose run/ became a link is refused too
	mkdir -m 0700 "$base"
	chown postgres "$base"
	ln -s "$target" "$base/run"
	APEXOPS_HOME=$HA run_ops db start
	if [ "$RC" -ne 0 ]; then ok "as root: db start refuses run/ as a symbolic link"; else not_ok "as root: db start refuses run/ as a symbolic link" "exit 0"; fi
	assert_contains "naming it" "$ERR" "'$base/run'"
	assert_eq "and leaves the target alone" "root 600" "$(stat -c '%U %a' "$target")"
	rm -rf "$base"
else
	ok "# SKIP not root: the pre-created directory attack needs root"
fi

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
	# a normal user whose APEXOPS_HOME is long gets its cluster in
	# /var/tmp, where another user (here root) may have made the directory
	long="$H2/a-home-whose-path-is-long-enough-to-move-the-cluster-to-var-tmp"
	mkdir -p "$long"
	chown nobody "$long"
	OUT=$(cd /tmp && runuser -u nobody -- env APEXOPS_HOME="$long" ASAN_OPTIONS="$ASAN_OPTIONS" \
		"$H2/bin/apexops" db status 2>&1)
	base=$(base_of "$OUT")
	case "$base" in /var/tmp/apexops-*) ok "a long APEXOPS_HOME puts the cluster in /var/tmp" ;;
	*) not_ok "a long APEXOPS_HOME puts the cluster in /var/tmp" "base: $base" ;; esac
	victim="$H2/victim-file"
	echo "nobody's" >"$victim"
	chown nobody "$victim"
	chmod 0600 "$victim"
	rm -rf "$base"
	mkdir -m 0777 "$base"
	ln -s "$victim" "$base/run"
	ERR=$(cd /tmp && runuser -u nobody -- env APEXOPS_HOME="$long" ASAN_OPTIONS="$ASAN_OPTIONS" \
		"$H2/bin/apexops" db start 2>&1)
	rc=$?
	if [ "$rc" -ne 0 ]; then ok "as a normal user: db start refuses a directory another user made"; else not_ok "as a normal user: db start refuses a directory another user made" "exit 0"; fi
	assert_contains "naming the path" "$ERR" "'$base'"
	assert_eq "the link's target is unchanged" "nobody 600" "$(stat -c '%U %a' "$victim")"
	assert_eq "the directory is unchanged" "root 777" "$(stat -c '%U %a' "$base")"
	rm -rf "$base"
fi
done_testing
