#!/usr/bin/env bash
# End-to-end: env and secret files must be regular files, and one rule for
# blank values: exit 78 with the reason, nothing done.
. "$(dirname "$0")/lib.sh"

# --- --env-file and *_FILE: regular files only --------------------------------
mkdir "$E2E_TMP/adir"
mkfifo "$E2E_TMP/fifo"
printf 'RETENTION_MONTHS=24\n' >"$E2E_TMP/locked.env"
chmod 600 "$E2E_TMP/locked.env"
chmod 755 "$E2E_TMP"
for spec in "adir:is a directory" "fifo:is a FIFO"; do
	f=${spec%%:*} why=${spec#*:}
	# a FIFO must not block: timeout turns a hang into exit 124
	OUT=$(timeout 20 "$APEXOPS_BIN" --env-file "$E2E_TMP/$f" config 2>"$E2E_TMP/stderr")
	RC=$? ERR=$(cat "$E2E_TMP/stderr")
	expect_rc 78 "--env-file naming a $f exits 78"
	assert_contains "--env-file $f: the reason is given" "$ERR" "--env-file: '$E2E_TMP/$f' $why"
	assert_eq "--env-file $f: nothing printed" "" "$OUT"
	OUT=$(STRIPE_SECRET_KEY_FILE="$E2E_TMP/$f" timeout 20 "$APEXOPS_BIN" config 2>"$E2E_TMP/stderr")
	RC=$? ERR=$(cat "$E2E_TMP/stderr")
	expect_rc 78 "STRIPE_SECRET_KEY_FILE naming a $f exits 78"
	assert_contains "STRIPE_SECRET_KEY_FILE $f: the reason is given" "$ERR" \
		"STRIPE_SECRET_KEY_FILE: '$E2E_TMP/$f' $why"
done
# root reads any file: ask as nobody, with a copy of the binary that nobody
# may run wherever the tree is checked out; a normal user cannot read its
# own mode-000 file and asks itself
cp "$APEXOPS_BIN" "$E2E_TMP/apexops-nobody"
chmod 755 "$E2E_TMP/apexops-nobody"
as_reader() {
	if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] || chmod 000 "$E2E_TMP/locked.env"
OUT=$(as_reader "$E2E_TMP/apexops-nobody" --env-file "$E2E_TMP/locked.env" config 2>&1)
rc=$?
assert_eq "an unreadable --env-file exits 78" 78 "$rc"
assert_contains "an unreadable --env-file says why" "$OUT" "Permission denied"
OUT=$(SANDBOX_USER_PASSWORD_FILE="$E2E_TMP/locked.env" as_reader "$E2E_TMP/apexops-nobody" config 2>&1)
rc=$?
assert_eq "an unreadable secret file exits 78" 78 "$rc"
assert_contains "an unreadable secret file is named" "$OUT" "SANDBOX_USER_PASSWORD_FILE"

# --- blank values --------------------------------------------------------------
cd "$E2E_TMP" || exit 1
APEXOPS_HOME=' ' run_ops db status
expect_rc 78 "APEXOPS_HOME=' ' exits 78"
assert_contains "APEXOPS_HOME=' ': named, with what to do" "$ERR" \
	"APEXOPS_HOME: white-space-only value (from the environment): set a value or unset it"
[ ! -e "$E2E_TMP/ " ] && ok "no directory named ' ' was made" || not_ok "a directory ' ' was made"
STRIPE_SECRET_KEY='' run_ops config
expect_rc 78 "STRIPE_SECRET_KEY='' is an error, not unset"
assert_contains "STRIPE_SECRET_KEY='': named" "$ERR" "STRIPE_SECRET_KEY: empty value"
CRON_TZ='UTC ' run_ops config
expect_rc 78 "CRON_TZ='UTC ' (trailing space) exits 78"
assert_contains "trailing white space is named as such" "$ERR" "leading or trailing white space"
printf 'sk_test_FAKE_fromfile\n' >"$E2E_TMP/key"
STRIPE_SECRET_KEY_FILE="$E2E_TMP/key" run_ops config
expect_rc 0 "a secret file with one trailing newline is accepted"
assert_contains "its value comes from the secret file" "$OUT" "secret file"
printf '\n' >"$E2E_TMP/key"
STRIPE_SECRET_KEY_FILE="$E2E_TMP/key" run_ops config
expect_rc 78 "a secret file holding only a newline is empty"

done_testing
