#!/usr/bin/env bash
# The test runner behind `make test`: starts its own PostgreSQL cluster and
# the npm peers, migrates a template database, then runs the unit tests
# (cmocka), the integration tests (cmocka against PostgreSQL), the end-to-end
# tests (the binary, as an operator runs it) and each fuzz target briefly.
# Every group prints TAP; the last line is "N passed, N failed".
#   BUILD=build-asan FUZZ_BUILD=build-fuzz tests/run.sh [unit|integration|e2e|fuzz ...]
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-$ROOT/build-asan}
FUZZ_BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
groups=${*:-unit integration e2e fuzz}
# TESTS=glob runs only the matching test programs/files (e.g. TESTS='*purge*')
TESTS=${TESTS:-*}
export APEXOPS_BIN=$BUILD/apexops OPS_ROOT=$ROOT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=98}
export CMOCKA_MESSAGE_OUTPUT=TAP
LOGDIR=$(mktemp -d /tmp/apexops-tests.XXXXXX)
chmod 755 "$LOGDIR"
passed=0 failed=0 failures=()

free_port() {
	local p=$1
	while (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done
	echo $p
}

PGTMP="" PEERS=""
cleanup() {
	[ -n "$PEERS" ] && [ -x tests/peers/down.sh ] && tests/peers/down.sh "$PEERS"
	[ -n "$PGTMP" ] && tests/peers/pg-down.sh "$PGTMP"
}
trap cleanup EXIT

# count TAP lines of one program's output; a non-zero exit without a
# "not ok" line (a crash, a sanitizer report) counts as one failure
tally() {
	local name=$1 out=$2 rc=$3 p f
	p=$(grep -cE '^ok ' "$out")
	f=$(grep -cE '^not ok ' "$out")
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -gt 0 ]; then
		failures+=("$name: $(grep -E '^not ok ' "$out" | head -5 | tr '\n' ';')")
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		failed=$((failed + 1))
		failures+=("$name: exited $rc with no failing test line (crash or sanitizer report); see $out")
	fi
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$rc" -eq 0 ]; then
		failed=$((failed + 1))
		failures+=("$name: ran no test")
	fi
}

need_pg() {
	[ -n "$PGTMP" ] && return 0
	PGPORT=$(free_port 55432)
	PGTMP=$(PGPORT=$PGPORT tests/peers/pg-up.sh) || { echo "cannot start PostgreSQL" >&2; exit 1; }
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
	if [ -x tests/peers/up.sh ] && [ -d tests/peers/node_modules ]; then
		PEERS=$(tests/peers/up.sh) || { echo "cannot start the npm peers" >&2; exit 1; }
		# shellcheck disable=SC1091
		[ -f "$PEERS/env" ] && . "$PEERS/env"
	fi
}

for g in $groups; do
	case $g in
	unit | integration)
		[ "$g" = integration ] && need_pg
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
		need_pg
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
	*) echo "unknown test group '$g'" >&2; exit 64 ;;
	esac
done

echo
if [ ${#failures[@]} -gt 0 ]; then
	echo "failures:"
	printf '  %s\n' "${failures[@]}"
fi
echo "logs: $LOGDIR"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
