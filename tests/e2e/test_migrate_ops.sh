#!/usr/bin/env bash
# End-to-end: migrate as an operator meets it. Previews change nothing;
# migrations run without the session's statement timeout (lock timeout
# kept); a database ahead of the binary is named, not "up to date"; count
# and option mistakes say what is allowed.
. "$(dirname "$0")/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$OPS_ROOT/migrations/postgres"

mig() { # mig URL ARGS...: apexops migrate against URL; sets OUT, ERR, RC
	local url=$1
	shift
	DATABASE_URL=$url run_ops migrate "$@"
}
has_schema() { sql "$1" "SELECT count(*) FROM pg_namespace WHERE nspname = 'apexops'"; }

# ---- previews --------------------------------------------------------------
url=$(empty_db mig_preview) || exit 1
mig "$url" up --dry-run
expect_rc 0 "migrate up --dry-run on a fresh database exits 0"
assert_contains "and lists the baseline" "$OUT" "would apply 20251111_000000_platform_baseline"
assert_eq "and creates no schema apexops" 0 "$(has_schema "$url")"
mig "$url" down
expect_rc 0 "the migrate down preview on a fresh database exits 0"
assert_contains "and says there is nothing to revert" "$OUT" "would revert 0 migration(s)"
assert_eq "and creates no schema apexops either" 0 "$(has_schema "$url")"
mig "$url" status
expect_rc 0 "migrate status on a fresh database exits 0"
assert_eq "and creates nothing" 0 "$(has_schema "$url")"

# ---- statement timeout -----------------------------------------------------
url=$(empty_db mig_timeout) || exit 1
mdir="$E2E_TMP/slow"
mkdir -p "$mdir"
cat >"$mdir/20260101_000000_long_index.up.sql" <<'SQL'
DO $$
BEGIN
	IF current_setting('statement_timeout') <> '0' THEN
		RAISE EXCEPTION 'statement_timeout is %', current_setting('statement_timeout');
	END IF;
	IF current_setting('lock_timeout') <> '4s' THEN
		RAISE EXCEPTION 'lock_timeout is %', current_setting('lock_timeout');
	END IF;
END $$;
CREATE TABLE long_index_t AS SELECT 1 AS id FROM pg_sleep(0.3);
SQL
DATABASE_STATEMENT_TIMEOUT_MS=100 APEXOPS_LOCK_TIMEOUT_MS=4000 APEXOPS_MIGRATIONS_DIR=$mdir mig "$url" up
expect_rc 0 "a migration longer than DATABASE_STATEMENT_TIMEOUT_MS completes"
assert_eq "under statement_timeout 0 and the session's lock_timeout" t \
	"$(sql "$url" "SELECT to_regclass('public.long_index_t') IS NOT NULL")"

# ---- a database ahead of the binary ------------------------------------------
sql "$url" "INSERT INTO apexops.schema_migrations (version, name, checksum)
	VALUES ('20990101_000000_from_the_future', 'from_the_future', 'x')" >/dev/null
APEXOPS_MIGRATIONS_DIR=$mdir mig "$url" up
expect_rc 0 "migrate up with nothing to apply still exits 0"
assert_contains "but warns, naming the unknown version" "$ERR" "20990101_000000_from_the_future"
assert_contains "as the database being ahead" "$ERR" "ahead of this binary"
assert_not_contains "and does not say up to date" "$OUT" "up to date"
APEXOPS_MIGRATIONS_DIR=$mdir mig "$url" status
expect_rc 1 "migrate status exits 1 when the database is ahead"
assert_contains "naming the version" "$ERR" "20990101_000000_from_the_future"
APEXOPS_MIGRATIONS_DIR=$mdir mig "$url" verify
expect_rc 1 "migrate verify fails when the database is ahead"
assert_contains "naming the version" "$ERR" "20990101_000000_from_the_future"
echo "CREATE TABLE older_t (id int);" >"$mdir/20260102_000000_older.up.sql"
APEXOPS_MIGRATIONS_DIR=$mdir mig "$url" up
expect_rc 1 "migrate up refuses to apply older migrations around an unknown one"
assert_contains "naming it" "$ERR" "20990101_000000_from_the_future"
assert_eq "and applies nothing" f "$(sql "$url" "SELECT to_regclass('public.older_t') IS NOT NULL")"
APEXOPS_MIGRATIONS_DIR=$mdir mig "$url" down --execute
expect_rc 1 "migrate down refuses to revert a migration it does not know"
assert_contains "saying the database is ahead" "$ERR" "ahead of this binary"

# ---- counts and options ------------------------------------------------------
mig "$url" down -1
expect_rc 64 "migrate down -1 exits 64"
assert_contains "saying what N may be" "$ERR" "invalid count '-1': N must be a whole number >= 1"
mig "$url" down 0
expect_rc 64 "migrate down 0 exits 64"
assert_contains "saying what N may be" "$ERR" "N must be a whole number >= 1"
mig "$url" up --dry
expect_rc 64 "an abbreviated option exits 64"
assert_contains "naming the option in full" "$ERR" "'--dry-run'"
mig "$url" up --to
expect_rc 64 "--to without a value exits 64"
assert_contains "saying so" "$ERR" "option '--to' needs a value"

# ---- a database not migrated: every command says how to fix it ----------
url=$(empty_db mig_behind) || exit 1
DATABASE_URL=$url run_ops status
expect_rc 1 "status on an unmigrated database exits 1"
for t in queue_jobs stripe_usage_events privacy_requests dunning_cases; do
	assert_contains "status names apexops.$t missing" "$OUT" "(apexops.$t is missing: run 'apexops migrate up')"
done
assert_not_contains "and no section shows a raw SQL error" "$OUT" "does not exist"
DATABASE_URL=$url run_ops queue stats
expect_rc 1 "queue stats on an unmigrated database exits 1"
assert_contains "with the hint to migrate" "$ERR" "apexops queue: the database may lack this apexops's migrations: 'apexops migrate status' lists what is pending"
DATABASE_URL=$url APEXOPS_LOG_FORMAT=json run_ops privacy list
expect_rc 1 "privacy list on an unmigrated database exits 1"
assert_contains "the JSON error line carries the hint" "$ERR" "\"hint\":\"the database may lack this apexops's migrations"
DATABASE_URL=$url run_ops privacy expire --dry-run
expect_rc 1 "privacy expire --dry-run on an unmigrated database exits 1"
assert_eq "and prints no count it could not make" "" "$OUT"
DATABASE_URL=$url run_ops migrate status
assert_not_contains "migrate status itself has no such hint" "$ERR" "may lack"
assert_eq "and the database is left unmigrated" 0 "$(has_schema "$url")"
done_testing
