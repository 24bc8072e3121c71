#!/usr/bin/env bash
# End-to-end: how DATABASE_URL mistakes and refused logins end. A malformed
# URL is a configuration error (78) found before connecting, never echoing
# the password; a wrong password or a missing database is not retried and
# says the server's reason (78); an unreachable server is retried (69).
. "$(dirname "$0")/lib.sh"

H=127.0.0.1:$OPS_TEST_PGPORT
psql -X -q "$OPS_TEST_ADMIN_URL" -c "DROP ROLE IF EXISTS ops_pwuser" >/dev/null 2>&1
psql -X -q "$OPS_TEST_ADMIN_URL" -c "CREATE ROLE ops_pwuser LOGIN PASSWORD 'Right-pw-e2e'" >/dev/null
url=$(empty_db url) || exit 1
dbname=${url##*/}

with_url() { # with_url URL ARGS...
	local u=$1
	shift
	DATABASE_URL=$u APEXOPS_DB_CONNECT_RETRIES=2 run_ops "$@"
}

# the logins work at all: the failures below are about the mistakes
with_url "postgresql://ops_pwuser:Right-pw-e2e@$H/$dbname" migrate status
expect_rc 0 "the password role logs in with its password"

with_url "postgresql://ops_pwuser:Sec@ret7q@$H/$dbname" migrate status
expect_rc 78 "a password with an unencoded @ exits 78"
assert_contains "and says to percent-encode it" "$ERR" "%40"
assert_not_contains "without the tail of the password" "$ERR" "ret7q"
assert_not_contains "nor its head" "$ERR" "Sec"
assert_not_contains "and without connecting" "$ERR" "retrying"

with_url "postgresql://ops_pwuser:Right-pw-e2e@127.0.0.1:notaport/$dbname" migrate status
expect_rc 78 "a port that is not a number exits 78"
assert_contains "and names the port" "$ERR" "port is not a number from 1 to 65535"
assert_not_contains "and is not retried" "$ERR" "retrying"

with_url "postgresql://ops_pwuser:Wrong-pw-e2e@$H/$dbname" migrate status
expect_rc 78 "a wrong password exits 78"
assert_contains "with the server's reason" "$ERR" 'password authentication failed for user "ops_pwuser"'
assert_contains "and its SQLSTATE" "$ERR" "28P01"
assert_not_contains "without the server's source location" "$ERR" "LOCATION:"
assert_not_contains "not retried" "$ERR" "retrying"
assert_not_contains "and never the password" "$ERR$OUT" "Wrong-pw-e2e"

with_url "postgresql://postgres@$H/no_such_db_e2e" migrate status
expect_rc 78 "a missing database exits 78"
assert_contains "with the server's reason" "$ERR" 'database "no_such_db_e2e" does not exist'
assert_contains "and its SQLSTATE" "$ERR" "3D000"
assert_not_contains "not retried" "$ERR" "retrying"

with_url "postgresql://ops_pwuser:Right-pw-e2e@127.0.0.1:1/$dbname" migrate status
expect_rc 69 "an unreachable server exits 69"
n=$(printf '%s\n' "$ERR" | grep -c 'retrying')
assert_eq "after two retries" 2 "$n"
assert_contains "whose log lines say why" "$ERR" "reason=\"connection to server at"
assert_not_contains "never the password" "$ERR" "Right-pw-e2e"
done_testing
