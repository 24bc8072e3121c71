#!/usr/bin/env bash
# End-to-end: env and secret files must be regular files: exit 78 with the
# reason, nothing done.
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
# may run wherever the tree is checked out
cp "$APEXOPS_BIN" "$E2E_TMP/apexops-nobody"
chmod 755 "$E2E_TMP/apexops-nobody"
OUT=$(runuser -u nobody -- "$E2E_TMP/apexops-nobody" --env-file "$E2E_TMP/locked.env" config 2>&1)
rc=$?
assert_eq "an unreadable --env-file exits 78" 78 "$rc"
assert_contains "an unreadable --env-file says why" "$OUT" "Permission denied"
OUT=$(SANDBOX_USER_PASSWORD_FILE="$E2E_TMP/locked.env" runuser -u nobody -- "$E2E_TMP/apexops-nobody" config 2>&1)
rc=$?
assert_eq "an unreadable secret file exits 78" 78 "$rc"
assert_contains "an unreadable secret file is named" "$OUT" "SANDBOX_USER_PASSWORD_FILE"

done_testing
