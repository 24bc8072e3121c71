#!/usr/bin/env bash
# The runner itself (tests/run.sh): fake test programs print TAP (a pass, a
# fail, skips with allowed and disallowed reasons, a crash after a passing
# line, a program that ran no test); check the closing counts line, the exit
# code and that a refused skip names the program and its reason.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

FAKE=$E2E_TMP/fake
mkdir -p "$FAKE/tests/unit" "$FAKE/tests/integration"
# fake NAME GROUP BODY: an executable script printing BODY's TAP
fake() {
	printf '#!/bin/sh\n%s\n' "$3" >"$FAKE/tests/$2/$1"
	chmod +x "$FAKE/tests/$2/$1"
}
fake t_pass unit "printf '1..1\nok 1 - works\n'"
fake t_fail unit "printf '1..1\nnot ok 1 - broken\n'; exit 1"
fake t_skip_tap unit "printf '1..2\nok 1 - first\nok 2 # SKIP not root: runuser needs root\n'"
fake t_skip_cmocka unit "printf '1..1\n# skip: no IPv6 on this machine\nnot ok 1 # SKIP test_v6\n'"
fake t_skip_plan unit "printf '1..0 # SKIP needs a normal user\n'"
fake t_bad_skip_tap unit "printf '1..1\nok 1 # SKIP OPS_TEST_STRIPE_DOUBLE_URL unset\n'"
fake t_bad_skip_cmocka unit "printf '1..1\nnot ok 1 # SKIP test_peer\n'"
fake t_bad_skip_plan unit "printf '1..0 # SKIP node not installed\n'"
fake t_bad_skip_empty unit "printf '1..1\nok 1 - a # skip\n'"
fake t_crash unit "printf '1..2\nok 1 - first\n'; kill -SEGV \$\$"
fake t_nothing unit "exit 0"
fake t_int_fail integration "printf '1..2\nnot ok 1 - int broken\nok 2 # SKIP no IPv6\n'; exit 1"

# runner TESTS GROUPS...: sets OUT (its output), RC, LAST (its last line)
runner() {
	local glob=$1
	shift
	OUT=$(BUILD=$FAKE FUZZ_BUILD=$FAKE/none TESTS=$glob OPS_TEST_REUSE_SERVERS=1 \
		bash "$OPS_ROOT/tests/run.sh" "$@" 2>&1)
	RC=$?
	LAST=$(printf '%s\n' "$OUT" | tail -1)
	forget_logs
}
# the runner keeps its logs for people; these are of no use
forget_logs() {
	local d
	d=$(printf '%s\n' "$OUT" | sed -n 's|^logs: \(/tmp/apexops-tests\.[A-Za-z0-9]*\)$|\1|p')
	[ -n "$d" ] && rm -rf "$d"
	return 0
}
# check GLOB EXPECTED_LAST_LINE EXPECTED_RC
check() {
	runner "$1" unit
	assert_eq "$1: counts" "$2" "$LAST"
	expect_rc "$3" "$1: exit $3"
}

check t_pass "1 passed, 0 failed, 0 skipped" 0
check t_fail "0 passed, 1 failed, 0 skipped" 1
check t_skip_tap "1 passed, 0 failed, 1 skipped" 0
assert_contains "an allowed skip is listed with its reason" "$OUT" "unit/t_skip_tap: not root: runuser needs root"
check t_skip_cmocka "0 passed, 0 failed, 1 skipped" 0
assert_contains "a cmocka skip takes its reason from the line above" "$OUT" "unit/t_skip_cmocka: no IPv6 on this machine (test_v6)"
check t_skip_plan "0 passed, 0 failed, 1 skipped" 0
check t_bad_skip_tap "0 passed, 1 failed, 0 skipped" 1
assert_contains "a refused skip names the program and the reason" "$OUT" \
	"unit/t_bad_skip_tap: skipped for a reason outside the allow-list in tests/run.sh: 'OPS_TEST_STRIPE_DOUBLE_URL unset'"
check t_bad_skip_cmocka "0 passed, 1 failed, 0 skipped" 1
check t_bad_skip_plan "0 passed, 1 failed, 0 skipped" 1
check t_bad_skip_empty "0 passed, 1 failed, 0 skipped" 1
check t_crash "1 passed, 1 failed, 0 skipped" 1
assert_contains "a crash is reported with its exit status" "$OUT" "unit/t_crash: exited 139 with no failing test line"
check t_nothing "0 passed, 1 failed, 0 skipped" 1
assert_contains "a program without tests is reported" "$OUT" "unit/t_nothing: ran no test"

