#!/usr/bin/env bash
# Differential check of the cron expressions (src/jobs/cron_expr.c) against
# the npm package cron-parser: thousands of random expressions (a fixed seed,
# printed; CRON_DIFF_SEED picks another), seven zones, starting instants on
# DST transition days; tests/peers/cron-diff.js says where the two are known
# to differ and leaves only those cases out. The C side is the driver
# tests/tools/cron_next, built beside the tests.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

DRIVER=$(dirname "$APEXOPS_BIN")/tests/tools/cron_next
if [ ! -x "$DRIVER" ]; then
	not_ok "the driver $DRIVER is built (cmake --build)"
	done_testing
	exit 0
fi
node "$OPS_ROOT/tests/peers/cron-diff.js" "$DRIVER" >"$E2E_TMP/diff.out" 2>&1
rc=$?
grep '^# ' "$E2E_TMP/diff.out" | head -12
S=$(grep '^summary ' "$E2E_TMP/diff.out" | tail -1)
echo "# $S"
field() { printf '%s\n' "$S" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
if [ "$rc" -eq 0 ] && [ "$(field mismatches)" = 0 ]; then
	ok "cron_next agrees with cron-parser on every case compared"
else
	not_ok "cron_next differs from cron-parser (node exited $rc)" \
		"$(grep -A2 -E '^(MISMATCH|not ok)' "$E2E_TMP/diff.out" | head -30)" \
		"$(tail -3 "$E2E_TMP/diff.out")"
fi
# the comparison must not pass by comparing nothing
n=$(field cases)
if [ "${n:-0}" -ge 10000 ]; then ok "at least 10000 cases ($n)"; else not_ok "too few cases: ${n:-none}"; fi
n=$(field compared)
if [ "${n:-0}" -ge 50000 ]; then ok "at least 50000 fire times compared ($n)"; else not_ok "too few fire times compared: ${n:-none}"; fi
n=$(field dst_day)
if [ "${n:-0}" -ge 2000 ]; then ok "at least 2000 of them within a day of a DST change ($n)"; else not_ok "too few compared on DST days: ${n:-none}"; fi
n=$(field accepted)
if [ "${n:-0}" -ge 10000 ]; then ok "at least 10000 expressions accepted by both ($n)"; else not_ok "too few accepted by both: ${n:-none}"; fi
assert_eq "the duplicate-value difference is only that" 5 "$(field duplicates)"
done_testing
