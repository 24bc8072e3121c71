#!/usr/bin/env bash
# End-to-end: the systemd units in deploy/ are valid units (systemd-analyze
# verify, with ExecStart pointed at the binary under test), run what the
# runbook says, and give the daemons that write local files a writable
# working directory under ProtectSystem=strict.
. "$(dirname "$0")/lib.sh"

D="$OPS_ROOT/deploy"
if ! command -v systemd-analyze >/dev/null; then
	not_ok "systemd-analyze is installed (scripts/install-deps.sh --test installs systemd)"
	done_testing
	exit 0
fi
mkdir "$E2E_TMP/units"
for f in "$D"/*.service "$D"/*.timer; do
	n=$(basename "$f")
	sed "s#/usr/local/bin/apexops#$APEXOPS_BIN#g" "$f" >"$E2E_TMP/units/$n"
done
for f in "$E2E_TMP"/units/*; do
	n=$(basename "$f")
	# verify checks every directive and that ExecStart's binary exists;
	# it does not need the unit installed, nor systemd running
	out=$(cd "$E2E_TMP/units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "./$n" 2>&1)
	if [ -z "$out" ]; then ok "$n: systemd-analyze verify finds nothing"; else not_ok "$n: systemd-analyze verify finds nothing" "$out"; fi
done
unit_val() { sed -n "s/^$2=//p" "$D/$1"; }
assert_eq "the worker unit runs the worker" "/usr/local/bin/apexops worker" "$(unit_val apexops-worker.service ExecStart)"
assert_eq "the scheduler unit runs the scheduler" "/usr/local/bin/apexops cron" "$(unit_val apexops-cron.service ExecStart)"
# the timer (for hosts without the scheduler) fires when the scheduler's
# default usage-purge slot does: 02:30 UTC
sched=$("$APEXOPS_BIN" cron list --json | python3 -c 'import json, sys
print(next(j["effective_schedule"] for j in json.load(sys.stdin) if j["job"] == "usage-purge"))')
assert_eq "the purge timer fires at the scheduler's default slot, 02:30 UTC" \
	"*-*-* 02:30:00 UTC|30 2 * * *|UTC" \
	"$(unit_val apexops-purge.timer OnCalendar)|$sched|$("$APEXOPS_BIN" config | awk '$1 == "CRON_TZ" { print $2 }')"
for u in apexops-worker.service apexops-cron.service; do
	# privacy exports (worker) and their expiry (scheduler) write and
	# delete under ./logs/exports: the working directory must be the
	# state directory, the one place ProtectSystem=strict leaves writable
	assert_eq "$u: a strict file system sandbox" "strict" "$(unit_val $u ProtectSystem)"
	assert_eq "$u: its working directory is its state directory" \
		"/var/lib/$(unit_val $u StateDirectory)" "$(unit_val $u WorkingDirectory)"
	assert_eq "$u: stops on SIGTERM, with time for the grace period" "SIGTERM 100" \
		"$(unit_val $u KillSignal) $(unit_val $u TimeoutStopSec)"
done
# the grace the units allow covers the daemons' default grace (60 s) and
# the 30 s after the stop flag
grace=$("$APEXOPS_BIN" config | awk '$1 == "APEXOPS_WORKER_GRACE_S" { print $2 }')
assert_eq "APEXOPS_WORKER_GRACE_S defaults to what the unit's comment says" 60 "$grace"
done_testing
