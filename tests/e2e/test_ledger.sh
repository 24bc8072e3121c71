#!/usr/bin/env bash
# The run ledger migration as an operator meets it on a database that has
# purge history: the old apexops.purge_runs rows are copied into
# apexops.job_runs as job usage-purge (once), purge_runs is kept, and
# reverting the migration drops only the ledger.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$ROOT/migrations/postgres"

url=$(empty_db ledger)
export DATABASE_URL=$url
run_ops migrate up --to 20251125_130000
expect_rc 0 "migrate up to the purge_runs migration"
sql "$url" "INSERT INTO apexops.purge_runs (status, mode, trigger, months,
	tz, today, cutoff, rows_planned, rows_deleted, finished_at, error)
	VALUES ('succeeded', 'execute', 'scheduled', 18, 'UTC', '2026-11-30',
	'2025-05-30 00:00+00', 1200, 1200, now(), NULL),
	('failed', 'dry-run', 'manual', 6, 'Europe/Berlin', '2026-11-30',
	'2026-05-29 22:00+00', 5, NULL, now(), 'boom')" >/dev/null
run_ops migrate up
expect_rc 0 "migrate up applies the ledger migration"
assert_eq "both purge runs are in the ledger, in order" \
	"usage-purge|scheduled|execute|succeeded|18|1200
usage-purge|manual|dry-run|failed|6|" \
	"$(sql "$url" "SELECT job, trigger, mode, status, params->>'months',
		counts->>'rows_deleted' FROM apexops.job_runs ORDER BY id")"
assert_eq "the error text is kept" "boom" \
	"$(sql "$url" "SELECT error FROM apexops.job_runs WHERE status = 'failed'")"
assert_eq "purge_runs is kept" 2 "$(sql "$url" "SELECT count(*) FROM apexops.purge_runs")"
# every migration from the ledger's on (later ones build on it)
n=$(find "$APEXOPS_MIGRATIONS_DIR" -name '*.up.sql' | sort | sed -n '/20261201_080000_job_runs/,$p' | wc -l)
run_ops migrate down "$n" --execute
expect_rc 0 "migrate down reverts the scheduler and the ledger"
assert_eq "the ledger is gone" "" "$(sql "$url" "SELECT to_regclass('apexops.job_runs')")"
assert_eq "purge_runs survives the revert" 2 "$(sql "$url" "SELECT count(*) FROM apexops.purge_runs")"
run_ops migrate up
expect_rc 0 "migrate up again"
assert_eq "copied once, not twice" 2 "$(sql "$url" "SELECT count(*) FROM apexops.job_runs")"
sql "$url" "INSERT INTO apexops.job_runs (job, trigger) VALUES ('bad job', 'manual')" >/dev/null 2>&1
assert_eq "a job name is checked" 2 "$(sql "$url" "SELECT count(*) FROM apexops.job_runs")"
sql "$url" "INSERT INTO apexops.job_runs (job, trigger, status) VALUES ('usage-purge', 'manual', 'succeeded')" >/dev/null 2>&1
assert_eq "a settled run needs finished_at" 2 "$(sql "$url" "SELECT count(*) FROM apexops.job_runs")"
done_testing
