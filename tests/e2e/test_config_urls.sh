#!/usr/bin/env bash
# End-to-end: every base-URL variable goes through the one http rule right
# after the configuration is loaded: exit 78 naming it, nothing run.
. "$(dirname "$0")/lib.sh"

for u in "http://localhost@127.0.0.3:58999" "http://127.0.0.1@host" \
	"http://localhost.evil.example" "https://api.stripe.com?x=1" \
	"https://u:secretpw@api.stripe.com"; do
	APEXOPS_STRIPE_API_BASE=$u run_ops config
	if [ "$RC" -eq 78 ] && [ -z "$OUT" ] &&
		[[ $ERR == *APEXOPS_STRIPE_API_BASE*loopback* ]] &&
		[[ $ERR != *secretpw* ]]; then
		ok "APEXOPS_STRIPE_API_BASE=$u exits 78 naming it, prints nothing"
	else
		not_ok "APEXOPS_STRIPE_API_BASE=$u exits 78 naming it" "rc=$RC"
	fi
done
for u in "https://api.stripe.com" "http://127.0.0.1:12111" "http://[::1]:1" \
	"http://localhost:4566/"; do
	APEXOPS_STRIPE_API_BASE=$u run_ops config
	expect_rc 0 "APEXOPS_STRIPE_API_BASE=$u is accepted"
done
# the check runs before any command, not only before Stripe calls
URL=$(new_db urls)
before=$(sql "$URL" "SELECT count(*) FROM apexops.schema_migrations")
DATABASE_URL=$URL APEXOPS_STRIPE_API_BASE=http://127.0.0.1@host run_ops migrate down
expect_rc 78 "a bad base URL stops migrate before it connects"
assert_eq "nothing was reverted" "$before" \
	"$(sql "$URL" "SELECT count(*) FROM apexops.schema_migrations")"
done_testing
