#!/usr/bin/env bash
# End-to-end: the CLI, configuration, the database layer and migrations,
# run as an operator would run them.
. "$(dirname "$0")/lib.sh"
MIGS="$OPS_ROOT/migrations/postgres"
nmig=$(ls "$MIGS"/*.up.sql | wc -l)

# --- CLI basics -------------------------------------------------------------
run_ops --version
expect_rc 0 "--version exits 0"
assert_contains "--version prints the version" "$OUT" "apexops "
run_ops --help
expect_rc 0 "--help exits 0"
for c in db migrate status config purge sandbox; do
	run_ops help "$c"
	[ "$RC" -eq 0 ] && [ -n "$OUT" ] && ok "help $c" || not_ok "help $c"
	run_ops "$c" --help
	[ "$RC" -eq 0 ] && [ -n "$OUT" ] && ok "$c --help" || not_ok "$c --help"
done
run_ops --env-file
expect_rc 64 "--env-file without a path is a usage error"
assert_contains "it says what is missing" "$ERR" "apexops: --env-file needs a path"
assert_contains "it points at --help" "$ERR" "Try 'apexops --help'."
assert_not_contains "no empty command name" "$ERR" "apexops :"
run_ops frobnicate
expect_rc 64 "an unknown command is a usage error (64)"
assert_contains "the unknown command is named" "$ERR" "frobnicate"
run_ops migrate sideways
expect_rc 64 "an unknown subcommand is a usage error (64)"
run_ops migrate up --bogus
expect_rc 64 "an unknown option is a usage error (64)"
run_ops migrate down -3
expect_rc 64 "a negative down count is a usage error"

# --- configuration ----------------------------------------------------------
URL=$(new_db found)
for var in RETENTION_MONTHS USAGE_RETENTION_MONTHS PRIVACY_EXPIRY_DAYS \
	APEXOPS_DB_CONNECT_TIMEOUT APEXOPS_DB_CONNECT_RETRIES \
	DATABASE_STATEMENT_TIMEOUT_MS APEXOPS_LOCK_TIMEOUT_MS; do
	bad_all=1
	for v in 18abc 1e3 "" -1 abc 99999999999; do
		OUT=$(env "$var=$v" DATABASE_URL="$URL" "$APEXOPS_BIN" migrate status 2>&1)
		rc=$?
		if [ $rc -ne 78 ] || [[ $OUT != *"$var"* ]]; then
			bad_all=0
			not_ok "$var='$v' exits 78 naming the variable" "rc=$rc out=$OUT"
		fi
	done
	[ $bad_all -eq 1 ] && ok "$var: 18abc, 1e3, empty, -1, abc, huge all exit 78 naming it"
done
before=$(sql "$URL" "SELECT count(*) FROM apexops.schema_migrations")
RETENTION_MONTHS=0 DATABASE_URL="$URL" "$APEXOPS_BIN" migrate up >/dev/null 2>&1
assert_eq "a bad value runs nothing (ledger unchanged)" "$before" \
	"$(sql "$URL" "SELECT count(*) FROM apexops.schema_migrations")"

printf 'RETENTION_MONTHS=24\nUSAGE_RETENTION_MONTHS=12\n' >"$E2E_TMP/good.env"
run_ops --env-file "$E2E_TMP/good.env" config
assert_contains "--env-file values are read" "$OUT" "RETENTION_MONTHS               24"
OUT=$(RETENTION_MONTHS=6 "$APEXOPS_BIN" config --env-file "$E2E_TMP/good.env" 2>&1)
assert_contains "the environment wins over the file" "$OUT" "RETENTION_MONTHS               6 "
printf 'RETENTION_MONTHS=24\nthis is not a pair\n' >"$E2E_TMP/bad.env"
run_ops --env-file "$E2E_TMP/bad.env" config
expect_rc 78 "a malformed .env line exits 78"
assert_contains "the message names file and line" "$ERR" "bad.env:2:"
run_ops --env-file "$E2E_TMP/nope.env" config
expect_rc 78 "a missing --env-file exits 78"
(cd "$E2E_TMP" && printf 'RETENTION_MONTHS=33\n' >.env && "$APEXOPS_BIN" config >"$E2E_TMP/out" 2>&1)
assert_contains "./.env is read by default" "$(cat "$E2E_TMP/out")" "RETENTION_MONTHS               33"
rm -f "$E2E_TMP/.env"

printf 's3cr3t-from-file\n' >"$E2E_TMP/pw"
OUT=$(SANDBOX_USER_PASSWORD_FILE="$E2E_TMP/pw" STRIPE_SECRET_KEY=sk_test_FAKE_not_a_key_1234 \
	DATABASE_URL="postgresql://u:hunter2pw@127.0.0.1:1/db" "$APEXOPS_BIN" config 2>&1)
assert_contains "a *_FILE secret is read" "$OUT" "secret file"
assert_not_contains "config never prints a secret file's content" "$OUT" "s3cr3t-from-file"
assert_not_contains "config never prints the Stripe key" "$OUT" "sk_test_FAKE_not_a_key"
assert_not_contains "config never prints the database password" "$OUT" "hunter2pw"
OUT=$(SANDBOX_USER_PASSWORD=a SANDBOX_USER_PASSWORD_FILE="$E2E_TMP/pw" "$APEXOPS_BIN" config 2>&1)
assert_contains "NAME and NAME_FILE together are refused" "$OUT" "both set"

# --- database reachability --------------------------------------------------
OUT=$(DATABASE_URL="postgresql://u:hunter2pw@127.0.0.1:1/db" APEXOPS_DB_CONNECT_RETRIES=1 \
	timeout 120 "$APEXOPS_BIN" migrate status 2>&1)
rc=$?
assert_eq "a DATABASE_URL pointing at nothing exits 69 (bounded by timeout 120)" 69 "$rc"
assert_contains "the message says it cannot connect" "$OUT" "cannot connect"
assert_not_contains "the message hides the password" "$OUT" "hunter2pw"
OUT=$(DATABASE_URL="host=127.0.0.1 port=1 nosuchoption=1" "$APEXOPS_BIN" migrate status 2>&1)
rc=$?
assert_eq "an invalid connection option is a config error" 78 "$rc"

# DATABASE_SSL=true means sslmode=require unless the URL says otherwise; the
# test server has no TLS, so require fails and an explicit disable wins
OUT=$(DATABASE_SSL=true DATABASE_URL="$URL" APEXOPS_DB_CONNECT_RETRIES=0 "$APEXOPS_BIN" migrate status 2>&1); rc=$?
assert_eq "DATABASE_SSL=true requires TLS (the test server has none: 69)" 69 "$rc"
assert_contains "and says the server lacks SSL" "$OUT" "SSL"
OUT=$(DATABASE_SSL=true DATABASE_URL="$URL?sslmode=disable" "$APEXOPS_BIN" migrate status 2>&1); rc=$?
assert_eq "an sslmode in the URL wins over DATABASE_SSL" 0 "$rc"

# --- logging ----------------------------------------------------------------
OUT=$(APEXOPS_LOG_FORMAT=json DATABASE_URL="postgresql://u:hunter2pw@127.0.0.1:1/db" \
	APEXOPS_DB_CONNECT_RETRIES=1 "$APEXOPS_BIN" migrate status 2>&1 >/dev/null | grep '^{')
if [ -n "$OUT" ] && printf '%s\n' "$OUT" | python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    assert d["level"] and d["msg"] and d["ts"], d
'; then ok "APEXOPS_LOG_FORMAT=json lines are JSON objects"; else not_ok "json log lines" "$OUT"; fi

# --- migrations -------------------------------------------------------------
E=$(empty_db mig)
OUT=$(DATABASE_URL=$E "$APEXOPS_BIN" migrate up 2>&1); rc=$?
assert_eq "migrate up on an empty database exits 0" 0 "$rc"
assert_eq "every migration is in the ledger" "$nmig" \
	"$(sql "$E" "SELECT count(*) FROM apexops.schema_migrations")"
OUT=$(DATABASE_URL=$E "$APEXOPS_BIN" migrate up 2>&1); rc=$?
assert_contains "a second migrate up changes nothing" "$OUT" "applied 0 migration(s)"
OUT=$(DATABASE_URL=$E "$APEXOPS_BIN" migrate verify 2>&1); rc=$?
assert_eq "verify passes on untouched files" 0 "$rc"
OUT=$(DATABASE_URL=$E "$APEXOPS_BIN" status 2>&1); rc=$?
assert_eq "status exits 0 when up to date" 0 "$rc"
assert_contains "status shows the server version" "$OUT" "PostgreSQL 15"

C=$(empty_db conc)
DATABASE_URL=$C "$APEXOPS_BIN" migrate up >"$E2E_TMP/c1" 2>&1 &
p1=$!
DATABASE_URL=$C "$APEXOPS_BIN" migrate up >"$E2E_TMP/c2" 2>&1 &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
assert_eq "two concurrent migrators both succeed" "0 0" "$r1 $r2"
assert_eq "each migration applied once" "$nmig $nmig" \
	"$(sql "$C" "SELECT count(*), count(DISTINCT version) FROM apexops.schema_migrations" | tr '|' ' ')"
a1=$(grep -c '^applying' "$E2E_TMP/c1"); a2=$(grep -c '^applying' "$E2E_TMP/c2")
assert_eq "the applies split between them add up to the total" "$nmig" "$((a1 + a2))"

cp -r "$MIGS" "$E2E_TMP/migs"
M=$(empty_db edit)
APEXOPS_MIGRATIONS_DIR="$E2E_TMP/migs" DATABASE_URL=$M "$APEXOPS_BIN" migrate up >/dev/null 2>&1
victim=$(ls "$E2E_TMP/migs"/*.up.sql | tail -1)
vname=$(basename "$victim" .up.sql)
printf '\n-- edited after it was applied\n' >>"$victim"
printf 'CREATE TABLE public.should_not_exist (id int);\n' >"$E2E_TMP/migs/29990101_000000_later.up.sql"
OUT=$(APEXOPS_MIGRATIONS_DIR="$E2E_TMP/migs" DATABASE_URL=$M "$APEXOPS_BIN" migrate up 2>&1); rc=$?
[ $rc -ne 0 ] && ok "an edited applied migration is refused (exit $rc)" || not_ok "edited migration refused" "rc=$rc"
assert_contains "the refusal names the migration" "$OUT" "$vname"
assert_eq "nothing after it was applied" "" \
	"$(sql "$M" "SELECT to_regclass('public.should_not_exist')")"
OUT=$(APEXOPS_MIGRATIONS_DIR="$E2E_TMP/migs" DATABASE_URL=$M "$APEXOPS_BIN" migrate verify 2>&1); rc=$?
assert_eq "verify exits 1 on a changed file" 1 "$rc"
assert_contains "verify names the changed migration" "$OUT" "$vname"
printf 'junk' >"$E2E_TMP/migs/README.txt"
OUT=$(APEXOPS_MIGRATIONS_DIR="$E2E_TMP/migs" DATABASE_URL=$M "$APEXOPS_BIN" migrate status 2>&1); rc=$?
assert_contains "a stray file in the migrations dir is named" "$OUT" "README.txt"

D=$(empty_db down)
DATABASE_URL=$D "$APEXOPS_BIN" migrate up >/dev/null 2>&1
OUT=$(DATABASE_URL=$D "$APEXOPS_BIN" migrate down all 2>&1)
assert_contains "down without --execute only previews" "$OUT" "would revert $nmig"
assert_eq "the preview changed nothing" "$nmig" "$(sql "$D" "SELECT count(*) FROM apexops.schema_migrations")"
OUT=$(DATABASE_URL=$D "$APEXOPS_BIN" migrate down 1 --execute 2>&1); rc=$?
assert_eq "down 1 --execute reverts one" "$((nmig - 1))" "$(sql "$D" "SELECT count(*) FROM apexops.schema_migrations")"
OUT=$(DATABASE_URL=$D "$APEXOPS_BIN" migrate up 2>&1)
assert_eq "up re-applies it" "$nmig" "$(sql "$D" "SELECT count(*) FROM apexops.schema_migrations")"

# --- signals ------------------------------------------------------------------
# stdout is a pipe whose reader is gone before the first write: with SIGPIPE
# at its default the process dies of it (-13); apexops ignores it for every
# command, so the write fails with EPIPE instead
for cmd in config "migrate status"; do
	# shellcheck disable=SC2086
	rc=$(DATABASE_URL=$URL python3 -c '
import os, subprocess, sys
r, w = os.pipe()
os.close(r)
p = subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.DEVNULL)
print(p.returncode)' "$APEXOPS_BIN" $cmd)
	[ "$rc" != -13 ] && ok "$cmd: a closed stdout is not a SIGPIPE death (rc=$rc)" ||
		not_ok "$cmd: killed by SIGPIPE"
done

done_testing
