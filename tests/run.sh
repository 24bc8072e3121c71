#!/usr/bin/env bash
# The test runner behind `make test`: starts its own PostgreSQL cluster and
# the npm peers, migrates a template database, then runs the unit tests
# (cmocka), the integration tests (cmocka against PostgreSQL), the end-to-end
# tests (the binary, as an operator runs it) and each fuzz target briefly.
# Every group prints TAP; the last line is "N passed, N failed, N skipped".
#   BUILD=build-asan FUZZ_BUILD=build-fuzz tests/run.sh [unit|integration|e2e|fuzz ...]
#
# Skips: a test may skip only for a reason outside the project, one that
# begins with a phrase of SKIP_ALLOWED below ("ok 3 # SKIP not root"). Any
# other skip counts as a failure: nothing scripts/install-deps.sh installs may
# be skipped. cmocka's skip() prints only the test's name, so a cmocka test
# prints its reason on the line before ("# skip: no IPv6") and then calls
# skip(). A program that prints "1..0 # SKIP reason" skipped as a whole.
#
# The unit and fuzz groups need no server: they run beside the integration
# and e2e groups (PARALLEL=0 runs everything in turn); each lane's output is
# kept together and printed when both have finished.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-$ROOT/build-asan}
FUZZ_BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
PARALLEL=${PARALLEL:-1}
groups=${*:-unit integration e2e fuzz}
# TESTS=glob runs only the matching test programs/files (e.g. TESTS='*purge*')
TESTS=${TESTS:-*}
export APEXOPS_BIN=$BUILD/apexops OPS_ROOT=$ROOT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=98}
export CMOCKA_MESSAGE_OUTPUT=TAP
LOGDIR=$(mktemp -d /tmp/apexops-tests.XXXXXX)
chmod 755 "$LOGDIR"
passed=0 failed=0 skipped=0 failures=() skips=()

# Reasons a test may skip for: the machine, not the project, lacks something.
# A reason must begin with one of these (case does not matter).
SKIP_ALLOWED=(
	"not root"
	"needs a normal user"
	"no IPv6"
)
INSTALL_HINT="install them with: scripts/install-deps.sh --test"

for g in $groups; do
	case $g in
	unit | integration | e2e | fuzz) ;;
	*) echo "unknown test group '$g'" >&2; exit 64 ;;
	esac
done

