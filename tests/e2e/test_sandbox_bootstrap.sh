#!/usr/bin/env bash
# apexops sandbox bootstrap, end to end: an empty (template-migrated)
# database brought to the fixture state, a second run changing nothing
# (same table checksums, updated_at included), convergence after damage and
# after a kill -9 mid-transaction, dry-run, production refusal, password
# hashes (checked with Python's crypt, i.e. libxcrypt), and Stripe against
# our double (bank sources, sources list, encoding compared with the
# official stripe SDK) and against stripe-stateful-mock (customer, card).
PEERS_JS="$(cd "$(dirname "$0")/../peers" && pwd)"
. "$(dirname "$0")/lib.sh"
PW='SandboxPass!2025'
OWNER=821cd756-d945-4efd-8f7c-3e7d3520a899

URL=$(new_db sbx) || { echo "not ok 1 - cannot make a database"; exit 1; }
export DATABASE_URL=$URL

TABLES="publishers apps placements users adapters adapter_configs waterfall_configs"
# full checksum of every touched table, timestamps and hashes included
sums_full() {
	local t out=""
	for t in $TABLES; do
		out="$out $t:$(sql "$URL" "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM $t t")"
	done
	echo "$out"
}
# the same without created_at/updated_at/password_hash: what a converged
# run must reproduce after rows were deleted and re-created
sums_content() {
	local t out=""
	for t in $TABLES; do
		out="$out $t:$(sql "$URL" "SELECT md5(coalesce(string_agg((to_jsonb(t) - 'created_at' - 'updated_at' - 'password_hash')::text, ',' ORDER BY t.id), '')) FROM $t t")"
	done
	echo "$out"
}
hash_ok() { # hash_ok PASSWORD HASH -> prints yes/no (libxcrypt through Python)
	python3 -W ignore -c 'import crypt,sys; print("yes" if crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2] else "no")' "$1" "$2"
}
ALL_OUT=""
remember() { ALL_OUT="$ALL_OUT
$OUT
$ERR"; }

# --- first run on an empty database
run_ops sandbox bootstrap
remember
expect_rc 0 "bootstrap on an empty database succeeds"
assert_contains "placements created" "$OUT" "placements       created 25, updated 0, unchanged 0"
assert_contains "waterfalls created" "$OUT" "waterfalls       created 25, updated 0, unchanged 0"
assert_contains "stripe skipped without a key" "$OUT" "stripe: skipped (STRIPE_SECRET_KEY is not set)"
assert_eq "publisher, apps, placements, users, adapters, configs, waterfalls" \
	"1 5 25 3 3 3 25" \
	"$(sql "$URL" "SELECT (SELECT count(*) FROM publishers WHERE id = '138f62be-5cee-4c73-aba4-ba78ea77ab44' AND company_name = 'Apex Sandbox Studio') || ' ' || (SELECT count(*) FROM apps) || ' ' || (SELECT count(*) FROM placements) || ' ' || (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM adapters) || ' ' || (SELECT count(*) FROM adapter_configs) || ' ' || (SELECT count(*) FROM waterfall_configs)")"
assert_eq "fixture placement name, type and app" \
	"Android TV Rewarded 01|rewarded|android_tv" \
	"$(sql "$URL" "SELECT p.name || '|' || p.type || '|' || a.platform FROM placements p JOIN apps a ON a.id = p.app_id WHERE p.id = '916aa3f1-b875-45f9-b672-bb6461ceadf4'")"
assert_eq "users with fixed ids, emails and roles" \
	"1f13d605-e292-4a31-9532-5eeace27d601 finance@apex-sandbox.test finance|6348ae56-dcd1-474a-9563-f6cf5f96395e dev@apex-sandbox.test developer|821cd756-d945-4efd-8f7c-3e7d3520a899 owner@apex-sandbox.test owner" \
	"$(sql "$URL" "SELECT string_agg(id || ' ' || email || ' ' || role, '|' ORDER BY id) FROM users")"
assert_eq "adapter config JSON" \
	'{"behavior": "random_fill", "fillRate": 0.55, "timeoutMs": 450, "targetEcpm": 8.1}' \
	"$(sql "$URL" "SELECT config::text FROM adapter_configs WHERE id = '6f4b66b9-c7a1-42df-92b7-c3b5808140ea'")"
assert_eq "every waterfall: three adapters in order, floor 50, static, active, owner" \
	"25" \
	"$(sql "$URL" "SELECT count(*) FROM waterfall_configs WHERE customer_id = '$OWNER' AND floor_price_cents = 50 AND optimization_strategy = 'static' AND active AND adapter_priorities = '[{\"adapter_id\":\"a7f66258-6c5c-462f-9ff4-126886c1d7d3\",\"priority\":1,\"timeout_ms\":180,\"notes\":\"always_fill\"},{\"adapter_id\":\"ca13eef0-bdbd-4475-823f-93c5b2932d6d\",\"priority\":2,\"timeout_ms\":450,\"notes\":\"random_fill\"},{\"adapter_id\":\"dc801f21-749c-46ae-ad33-ded15da2f5f0\",\"priority\":3,\"timeout_ms\":1500,\"notes\":\"slow_timeout\"}]'::jsonb")"
H1=$(sql "$URL" "SELECT string_agg(password_hash, ' ' ORDER BY id) FROM users")
OWNER_HASH=$(sql "$URL" "SELECT password_hash FROM users WHERE id = '$OWNER'")
assert_contains "bcrypt cost 10" "$OWNER_HASH" '$2b$10$'
assert_eq "stored hash verifies with crypt(3)" "yes" "$(hash_ok "$PW" "$OWNER_HASH")"
assert_eq "stored hash rejects another password" "no" "$(hash_ok "wrong" "$OWNER_HASH")"
FULL1=$(sums_full)
CONTENT1=$(sums_content)

# --- second run: nothing changes, byte for byte
run_ops sandbox bootstrap
remember
expect_rc 0 "second run succeeds"
assert_contains "second run reports no changes" "$OUT" "database: no changes"
assert_not_contains "second run creates nothing" "$OUT" "created 1"
assert_eq "second run leaves every table identical (updated_at included)" "$FULL1" "$(sums_full)"

# --- damage, as a run killed between separate transactions would leave it
sql "$URL" "DELETE FROM waterfall_configs WHERE placement_id IN (SELECT id FROM placements ORDER BY id LIMIT 4)" >/dev/null
sql "$URL" "DELETE FROM users WHERE id = '6348ae56-dcd1-474a-9563-f6cf5f96395e'" >/dev/null
sql "$URL" "UPDATE adapter_configs SET config = '{\"behavior\":\"always_fill\"}' WHERE id = '69ac363f-73cb-46b1-afc3-a9db2d2b1f99'" >/dev/null
sql "$URL" "UPDATE adapters SET enabled = false WHERE name = 'FakeNetworkB'" >/dev/null
sql "$URL" "INSERT INTO waterfall_configs (customer_id, placement_id, adapter_priorities) VALUES ('$OWNER', 'edcbe420-5e96-4c0f-b7ee-e5a10eb11db3', '[]')" >/dev/null
DAMAGED=$(sums_full)

run_ops sandbox bootstrap --dry-run
remember
expect_rc 0 "dry run succeeds"
assert_contains "dry run says what it would do" "$OUT" "would be made (dry run, rolled back)"
assert_contains "dry run counts the waterfalls" "$OUT" "waterfalls       created 4, updated 0, unchanged 21, removed 1"
assert_eq "dry run changes nothing" "$DAMAGED" "$(sums_full)"

run_ops sandbox bootstrap
remember
expect_rc 0 "rerun after damage succeeds"
assert_contains "rerun restores the user" "$OUT" "users            created 1, updated 0, unchanged 2"
assert_contains "rerun fixes adapter and config" "$OUT" "adapter_configs  created 0, updated 1, unchanged 2"
assert_eq "rerun converges to the same content" "$CONTENT1" "$(sums_content)"
run_ops sandbox bootstrap
assert_contains "and the run after that changes nothing" "$OUT" "database: no changes"

# --- drift: every fixture column is compared and restored; extras are
# listed and left (--prune removes them); revenue uses the fixtures only
URLD=$(new_db sbxdrift)
DATABASE_URL=$URLD run_ops sandbox bootstrap
DATABASE_URL=$URLD run_ops sandbox revenue growth --start 2026-10-01 --days 30
assert_contains "drift: the Growth demo on a fresh sandbox" "$OUT" "growth: 750 rows, total 50500.41 USD"
EXTRA=00000000-0000-4000-8000-00000000abcd
sql "$URLD" "UPDATE placements SET name = 'Renamed by hand' WHERE id = 'edcbe420-5e96-4c0f-b7ee-e5a10eb11db3'" >/dev/null
sql "$URLD" "INSERT INTO placements (id, app_id, name, type) VALUES ('$EXTRA', '7bcfc807-1834-4d69-a1ca-27e258f4ce75', 'Android Added 01', 'banner')" >/dev/null
sql "$URLD" "UPDATE adapter_configs SET config = jsonb_set(config, '{targetEcpm}', '9.9') WHERE id = '6f4b66b9-c7a1-42df-92b7-c3b5808140ea'" >/dev/null
sql "$URLD" "UPDATE waterfall_configs SET adapter_priorities = jsonb_set(adapter_priorities, '{0,priority}', '7') WHERE placement_id = '92fe3cb3-8028-4a65-aacf-c9916b2efc29'" >/dev/null
sql "$URLD" "UPDATE apps SET platform = 'web' WHERE id = '6b8213e3-b331-40b8-a32f-2bac1678e737'" >/dev/null
DATABASE_URL=$URLD run_ops sandbox revenue growth --start 2026-10-01 --days 30
assert_contains "drift: revenue ignores the added placement" "$OUT" "growth: 750 rows"
DATABASE_URL=$URLD run_ops sandbox bootstrap
expect_rc 0 "drift: bootstrap succeeds"
assert_contains "drift: the renamed placement is restored and reported" "$OUT" "restored placement edcbe420-5e96-4c0f-b7ee-e5a10eb11db3 (Android Interstitial 01): name 'Renamed by hand' -> 'Android Interstitial 01'"
assert_contains "drift: the eCPM is restored and reported" "$OUT" '"targetEcpm": 9.9} -> {'
assert_contains "drift: the waterfall priority is restored and reported" "$OUT" "restored waterfall 64f3f8a9-d577-52b5-9af7-5c93458b001c (placement 92fe3cb3-8028-4a65-aacf-c9916b2efc29): adapter_priorities"
assert_contains "drift: the app platform is restored and reported" "$OUT" "restored app 6b8213e3-b331-40b8-a32f-2bac1678e737 (Apex Sandbox iOS): platform 'web' -> 'ios'"
assert_contains "drift: the counts say so" "$OUT" "placements       created 0, updated 1, unchanged 24, extra 1"
assert_contains "drift: the added placement is reported and left" "$OUT" "extra, left placement $EXTRA (Android Added 01) (not a fixture)"
assert_contains "drift: and how to remove it" "$OUT" "--prune removes them"
assert_eq "drift: fixture content restored" "$(URL=$URL sums_content | tr ' ' '\n' | grep -v '^placements:\|^waterfall_configs:\|^users:' )" \
	"$(URL=$URLD sums_content | tr ' ' '\n' | grep -v '^placements:\|^waterfall_configs:\|^users:')"
assert_eq "drift: the placement has its fixture name, the config its eCPM, the waterfall its order" "Android Interstitial 01|8.1|1" \
	"$(sql "$URLD" "SELECT (SELECT name FROM placements WHERE id = 'edcbe420-5e96-4c0f-b7ee-e5a10eb11db3') || '|' || (SELECT config->>'targetEcpm' FROM adapter_configs WHERE id = '6f4b66b9-c7a1-42df-92b7-c3b5808140ea') || '|' || (SELECT adapter_priorities->0->>'priority' FROM waterfall_configs WHERE placement_id = '92fe3cb3-8028-4a65-aacf-c9916b2efc29')")"
assert_eq "drift: no waterfall was made for the added placement" 0 "$(sql "$URLD" "SELECT count(*) FROM waterfall_configs WHERE placement_id = '$EXTRA'")"
DATABASE_URL=$URLD run_ops sandbox revenue growth --start 2026-10-01 --days 30
assert_contains "drift: the Growth demo is back to 750 rows and \$50,500.41" "$OUT" "growth: 750 rows, total 50500.41 USD"
DATABASE_URL=$URLD run_ops sandbox bootstrap
assert_contains "drift: a second run changes nothing" "$OUT" "database: no changes"
DATABASE_URL=$URLD run_ops sandbox bootstrap --prune
expect_rc 0 "drift: --prune succeeds"
assert_contains "drift: --prune removes the added placement" "$OUT" "removed placement $EXTRA (Android Added 01) (not a fixture)"
assert_eq "drift: and its demo revenue" "0 0" "$(sql "$URLD" "SELECT (SELECT count(*) FROM placements WHERE id = '$EXTRA') || ' ' || (SELECT count(*) FROM revenue_events WHERE placement_id = '$EXTRA')")"
assert_eq "drift: the sandbox is exactly the fixture set again" "$(URL=$URL sums_content | tr ' ' '\n' | grep '^placements:')" "$(URL=$URLD sums_content | tr ' ' '\n' | grep '^placements:')"

# --- kill -9 in the middle of the transaction: nothing half-done remains
URL2=$(new_db sbxkill)
psql -X -q "$URL2" -c "BEGIN; LOCK TABLE waterfall_configs IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
LOCKER=$!
wait_for "$URL2" "SELECT count(*) FROM pg_locks WHERE relation = 'waterfall_configs'::regclass AND mode = 'AccessExclusiveLock' AND granted" ||
	not_ok "the locker holds waterfall_configs"
DATABASE_URL=$URL2 APEXOPS_LOCK_TIMEOUT_MS=0 "$APEXOPS_BIN" sandbox bootstrap >"$E2E_TMP/kill.out" 2>&1 &
VICTIM=$!
# the victim has written users and placements and now waits on the lock
wait_for "$URL2" "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'apexops/%' AND wait_event_type = 'Lock'" ||
	not_ok "the bootstrap reached the locked table"
kill -9 "$VICTIM" 2>/dev/null
wait "$VICTIM" 2>/dev/null
# the server ends the victim's backend once it sees the socket close
wait_for "$URL2" "SELECT (count(*) = 0)::int FROM pg_stat_activity WHERE application_name LIKE 'apexops/%'" ||
	not_ok "the killed bootstrap's backend went away"
sql "$URL2" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$LOCKER" 2>/dev/null
assert_eq "a killed run left no rows" "0 0" \
	"$(sql "$URL2" "SELECT (SELECT count(*) FROM placements) || ' ' || (SELECT count(*) FROM users)")"
DATABASE_URL=$URL2 run_ops sandbox bootstrap
expect_rc 0 "the run after a kill succeeds"
assert_eq "and converges to the same content" "$CONTENT1" "$(URL=$URL2 sums_content)"

# --- the lock: another bootstrap holds it -> exit 75 at once, naming it
lock_key() { # the FNV-1a 64 key apexops derives from a lock name (db_lock_key)
	python3 -c 'import sys
h = 1469598103934665603
for b in sys.argv[1].encode(): h = ((h ^ b) * 1099511628211) % 2**64
print(h - 2**64 if h >= 2**63 else h)' "$1"
}
URL4=$(new_db sbxlock)
PGAPPNAME=lock-holder-test psql -X -q "$URL4" -c "SELECT pg_advisory_lock($(lock_key apexops/sandbox-bootstrap)); SELECT pg_sleep(60)" >/dev/null 2>&1 &
HOLDER=$!
wait_for "$URL4" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'lock-holder-test'" ||
	not_ok "the holder took the bootstrap lock"
HOLDER_PID=$(sql "$URL4" "SELECT pid FROM pg_stat_activity WHERE application_name = 'lock-holder-test'")
DATABASE_URL=$URL4 run_ops sandbox bootstrap
expect_rc 75 "a held bootstrap lock: exit 75 at once, not a wait"
assert_contains "the message names the lock and its holder" "$ERR" "apexops sandbox bootstrap: error: another sandbox bootstrap is running: lock 'apexops/sandbox-bootstrap' is held by backend pid $HOLDER_PID (application_name 'lock-holder-test', "
assert_eq "nothing was written" 0 "$(sql "$URL4" "SELECT count(*) FROM placements")"
sql "$URL4" "SELECT pg_terminate_backend($HOLDER_PID)" >/dev/null
wait "$HOLDER" 2>/dev/null
DATABASE_URL=$URL4 run_ops sandbox bootstrap
expect_rc 0 "once the holder is gone, bootstrap runs"
assert_eq "and the result is the converged state" "$CONTENT1" "$(URL=$URL4 sums_content)"

# --- passwords
run_ops sandbox bootstrap
SANDBOX_USER_PASSWORD='N3w pass!' run_ops sandbox bootstrap
remember
expect_rc 0 "run with a new password succeeds"
assert_contains "new password rehashes the three users" "$OUT" "users            created 0, updated 3, unchanged 0"
H2=$(sql "$URL" "SELECT string_agg(password_hash, ' ' ORDER BY id) FROM users")
[ "$H1" != "$H2" ] && ok "hashes changed" || not_ok "hashes changed"
assert_eq "new hash verifies" "yes" "$(hash_ok 'N3w pass!' "$(sql "$URL" "SELECT password_hash FROM users WHERE id = '$OWNER'")")"
SANDBOX_USER_PASSWORD='N3w pass!' run_ops sandbox bootstrap
remember
assert_contains "same password again: no changes" "$OUT" "database: no changes"
assert_eq "same password keeps the hashes" "$H2" "$(sql "$URL" "SELECT string_agg(password_hash, ' ' ORDER BY id) FROM users")"
SANDBOX_USER_PASSWORD="$(printf 'x%.0s' $(seq 73))" run_ops sandbox bootstrap
expect_rc 78 "a password over 72 bytes is refused"
assert_contains "and the message names the variable" "$ERR" "SANDBOX_USER_PASSWORD"

# --- production refusal
BEFORE=$(sums_full)
APP_ENV=production run_ops sandbox bootstrap
expect_rc 78 "APP_ENV=production refuses"
assert_contains "refusal says how to override" "$ERR" "--force"
assert_contains "refusal names the variable and its value" "$ERR" "apexops sandbox bootstrap: error: refusing to run: APP_ENV is 'production'"
NODE_ENV=production run_ops sandbox bootstrap
expect_rc 78 "NODE_ENV=production refuses"
assert_contains "NODE_ENV refusal names NODE_ENV" "$ERR" "NODE_ENV is 'production'"
APP_ENV='production ' run_ops sandbox bootstrap
expect_rc 78 "APP_ENV='production ' (trailing space) refuses"
assert_contains "and names the variable" "$ERR" "APP_ENV"
APP_ENV=' Production' run_ops sandbox bootstrap --dry-run
expect_rc 78 "APP_ENV=' Production' refuses a dry run too"
assert_eq "refusal changes nothing" "$BEFORE" "$(sums_full)"
APP_ENV=production run_ops sandbox bootstrap --force
expect_rc 0 "--force overrides the refusal"
run_ops sandbox bootstrap --bogus
expect_rc 64 "unknown option is a usage error"
assert_contains "the usage error names the subcommand" "$ERR" "apexops sandbox bootstrap: unknown option '--bogus'"
run_ops sandbox bootstrap --dry
expect_rc 64 "an abbreviated option is refused"

# --- a permanent conflict: another user owns a sandbox login's email
URL5=$(new_db sbxconflict)
sql "$URL5" "INSERT INTO publishers (id, company_name) VALUES ('00000000-0000-4000-8000-0000000000aa', 'Other'); INSERT INTO users (id, publisher_id, email, password_hash, role) VALUES ('00000000-0000-4000-8000-0000000000ab', '00000000-0000-4000-8000-0000000000aa', 'dev@apex-sandbox.test', 'x', 'developer')" >/dev/null
DATABASE_URL=$URL5 run_ops sandbox bootstrap
expect_rc 1 "an email owned by another user exits 1 (a retry cannot help), not 75"
assert_contains "and names the email and the other user" "$ERR" "user 'dev@apex-sandbox.test' exists with id 00000000-0000-4000-8000-0000000000ab"
assert_eq "every message is prefixed 'apexops sandbox bootstrap:'" "" \
	"$(printf '%s\n' "$ERR" | grep -v '^ts=' | grep -v '^apexops sandbox bootstrap: ' | grep -v '^$')"
assert_eq "the conflict rolled everything back" "0" "$(sql "$URL5" "SELECT count(*) FROM placements")"

# --- Stripe against our double
if [ -n "${OPS_TEST_STRIPE_DOUBLE_URL:-}" ]; then
	D=$OPS_TEST_STRIPE_DOUBLE_URL
	KEY=sk_test_FAKE_e2e_secret_123
	curl -s -X POST "$D/__double/reset" >/dev/null
	STRIPE_SECRET_KEY=$KEY APEXOPS_STRIPE_API_BASE=$D run_ops sandbox bootstrap
	remember
	expect_rc 0 "stripe provisioning against the double succeeds"
	# what apexops sent, before the probes below add requests of their own
	curl -s "$D/__double/requests" >"$E2E_TMP/c.json"
	CUS=$(sql "$URL" "SELECT stripe_customer_id FROM users WHERE id = '$OWNER'")
	assert_eq "customer id stored on the owner" "cus_D0000000000001" "$CUS"
	assert_contains "card attached" "$OUT" "attached card_"
	assert_contains "ACH attached" "$OUT" "attached ba_"
	assert_contains "SEPA attached as a PaymentMethod" "$OUT" "stripe sepa (sepa_debit)        attached pm_"
	assert_contains "the output names every attached method with its id" "$OUT" "stripe: payment methods on cus_D0000000000001: card card_D0000000000002, ACH ba_D0000000000003, SEPA pm_D0000000000004"
	PM=$(curl -s -H "Authorization: Bearer $KEY" "$D/v1/payment_methods/pm_D0000000000004")
	assert_eq "the SEPA PaymentMethod: Stripe's test IBAN, billing name and email, attached to the customer" \
		"sepa_debit DE 3000 Apex Sandbox Owner owner@apex-sandbox.test cus_D0000000000001" \
		"$(printf %s "$PM" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["type"], d["sepa_debit"]["country"], d["sepa_debit"]["last4"], d["billing_details"]["name"], d["billing_details"]["email"], d["customer"])')"
	assert_eq "no request names the btok_sepa_debit token" "0" "$(curl -s "$D/__double/requests" | grep -c btok_sepa_debit)"
	# the double answers the undocumented token as Stripe does
	SEPA_TOK=$(curl -s -X POST -H "Authorization: Bearer $KEY" -d source=btok_sepa_debit "$D/v1/customers/cus_D0000000000001/sources")
	assert_eq "the double refuses btok_sepa_debit like Stripe: resource_missing, No such token" \
		"invalid_request_error resource_missing No such token: 'btok_sepa_debit'" \
		"$(printf %s "$SEPA_TOK" | python3 -c 'import json,sys; e=json.load(sys.stdin)["error"]; print(e["type"], e["code"], e["message"])')"
	BAD_PM=$(curl -s -X POST -H "Authorization: Bearer $KEY" -d type=sepa_debit -d 'sepa_debit[iban]=DE89370400440532013000' "$D/v1/payment_methods")
	assert_contains "the double requires the billing name for SEPA" "$BAD_PM" "billing_details[name]"
	BAD_PM=$(curl -s -X POST -H "Authorization: Bearer $KEY" -d type=sepa_debit -d 'sepa_debit[iban]=DE89370400440532013001' -d 'billing_details[name]=x' -d 'billing_details[email]=x@example.com' "$D/v1/payment_methods")
	assert_contains "the double refuses an IBAN with bad check digits" "$BAD_PM" "invalid_bank_account_iban"
	assert_contains "card is the default source" "$OUT" "stripe default source           already set card_"
	assert_eq "every POST has a deterministic idempotency key, Bearer auth and the pinned version" "ok" \
		"$(python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))
bad=[x for x in r if x["headers"]["stripe-version"]!="2023-10-16" or x["headers"]["auth_scheme"]!="Bearer" or (x["method"]=="POST" and not (x["headers"]["idempotency-key"] or "").startswith("apexops-sandbox-"))]
print("ok" if r and not bad else bad)' "$E2E_TMP/c.json")"
	node "$PEERS_JS/stripe-sdk-replay.mjs" "$E2E_TMP/c.json" "$D" >"$E2E_TMP/sdk.json" 2>"$E2E_TMP/sdk.err"
	assert_eq "the official stripe SDK sends the same method, path, parameters and headers (PaymentMethod calls included)" "same 11" \
		"$(python3 -c 'import json,sys
c=json.load(open(sys.argv[1])); s=json.load(open(sys.argv[2]))
k=lambda x:(x["method"],x["path"],sorted(x["query"]),sorted(x["body"]),x["headers"]["stripe-version"],x["headers"]["idempotency-key"],x["headers"]["content-type"])
print(("same %d" % len(c)) if len(c)==len(s) and all(k(a)==k(b) for a,b in zip(c,s)) else [ (k(a),k(b)) for a,b in zip(c,s) if k(a)!=k(b)][:2] or (len(c),len(s)))' "$E2E_TMP/c.json" "$E2E_TMP/sdk.json")"
	curl -s -X POST "$D/__double/reset" >/dev/null
	sql "$URL" "UPDATE users SET stripe_customer_id = NULL" >/dev/null
	STRIPE_SECRET_KEY=$KEY APEXOPS_STRIPE_API_BASE=$D run_ops sandbox bootstrap
	remember
	# second run on the same double state
	STRIPE_SECRET_KEY=$KEY APEXOPS_STRIPE_API_BASE=$D run_ops sandbox bootstrap
	remember
	expect_rc 0 "second stripe run succeeds"
	assert_contains "second stripe run finds everything" "$OUT" "stripe: no changes"
	assert_contains "customer found by its stored id" "$OUT" "stripe customer                 found cus_"
	# the stored customer was deleted in Stripe: found again by email
	curl -s -X DELETE -H "Authorization: Bearer $KEY" "$D/v1/customers/$(sql "$URL" "SELECT stripe_customer_id FROM users WHERE id = '$OWNER'")" >/dev/null
	STRIPE_SECRET_KEY=$KEY APEXOPS_STRIPE_API_BASE=$D run_ops sandbox bootstrap
	remember
	expect_rc 0 "a customer deleted in Stripe is replaced"
	assert_contains "the replacement is a new customer" "$OUT" "stripe customer                 created or updated cus_"
	# transient faults are retried
	curl -s -X POST -d '{"count":2,"status":503}' "$D/__double/faults" >/dev/null
	curl -s -X POST -d '{"count":1,"status":429,"retryAfter":"1"}' "$D/__double/faults" >/dev/null
	STRIPE_SECRET_KEY=$KEY APEXOPS_STRIPE_API_BASE=$D run_ops sandbox bootstrap
	remember
	expect_rc 0 "503 and 429 answers are retried"
	assert_contains "retries are logged" "$ERR" "status=429"
	# a failure (bad key: 401, not retried) exits 1 and keeps the DB work
	sql "$URL" "DELETE FROM waterfall_configs WHERE placement_id = 'edcbe420-5e96-4c0f-b7ee-e5a10eb11db3'" >/dev/null
	STRIPE_SECRET_KEY=sk_live_FAKE_not_a_test_key APEXOPS_STRIPE_API_BASE=$D run_ops sandbox bootstrap
	remember
	expect_rc 1 "a Stripe failure exits 1"
	assert_contains "and says the database work is kept" "$ERR" "are committed and kept"
	assert_eq "the database work was committed" "1" \
		"$(sql "$URL" "SELECT count(*) FROM waterfall_configs WHERE placement_id = 'edcbe420-5e96-4c0f-b7ee-e5a10eb11db3'")"
	assert_not_contains "the secret key is never printed" "$ALL_OUT" "FAKE_not_a_test_key"
	assert_not_contains "the test key is never printed" "$ALL_OUT" "$KEY"
	# dry run sends no POST
	curl -s -X POST "$D/__double/reset" >/dev/null
	STRIPE_SECRET_KEY=$KEY APEXOPS_STRIPE_API_BASE=$D run_ops sandbox bootstrap --dry-run
	expect_rc 0 "stripe dry run succeeds"
	assert_eq "stripe dry run sends no POST" "0" \
		"$(curl -s "$D/__double/requests" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["method"]!="GET"))')"
else
	# tests/run.sh always starts the npm peers: a missing one is a failure
	not_ok "the Stripe double is running (OPS_TEST_STRIPE_DOUBLE_URL set by tests/run.sh)"
fi

# --- Stripe against stripe-stateful-mock (customer and card only)
if [ -n "${OPS_TEST_STRIPE_MOCK_URL:-}" ]; then
	M=$OPS_TEST_STRIPE_MOCK_URL
	URL3=$(new_db sbxmock)
	DATABASE_URL=$URL3 STRIPE_SECRET_KEY=sk_test_mock1 APEXOPS_STRIPE_API_BASE=$M run_ops sandbox bootstrap
	remember
	CUS=$(sql "$URL3" "SELECT stripe_customer_id FROM users WHERE id = '$OWNER'")
	assert_contains "mock: customer created and stored" "$CUS" "cus_"
	assert_contains "mock: card attached" "$OUT" "attached card_"
	DOC=$(curl -s -g -u sk_test_mock1: "$M/v1/customers/$CUS?expand[0]=sources")
	assert_eq "mock: customer has the name, the email and the card as default" "Apex Sandbox Owner owner@apex-sandbox.test card True" \
		"$(printf %s "$DOC" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["name"], d["email"], d["sources"]["data"][0]["object"], d["default_source"]==d["sources"]["data"][0]["id"])')"
	# the mock answers 500 "Unhandled source token" for bank tokens
	expect_rc 1 "mock: bank sources it cannot make fail the run with exit 1"
	DATABASE_URL=$URL3 STRIPE_SECRET_KEY=sk_test_mock1 APEXOPS_STRIPE_API_BASE=$M run_ops sandbox bootstrap
	assert_contains "mock: second run finds the customer" "$OUT" "stripe customer                 found $CUS"
	assert_contains "mock: second run finds the card" "$OUT" "stripe card (tok_visa)          found card_"
else
	not_ok "stripe-stateful-mock is running (OPS_TEST_STRIPE_MOCK_URL set by tests/run.sh)"
fi

assert_not_contains "the password is never printed" "$ALL_OUT" "$PW"
assert_not_contains "the new password is never printed" "$ALL_OUT" "N3w pass!"
done_testing
