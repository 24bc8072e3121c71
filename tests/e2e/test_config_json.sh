#!/usr/bin/env bash
# End-to-end: with APEXOPS_LOG_FORMAT=json every line on stderr is JSON,
# the final error, usage and warning lines included.
. "$(dirname "$0")/lib.sh"

# all_json DESC: every line of $ERR parses as a JSON object with level and
# msg; prints the offending line otherwise
all_json() {
	local bad
	bad=$(printf '%s\n' "$ERR" | python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line:
        continue
    n += 1
    try:
        d = json.loads(line)
    except ValueError:
        print("not JSON: " + line)
        continue
    if not isinstance(d, dict) or "level" not in d or "msg" not in d:
        print("no level/msg: " + line)
if n == 0:
    print("no stderr line at all")')
	if [ -z "$bad" ]; then ok "$1"; else not_ok "$1" "$bad"; fi
}

export APEXOPS_LOG_FORMAT=json
run_ops frobnicate
expect_rc 64 "json: an unknown command exits 64"
all_json "json: an unknown command is one JSON line"
run_ops
all_json "json: no command at all"
run_ops --env-file
all_json "json: --env-file without a path"
run_ops config --bogus
expect_rc 64 "json: a usage error exits 64"
all_json "json: a usage error and its hint are JSON"
assert_contains "json: the hint is a field" "$ERR" '"hint":"Try '\''apexops help config'\''."'
RETENTION_MONTHS=abc run_ops config
expect_rc 78 "json: a bad value exits 78"
all_json "json: a configuration error is JSON"
assert_contains "json: the error names the variable" "$ERR" '"msg":"RETENTION_MONTHS: invalid value'
CONFIRM=yes run_ops config
expect_rc 0 "json: config with CONFIRM=yes exits 0"
all_json "json: the CONFIRM warning is JSON"
assert_contains "json: the warning is level warn" "$ERR" '"level":"warn"'
APEXOPS_DB_CONNECT_RETRIES=1 APEXOPS_DB_CONNECT_TIMEOUT=1 \
	DATABASE_URL="postgresql://postgres@127.0.0.1:1/none" run_ops status
expect_rc 69 "json: an unreachable database exits 69"
all_json "json: retries and the final error of a failed connect are JSON"
URL=$(empty_db json)
DATABASE_URL=$URL run_ops migrate up
expect_rc 0 "json: migrate up on an empty database exits 0"
all_json "json: a working command logs JSON only"

unset APEXOPS_LOG_FORMAT
run_ops config --bogus
assert_contains "text: the usage error stays plain" "$ERR" "apexops config: takes no arguments"
CONFIRM=yes run_ops config
assert_contains "text: warnings read 'apexops CMD: warning:'" "$ERR" \
	"apexops config: warning: CONFIRM='yes' is not exactly 1 or true"
done_testing