free_port() {
	local p=$1
	while (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done
	echo $p
}

PGTMP="" PEERS=""
cleanup() {
	[ -n "$PEERS" ] && [ -x tests/peers/down.sh ] && tests/peers/down.sh "$PEERS"
	[ -n "$PGTMP" ] && tests/peers/pg-down.sh "$PGTMP"
	rmdir "$LOGDIR" 2>/dev/null # nothing logged: stopped before any test
	return 0
}
trap cleanup EXIT

skip_allowed() {
	local r=${1,,} a
	r=${r#"${r%%[![:space:]]*}"}
	for a in "${SKIP_ALLOWED[@]}"; do
		[[ $r == "${a,,}"* ]] && return 0
	done
	return 1
}

# count TAP lines of one program's output: "ok", "not ok", and skips (either
# kind, "# SKIP" is a directive, not a result) checked against SKIP_ALLOWED;
# a non-zero exit without a "not ok" line (a crash, a sanitizer report)
# counts as one failure, and so does a program that ran no test
tally() {
	local name=$1 out=$2 rc=$3 p=0 f=0 nf=0 s=0 line prev="" reason plan_skip=""
	local re_skip='^(not )?ok[^#]*#[[:space:]]*[Ss][Kk][Ii][Pp]([^[:alnum:]](.*))?$'
	local re_plan_skip='^1\.\.0([^0-9].*)?$'
	local bad=()
	while IFS= read -r line || [ -n "$line" ]; do
		if [[ $line =~ $re_skip ]]; then
			reason=${BASH_REMATCH[3]}
			# cmocka's skip(): the reason is on the comment line above
			if [[ $prev =~ ^#[[:space:]]*skip:[[:space:]]*(.*)$ ]]; then
				reason="${BASH_REMATCH[1]} (${reason})"
			fi
			if skip_allowed "$reason"; then
				s=$((s + 1))
				skips+=("$name: $reason")
			else
				f=$((f + 1))
				failures+=("$name: skipped for a reason outside the allow-list in tests/run.sh: '$reason'")
			fi
		elif [[ $line == "not ok"* ]]; then
			f=$((f + 1)) nf=$((nf + 1))
			[ ${#bad[@]} -lt 5 ] && bad+=("$line")
		elif [[ $line == ok* ]]; then
			p=$((p + 1))
		elif [[ $line =~ $re_plan_skip ]]; then
			plan_skip=${BASH_REMATCH[1]}
			plan_skip=${plan_skip#*[Ss][Kk][Ii][Pp]}
		fi
		prev=$line
	done <"$out"
	if [ ${#bad[@]} -gt 0 ]; then
		failures+=("$name: $(printf '%s;' "${bad[@]}")")
	fi
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ] && [ -n "$plan_skip" ] && [ "$rc" -eq 0 ]; then
		if skip_allowed "$plan_skip"; then
			s=1
			skips+=("$name: $plan_skip")
		else
			f=1
			failures+=("$name: skipped for a reason outside the allow-list in tests/run.sh: '$plan_skip'")
		fi
	elif [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
		f=$((f + 1))
		failures+=("$name: exited $rc with no failing test line (crash or sanitizer report); see $out")
	elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then
		f=$((f + 1))
		failures+=("$name: ran no test")
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
}

# the npm peers and oracles come from scripts/install-deps.sh: their absence
# is a broken install, never a reason to skip the tests that use them
check_peers() {
	local d deps missing="" nm=${OPS_TEST_NODE_MODULES:-tests/peers/node_modules}
	command -v node >/dev/null || { echo "node is not installed; $INSTALL_HINT" >&2; exit 1; }
	if [ ! -d "$nm" ]; then
		echo "the npm test peers are not installed (no $nm); $INSTALL_HINT" >&2
		exit 1
	fi
	deps=$(node -e 'for (const d of Object.keys(require(process.argv[1]).dependencies)) console.log(d)' \
		"$ROOT/tests/peers/package.json") || { echo "cannot read tests/peers/package.json with node" >&2; exit 1; }
	for d in $deps; do
		[ -f "$nm/$d/package.json" ] || missing="$missing $d"
	done
	if [ -n "$missing" ]; then
		echo "npm test peers missing from $nm:$missing; $INSTALL_HINT" >&2
		exit 1
	fi
}

need_pg() {
	[ -n "$PGTMP" ] && return 0
	check_peers
	# a runner started by a test (tests/e2e/test_runner.sh) uses its
	# parent's servers, whose OPS_TEST_* variables it inherits
	if [ "${OPS_TEST_REUSE_SERVERS:-0}" = 1 ] && [ -n "${OPS_TEST_ADMIN_URL:-}" ]; then
		return 0
	fi
	# other runs on the machine race for ports: a port found free may be
	# taken before the server binds it, so try a few, from a random start
	local try
	for try in 1 2 3 4 5; do
		PGPORT=$(free_port $((55432 + RANDOM % 2000)))
		PGTMP=$(PGPORT=$PGPORT tests/peers/pg-up.sh) && break
		PGTMP=""
	done
	[ -n "$PGTMP" ] || { echo "cannot start PostgreSQL (5 tries; see /tmp/apexops-pgtest.*/server.log)" >&2; exit 1; }
	export OPS_TEST_PGPORT=$PGPORT OPS_TEST_PGHOST=127.0.0.1 OPS_TEST_PGDIR=$PGTMP
	export OPS_TEST_ADMIN_URL="postgresql://postgres@127.0.0.1:$PGPORT/postgres"
	export OPS_TEST_TEMPLATE=ops_tpl
	psql -X -q "$OPS_TEST_ADMIN_URL" -c "CREATE DATABASE ops_tpl" >/dev/null
	if ! DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/ops_tpl" \
		"$APEXOPS_BIN" migrate up >"$LOGDIR/template-migrate.log" 2>&1; then
		echo "migrating the template database failed:" >&2
		cat "$LOGDIR/template-migrate.log" >&2
		exit 1
	fi
	if ! PEERS=$(tests/peers/up.sh); then
		PEERS=""
		echo "cannot start the npm test peers (see the message above); if a module is missing, $INSTALL_HINT" >&2
		exit 1
	fi
	# shellcheck disable=SC1091
	. "$PEERS/env"
}

run_group() {
	local g=$1 t n rc corpus work
	case $g in
	unit | integration)
		for t in "$BUILD"/tests/$g/*; do
			[ -x "$t" ] || continue
			n=$(basename "$t")
			# shellcheck disable=SC2053
			[[ $n == $TESTS ]] || continue
			echo "# $g/$n"
			"$t" >"$LOGDIR/$n.out" 2>"$LOGDIR/$n.err"
			rc=$?
			grep -E '^(not )?ok ' "$LOGDIR/$n.out" | sed 's/^/  /'
			tally "$g/$n" "$LOGDIR/$n.out" $rc
			[ $rc -ne 0 ] && tail -20 "$LOGDIR/$n.err" | sed 's/^/  # /'
		done
		;;
	e2e)
		for t in tests/e2e/test_*.sh; do
			n=$(basename "$t" .sh)
			# shellcheck disable=SC2053
			[[ $n == $TESTS ]] || continue
			echo "# e2e/$n"
			E2E_TMP=$(mktemp -d "$LOGDIR/$n.XXXX") bash "$t" >"$LOGDIR/$n.out" 2>"$LOGDIR/$n.err"
			rc=$?
			grep -E '^(not )?ok |^#   ' "$LOGDIR/$n.out" | sed 's/^/  /'
			tally "e2e/$n" "$LOGDIR/$n.out" $rc
			[ $rc -ne 0 ] && tail -20 "$LOGDIR/$n.err" | sed 's/^/  # /'
		done
		;;
	fuzz)
		for t in "$FUZZ_BUILD"/fuzz_*; do
			[ -x "$t" ] || continue
			n=$(basename "$t")
			# shellcheck disable=SC2053
			[[ $n == $TESTS ]] || continue
			corpus=tests/fuzz/corpus/${n#fuzz_}
			work="$LOGDIR/corpus-$n"
			mkdir -p "$work"
			[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
			echo "# fuzz/$n (${FUZZ_SECONDS}s)"
			if "$t" -max_total_time="$FUZZ_SECONDS" -timeout=5 -rss_limit_mb=2048 -artifact_prefix="$LOGDIR/$n-" \
				"$work" >"$LOGDIR/$n.log" 2>&1; then
				echo "ok - $n ran ${FUZZ_SECONDS}s without a finding" | tee -a "$LOGDIR/$n.tap" | sed 's/^/  /'
			else
				echo "not ok - $n found a crash; see $LOGDIR/$n.log" | tee -a "$LOGDIR/$n.tap" | sed 's/^/  /'
				tail -30 "$LOGDIR/$n.log" | sed 's/^/  # /'
			fi
			tally "fuzz/$n" "$LOGDIR/$n.tap" 0
		done
		;;
	esac
}

# run_lane NAME GROUPS...: the groups in turn, output and counts to files
run_lane() {
	local lane=$1 g
	shift
	for g in "$@"; do
		run_group "$g"
	done >"$LOGDIR/lane-$lane.log" 2>&1
	echo "$passed $failed $skipped" >"$LOGDIR/lane-$lane.counts"
	[ ${#failures[@]} -gt 0 ] && printf '%s\n' "${failures[@]}" >"$LOGDIR/lane-$lane.failures"
	[ ${#skips[@]} -gt 0 ] && printf '%s\n' "${skips[@]}" >"$LOGDIR/lane-$lane.skips"
	return 0
}

lane_a=() lane_b=()
for g in $groups; do
	case $g in
	unit | fuzz) lane_a+=("$g") ;;
	*) lane_b+=("$g") ;;
	esac
done
[ ${#lane_b[@]} -gt 0 ] && need_pg

if [ "$PARALLEL" != 0 ] && [ ${#lane_a[@]} -gt 0 ] && [ ${#lane_b[@]} -gt 0 ]; then
	(run_lane a "${lane_a[@]}") &
	pid_a=$!
	(run_lane b "${lane_b[@]}") &
	pid_b=$!
	wait $pid_a
	wait $pid_b
	for lane in a b; do
		cat "$LOGDIR/lane-$lane.log"
		if [ ! -f "$LOGDIR/lane-$lane.counts" ]; then
			failed=$((failed + 1))
			failures+=("lane $lane: stopped before it finished; see $LOGDIR/lane-$lane.log")
			continue
		fi
		read -r p f s <"$LOGDIR/lane-$lane.counts"
		passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
		[ -f "$LOGDIR/lane-$lane.failures" ] && mapfile -t -O ${#failures[@]} failures <"$LOGDIR/lane-$lane.failures"
		[ -f "$LOGDIR/lane-$lane.skips" ] && mapfile -t -O ${#skips[@]} skips <"$LOGDIR/lane-$lane.skips"
	done
else
	for g in $groups; do
		run_group "$g"
	done
fi

if [ $((passed + failed + skipped)) -eq 0 ]; then
	failed=1
	failures+=("no test ran: nothing matched TESTS='$TESTS' in the groups '$groups' (is $BUILD built?)")
fi

echo
if [ ${#skips[@]} -gt 0 ]; then
	echo "skipped (allowed reasons):"
	printf '  %s\n' "${skips[@]}"
fi
if [ ${#failures[@]} -gt 0 ]; then
	echo "failures:"
	printf '  %s\n' "${failures[@]}"
fi
echo "logs: $LOGDIR"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