runner 't_*' unit
assert_eq "all fakes: counts add up" "3 passed, 7 failed, 3 skipped" "$LAST"
expect_rc 1 "all fakes: exit 1"

# unit beside integration (two lanes): counts of both, each group's lines together
runner 't_pass' unit integration
assert_eq "one lane alone" "1 passed, 0 failed, 0 skipped" "$LAST"
runner 't_[pi]*' unit integration
assert_eq "two lanes: counts of both" "1 passed, 1 failed, 1 skipped" "$LAST"
expect_rc 1 "two lanes: exit 1"
assert_eq "two lanes: each group's output together, unit first" \
	"# unit/t_pass|  ok 1 - works|# integration/t_int_fail|  not ok 1 - int broken|  ok 2 # SKIP no IPv6" \
	"$(printf '%s\n' "$OUT" | grep -E '^# (unit|integration)/|^  (not )?ok' | tr '\n' '|' | sed 's/|$//')"
assert_contains "two lanes: the failure is listed" "$OUT" "integration/t_int_fail: not ok 1 - int broken;"
PARALLEL=0 runner 't_[pi]*' unit integration
assert_eq "in turn: the same counts" "1 passed, 1 failed, 1 skipped" "$LAST"

# the npm peers come from scripts/install-deps.sh: missing, they fail the run
mkdir -p "$E2E_TMP/nm/stripe"
echo '{}' >"$E2E_TMP/nm/stripe/package.json"
OUT=$(BUILD=$FAKE TESTS=t_pass OPS_TEST_NODE_MODULES=$E2E_TMP/nm bash "$OPS_ROOT/tests/run.sh" integration 2>&1)
RC=$?
forget_logs
expect_rc 1 "peers partly installed: exit 1"
assert_contains "peers partly installed: names the missing ones and the fix" "$OUT" \
	"npm test peers missing from $E2E_TMP/nm: @aws-sdk/client-s3"
assert_contains "peers partly installed: says how to install them" "$OUT" "install them with: scripts/install-deps.sh --test"
OUT=$(BUILD=$FAKE TESTS=t_pass OPS_TEST_NODE_MODULES=$E2E_TMP/none bash "$OPS_ROOT/tests/run.sh" e2e 2>&1)
RC=$?
forget_logs
expect_rc 1 "peers not installed: exit 1"
assert_contains "peers not installed: says so and how to install them" "$OUT" \
	"the npm test peers are not installed (no $E2E_TMP/none); install them with: scripts/install-deps.sh --test"

# a peer that does not start fails the run too (a node that runs only -e)
mkdir -p "$E2E_TMP/bin"
ln -sf "$APEXOPS_BIN" "$FAKE/apexops" # migrates the runner's template database
cat >"$E2E_TMP/bin/node" <<SH
#!/bin/sh
[ "\$1" = -e ] && exec $(command -v node) "\$@"
echo "fake node: cannot start \$1" >&2
exit 1
SH
chmod +x "$E2E_TMP/bin/node"
OUT=$(PATH=$E2E_TMP/bin:$PATH BUILD=$FAKE TESTS=t_int_fail bash "$OPS_ROOT/tests/run.sh" integration 2>&1)
RC=$?
forget_logs
expect_rc 1 "a peer that does not start: exit 1"
assert_contains "a peer that does not start: says which" "$OUT" "peer stripe-mock did not start"
assert_contains "a peer that does not start: says how to install the peers" "$OUT" \
	"cannot start the npm test peers (see the message above); if a module is missing, install them with: scripts/install-deps.sh --test"
assert_not_contains "a peer that does not start: no test ran" "$OUT" "int broken"

# nothing selected at all is a failure of the run, not a green one
runner 'no_such_test' unit
assert_eq "no program selected: counts one failure" "0 passed, 1 failed, 0 skipped" "$LAST"
expect_rc 1 "no program selected: exit 1"
assert_contains "no program selected: says so" "$OUT" "no test ran: nothing matched TESTS='no_such_test'"
done_testing
