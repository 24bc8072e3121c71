#!/usr/bin/env bash
# apexops stripe dunning against our Stripe double (tests/peers/
# stripe-double-billing.mjs), on a virtual clock: recovery on the second
# attempt, suspension then reactivation when the customer pays outside
# apexops, a crash between the pay call and its commit (no second charge,
# also after Stripe forgot the key), a missed webhook found by
# reconciliation, two runs at once, the schedule's days in CRON_TZ, the
# request encoding against the official SDK, a dry-run, bad input, and a
# bank debit still processing after Stripe forgot the key (pending, not a
# failed attempt, until it succeeds or fails), also on API version
# 2025-03-31.basil, whose invoices name no payment intent.
. "$(dirname "$0")/lib.sh"
PEERS_JS="$(cd "$OPS_ROOT/tests/peers" && pwd)"
KEY=sk_test_FAKE_dunning_e2e_7f3a9c
unset STRIPE_SECRET_KEY_FILE APEXOPS_CLOCK_START APEXOPS_CLOCK_EPOCH APEXOPS_CLOCK_SPEED

# our own double instance: other tests reset theirs
DLOG="$E2E_TMP/double.log"
PORT=0 node "$PEERS_JS/stripe-double.mjs" >"$DLOG" 2>&1 &
DPID=$!
trap 'kill $DPID 2>/dev/null' EXIT
for _ in $(seq 1 100); do
	DPORT=$(sed -n '1s/.* on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$DLOG")
	[ -n "$DPORT" ] && break
	sleep 0.1
done
D=http://127.0.0.1:$DPORT
export APEXOPS_STRIPE_API_BASE=$D

ctl() { curl -s -X POST -H 'content-type: application/json' -d "$2" "$D/__double/billing/$1"; }
seed() { ctl seed "{\"invoices\":[$1]}" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["ids"]))'; }
charges() { # charges INVOICE STATUS: how many charges of that status
	curl -s "$D/__double/billing/charges" | python3 -c 'import json,sys
print(sum(1 for c in json.load(sys.stdin) if c["invoice"]==sys.argv[1] and c["status"]==sys.argv[2]))' "$1" "$2"
}
sub_pause() { curl -s -H "Authorization: Bearer $KEY" "$D/v1/subscriptions/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pause_collection"])'; }
# dun AT ARGS...: one run with the clock at AT
dun() { local at=$1; shift; STRIPE_SECRET_KEY=$KEY APEXOPS_CLOCK_START=$at run_ops stripe dunning "$@"; }
ts() { date -u -d "$1" +%s; }

URL=$(new_db dunning)
export DATABASE_URL=$URL
# users with Stripe customers, subscriptions, API keys
sql "$URL" "INSERT INTO publishers (id, company_name) VALUES ('10000000-0000-4000-8000-000000000001', 'Dun Ltd');
INSERT INTO users (id, publisher_id, email, password_hash, stripe_customer_id) VALUES
 ('20000000-0000-4000-8000-00000000000a', '10000000-0000-4000-8000-000000000001', 'a@dun.test', 'x', 'cus_A'),
 ('20000000-0000-4000-8000-00000000000b', '10000000-0000-4000-8000-000000000001', 'b@dun.test', 'x', 'cus_B'),
 ('20000000-0000-4000-8000-00000000000c', '10000000-0000-4000-8000-000000000001', 'c@dun.test', 'x', NULL),
 ('20000000-0000-4000-8000-00000000000d', '10000000-0000-4000-8000-000000000001', 'd@dun.test', 'x', 'cus_D');
INSERT INTO subscriptions (customer_id, plan_type, status, plan_limit_impressions, stripe_subscription_id, stripe_customer_id,
  base_price_cents, included_impressions, billing_interval, next_billing_date, failed_payment_count) VALUES
 ('20000000-0000-4000-8000-00000000000a', 'growth', 'past_due', 1000, 'sub_A', 'cus_A', 4900, 1000, 'monthly', '2026-04-01', 1),
 ('20000000-0000-4000-8000-00000000000b', 'growth', 'past_due', 1000, 'sub_B', 'cus_B', 4900, 1000, 'monthly', '2026-04-01', 1),
 ('20000000-0000-4000-8000-00000000000c', 'starter', 'past_due', 1000, 'sub_C', 'cus_C', 1900, 1000, 'monthly', '2026-04-01', 1),
 ('20000000-0000-4000-8000-00000000000d', 'starter', 'past_due', 1000, 'sub_D', 'cus_D', 1900, 1000, 'monthly', '2026-04-01', 1);
INSERT INTO api_keys (key, user_id, status) VALUES
 ('ak_a1', '20000000-0000-4000-8000-00000000000a', 'active'),
 ('ak_b1', '20000000-0000-4000-8000-00000000000b', 'active'),
 ('ak_b2', '20000000-0000-4000-8000-00000000000b', 'active'),
 ('ak_b3', '20000000-0000-4000-8000-00000000000b', 'revoked');" >/dev/null

# ---- bad input: nothing runs, nothing is written ---------------------------
run_ops stripe dunning
expect_rc 78 "no key: exit 78"
assert_eq "no key: no table on stdout" "" "$OUT"
assert_contains "no key: the message names STRIPE_SECRET_KEY" "$ERR" "STRIPE_SECRET_KEY is not set"
STRIPE_SECRET_KEY=$KEY DUNNING_RETRY_DAYS=5,3 run_ops stripe dunning
expect_rc 78 "DUNNING_RETRY_DAYS=5,3 is refused at load"
assert_contains "naming the variable and what is allowed" "$ERR" "DUNNING_RETRY_DAYS: invalid value '5,3': expected days after the first failed payment as increasing whole numbers"
STRIPE_SECRET_KEY=$KEY run_ops stripe dunning --dry
expect_rc 64 "an abbreviated option is refused"
STRIPE_SECRET_KEY=$KEY run_ops stripe dunning extra
expect_rc 64 "an extra argument is refused"
run_ops stripe bogus
expect_rc 64 "an unknown stripe subcommand is refused"
run_ops dunning list --status bogus
expect_rc 64 "dunning list --status bogus: exit 64"
assert_contains "naming the statuses" "$ERR" "expected open, recovered, suspended or closed"
run_ops dunning show 'in_1; DROP TABLE x'
expect_rc 64 "dunning show with a bad id: exit 64"
run_ops dunning show in_nothing
expect_rc 1 "dunning show of an unknown invoice fails"
assert_contains "saying so" "$ERR" "no dunning case for invoice 'in_nothing'"
assert_eq "bad input opened no case" 0 "$(sql "$URL" "SELECT count(*) FROM apexops.dunning_cases")"

# ---- A: recovery on the second attempt (declines once, then pays) ----------
T0=2026-03-01T10:00:00Z
# explicit invoice ids: the SDK replay below resets the double
INV_A=$(seed "{\"id\":\"in_testA\",\"customer\":\"cus_A\",\"subscription\":\"sub_A\",\"amount_due\":4900,\"payment_method\":\"decline_once\",\"created\":$(ts $T0)}")
sql "$URL" "INSERT INTO billing_audit (event_type, actor, customer_id, data, created_at) VALUES
 ('payment_failed', 'webhook', '20000000-0000-4000-8000-00000000000a', '{\"invoice\": \"$INV_A\"}', '$T0')" >/dev/null

# dry-run first: reads Stripe, writes nothing, sends no POST
dun 2026-03-04T03:00:00Z --dry-run
expect_rc 0 "dry-run succeeds"
assert_contains "dry-run says it would open the case" "$OUT" "$INV_A"
assert_contains "dry-run names its mode" "$OUT" "dry-run: nothing written"
assert_eq "dry-run opened no case" 0 "$(sql "$URL" "SELECT count(*) FROM apexops.dunning_cases")"
assert_eq "dry-run sent no POST" 0 "$(curl -s "$D/__double/requests" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["method"]=="POST"))')"
assert_eq "the dry run is in the ledger as a dry-run" "dry-run succeeded" "$(sql "$URL" "SELECT mode || ' ' || status FROM apexops.job_runs WHERE job = 'dunning-retries' ORDER BY id DESC LIMIT 1")"

dun 2026-03-02T03:00:00Z
expect_rc 0 "day 1: the run opens the case"
assert_eq "case open, no attempt yet, next attempt on day 3 (UTC)" "open|0|2026-03-04 00:00:00+00|webhook|20000000-0000-4000-8000-00000000000a" \
	"$(sql "$URL" "SELECT status, attempts, next_attempt_at, opened_by, customer_id FROM apexops.dunning_cases WHERE invoice_id = '$INV_A'")"
assert_eq "the payment_failed notice names the promised retry day" "2026-03-04|a@dun.test" \
	"$(sql "$URL" "SELECT data->>'next_retry_date', data->>'to' FROM events WHERE event_type = 'email.payment_failed'")"
assert_eq "no charge before day 3" 0 "$(charges "$INV_A" failed)"

dun 2026-03-04T03:00:00Z
expect_rc 0 "day 3: attempt 1"
assert_eq "attempt 1 declined: open, next attempt on day 5, decline code kept" "open|1|2026-03-06 00:00:00+00|generic_decline" \
	"$(sql "$URL" "SELECT status, attempts, next_attempt_at, last_decline_code FROM apexops.dunning_cases WHERE invoice_id = '$INV_A'")"
assert_eq "a payment_retry event: attempt 1 of 3, 2 days until the next" "1|3|2|a@dun.test" \
	"$(sql "$URL" "SELECT data->>'attempt_number', data->>'max_retries', data->>'days_until_retry', data->>'to' FROM events WHERE event_type = 'email.payment_retry'")"
assert_eq "one declined charge in Stripe" "1 0" "$(charges "$INV_A" failed) $(charges "$INV_A" succeeded)"
assert_eq "the subscription counts one more failed payment, still past due" "past_due|2|2026-03-04 03:00:00+00" \
	"$(sql "$URL" "SELECT status, failed_payment_count, last_failed_payment_at FROM subscriptions WHERE stripe_subscription_id = 'sub_A'")"
assert_eq "the pay call carried the key of (invoice, attempt 1)" "apexops-dunning-$INV_A-attempt-1" \
	"$(curl -s "$D/__double/requests" | python3 -c 'import json,sys; print([r["headers"]["idempotency-key"] for r in json.load(sys.stdin) if r["path"].endswith("/pay")][-1])')"

dun 2026-03-05T03:00:00Z
expect_rc 0 "day 4: nothing due"
assert_eq "day 4 charged nothing" "1 0" "$(charges "$INV_A" failed) $(charges "$INV_A" succeeded)"

dun 2026-03-06T03:00:00Z
expect_rc 0 "day 5: attempt 2"
assert_eq "attempt 2 paid: recovered" "recovered|2||" \
	"$(sql "$URL" "SELECT status, attempts, next_attempt_at, pending_key FROM apexops.dunning_cases WHERE invoice_id = '$INV_A'")"
assert_eq "the subscription is active with no failed payments" "active|0" \
	"$(sql "$URL" "SELECT status, failed_payment_count FROM subscriptions WHERE stripe_subscription_id = 'sub_A'")"
assert_eq "a receipt event for the mailer" "1|49.00|2" \
	"$(sql "$URL" "SELECT count(*), max(data->>'amount_paid'), max(data->>'attempt_number') FROM events WHERE event_type = 'email.payment_succeeded_after_retry'")"
assert_eq "exactly one successful charge" "1" "$(charges "$INV_A" succeeded)"
assert_eq "Stripe: pause_collection cleared on the recovered subscription" "1 None" \
	"$(curl -s "$D/__double/requests" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["method"]=="POST" and r["path"]=="/v1/subscriptions/sub_A" and r["body"]==["pause_collection="]))') $(sub_pause sub_A)"
assert_eq "every transition has its billing_audit row" \
	"$(sql "$URL" "SELECT count(*) FROM apexops.dunning_transitions t JOIN apexops.dunning_cases c ON c.id = t.case_id WHERE c.invoice_id = '$INV_A'")" \
	"$(sql "$URL" "SELECT count(*) FROM billing_audit WHERE event_type LIKE 'dunning_%' AND data->>'invoice' = '$INV_A'")"
dun 2026-03-07T03:00:00Z
expect_rc 0 "a rerun succeeds"
assert_eq "a rerun charges nothing" "1" "$(charges "$INV_A" succeeded)"
run_ops dunning show "$INV_A"
expect_rc 0 "dunning show"
assert_contains "show: the whole history" "$OUT" "opened"
assert_contains "show: the declined attempt" "$OUT" "attempt_failed"
assert_contains "show: with its decline code" "$OUT" "declined generic_decline"
assert_contains "show: the recovery" "$OUT" "recovered"
run_ops dunning show "$INV_A" --json
assert_eq "show --json: opened, attempt_started, attempt_failed, attempt_started, recovered, stripe_resumed" \
	"opened attempt_started attempt_failed attempt_started recovered stripe_resumed" \
	"$(printf %s "$OUT" | python3 -c 'import json,sys; print(" ".join(t["kind"] for t in json.load(sys.stdin)["transitions"]))')"

# ---- B: suspension after the last attempt, reactivation when paid outside ----
T1=2026-04-01T10:00:00Z
INV_B=$(seed "{\"id\":\"in_testB\",\"customer\":\"cus_B\",\"subscription\":\"sub_B\",\"amount_due\":9900,\"payment_method\":\"pm_card_chargeCustomerFail\",\"created\":$(ts $T1)}")
sql "$URL" "INSERT INTO billing_audit (event_type, actor, data, created_at) VALUES
 ('payment_failed', 'webhook', '{\"invoice_id\": \"$INV_B\"}', '$T1')" >/dev/null
dun 2026-04-04T03:00:00Z
dun 2026-04-06T03:00:00Z
assert_eq "two declines: still open, next attempt on day 7" "open|2|2026-04-08 00:00:00+00" \
	"$(sql "$URL" "SELECT status, attempts, next_attempt_at FROM apexops.dunning_cases WHERE invoice_id = '$INV_B'")"
dun 2026-04-08T03:00:00Z
expect_rc 0 "day 7: the last attempt"
assert_eq "the last decline suspends the case" "suspended|3|" \
	"$(sql "$URL" "SELECT status, attempts, stripe_action FROM apexops.dunning_cases WHERE invoice_id = '$INV_B'")"
assert_eq "the subscription is suspended" "suspended" "$(sql "$URL" "SELECT status FROM subscriptions WHERE stripe_subscription_id = 'sub_B'")"
assert_eq "the user's active API keys are suspended (a revoked one is left alone)" "ak_b1:suspended ak_b2:suspended ak_b3:revoked" \
	"$(sql "$URL" "SELECT string_agg(key || ':' || status, ' ' ORDER BY key) FROM api_keys WHERE user_id = '20000000-0000-4000-8000-00000000000b'")"
assert_eq "Stripe: collection paused with behavior void" "{'behavior': 'void', 'resumes_at': None}" "$(sub_pause sub_B)"
assert_eq "a subscription_suspended event" "1|https://console.apexmediation.ee/billing/reactivate" \
	"$(sql "$URL" "SELECT count(*), max(data->>'reactivation_url') FROM events WHERE event_type = 'email.subscription_suspended' AND customer_id = '20000000-0000-4000-8000-00000000000b'")"
assert_eq "three declined charges, none paid" "3 0" "$(charges "$INV_B" failed) $(charges "$INV_B" succeeded)"
run_ops status
assert_contains "status: a dunning section" "$OUT" "dunning"
assert_contains "status: the suspension of the last 7 days" "$OUT" "suspended    1 now"
dun 2026-04-09T03:00:00Z
assert_eq "a suspended case is not charged again" "3 0" "$(charges "$INV_B" failed) $(charges "$INV_B" succeeded)"
ctl pay_out_of_band "{\"invoice\":\"$INV_B\"}" >/dev/null
dun 2026-04-10T03:00:00Z
expect_rc 0 "the run after the customer paid on the invoice page"
assert_eq "paid outside apexops: recovered" "recovered" "$(sql "$URL" "SELECT status FROM apexops.dunning_cases WHERE invoice_id = '$INV_B'")"
assert_eq "the subscription is active again" "active|0" "$(sql "$URL" "SELECT status, failed_payment_count FROM subscriptions WHERE stripe_subscription_id = 'sub_B'")"
assert_eq "the suspended keys are active again" "ak_b1:active ak_b2:active ak_b3:revoked" \
	"$(sql "$URL" "SELECT string_agg(key || ':' || status, ' ' ORDER BY key) FROM api_keys WHERE user_id = '20000000-0000-4000-8000-00000000000b'")"
assert_eq "Stripe: pause_collection cleared" "None" "$(sub_pause sub_B)"
assert_eq "apexops charged nothing more" "3 1" "$(charges "$INV_B" failed) $(charges "$INV_B" succeeded)"

# ---- the encoding against the official SDK -----------------------------------
curl -s "$D/__double/requests" | python3 -c 'import json,sys
# apexops sends Stripe-Version; the probes of this test do not
r=[x for x in json.load(sys.stdin) if x["headers"]["stripe-version"]]
print(json.dumps(r))' >"$E2E_TMP/c.json"
assert_eq "every POST carries an apexops-dunning key, Bearer auth and the pinned version" "ok" \
	"$(python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))
bad=[x for x in r if x["headers"]["stripe-version"]!="2023-10-16" or x["headers"]["auth_scheme"]!="Bearer" or (x["method"]=="POST" and not (x["headers"]["idempotency-key"] or "").startswith("apexops-dunning-"))]
kinds={(x["method"],x["path"].split("/")[2]) for x in r}
print("ok" if r and not bad and ("POST","subscriptions") in kinds and ("GET","invoices") in kinds else (bad[:2], kinds))' "$E2E_TMP/c.json")"
node "$PEERS_JS/stripe-sdk-replay.mjs" "$E2E_TMP/c.json" "$D" >"$E2E_TMP/sdk.json" 2>"$E2E_TMP/sdk.err"
assert_eq "the official stripe SDK sends the same method, path, parameters and headers (list, retrieve, pay, pause, resume)" "same" \
	"$(python3 -c 'import json,sys
c=json.load(open(sys.argv[1])); s=json.load(open(sys.argv[2]))
k=lambda x:(x["method"],x["path"],sorted(x["query"]),sorted(x["body"]),x["headers"]["stripe-version"],x["headers"]["idempotency-key"],x["headers"]["content-type"])
print("same" if len(c)==len(s) and all(k(a)==k(b) for a,b in zip(c,s)) else [ (k(a),k(b)) for a,b in zip(c,s) if k(a)!=k(b)][:2] or (len(c),len(s)))' "$E2E_TMP/c.json" "$E2E_TMP/sdk.json")"
assert_eq "the resumes are pause_collection= (empty), as the SDK encodes ''" "2" \
	"$(python3 -c 'import json,sys; print(sum(1 for x in json.load(open(sys.argv[1])) if x["body"]==["pause_collection="]))' "$E2E_TMP/c.json")"

# ---- C: a crash between the pay call and its commit ---------------------------
T2=2026-05-01T10:00:00Z
INV_C=$(seed "{\"id\":\"in_testC\",\"customer\":\"cus_A\",\"subscription\":\"sub_A\",\"amount_due\":4900,\"payment_method\":\"pm_card_visa\",\"created\":$(ts $T2)}")
sql "$URL" "INSERT INTO billing_audit (event_type, actor, data, created_at) VALUES ('payment_failed', 'webhook', '{\"invoice\": \"$INV_C\"}', '$T2')" >/dev/null
APEXOPS_TEST_CRASH_AFTER_PAY=1 dun 2026-05-04T03:00:00Z
expect_rc 137 "the test hook kills the run right after the pay call"
assert_eq "the intent was committed before the call" "open|0|1|apexops-dunning-$INV_C-attempt-1" \
	"$(sql "$URL" "SELECT status, attempts, pending_attempt, pending_key FROM apexops.dunning_cases WHERE invoice_id = '$INV_C'")"
assert_eq "Stripe charged once" "1" "$(charges "$INV_C" succeeded)"
ctl forget_idempotency '{}' >/dev/null # the next run comes after Stripe forgot the key
dun 2026-05-05T03:00:00Z
expect_rc 0 "the next run resolves the crashed attempt"
assert_eq "fetched first: paid, so recovered without paying again" "recovered|1" \
	"$(sql "$URL" "SELECT status, attempts FROM apexops.dunning_cases WHERE invoice_id = '$INV_C'")"
assert_eq "still exactly one charge in Stripe's ledger" "1" "$(charges "$INV_C" succeeded)"
assert_eq "no second pay call" "1" "$(curl -s "$D/__double/requests" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["path"]=="/v1/invoices/"+sys.argv[1]+"/pay"))' "$INV_C")"

# a crash after a declined call: the replay gets Stripe's stored answer
T3=2026-05-10T10:00:00Z
INV_E=$(seed "{\"id\":\"in_testE\",\"customer\":\"cus_D\",\"subscription\":\"sub_D\",\"amount_due\":1900,\"payment_method\":\"pm_card_chargeCustomerFail\",\"created\":$(ts $T3)}")
sql "$URL" "INSERT INTO billing_audit (event_type, actor, data, created_at) VALUES ('payment_failed', 'webhook', '{\"invoice\": \"$INV_E\"}', '$T3')" >/dev/null
APEXOPS_TEST_CRASH_AFTER_PAY=1 dun 2026-05-13T03:00:00Z
expect_rc 137 "killed after a declined pay call"
dun 2026-05-13T04:00:00Z
expect_rc 0 "the rerun replays the same key"
assert_eq "the replayed decline counts as attempt 1" "open|1|generic_decline" \
	"$(sql "$URL" "SELECT status, attempts, last_decline_code FROM apexops.dunning_cases WHERE invoice_id = '$INV_E'")"
assert_eq "Stripe saw one charge attempt, not two" "1" "$(charges "$INV_E" failed)"
assert_contains "the ledger row of the killed run is abandoned" "$(sql "$URL" "SELECT string_agg(status, ' ' ORDER BY id) FROM apexops.job_runs WHERE job = 'dunning-retries'")" "abandoned"

# ---- E: the schedule's days in CRON_TZ ------------------------------------------
# 20:00 UTC on March 1 is 05:00 on March 2 in Tokyo: day 3 is March 5 there
T5=2026-03-01T20:00:00Z
INV_T=$(seed "{\"id\":\"in_testT\",\"customer\":\"cus_D\",\"subscription\":\"sub_D\",\"amount_due\":1900,\"payment_method\":\"pm_card_visa\",\"created\":$(ts $T5)}")
sql "$URL" "INSERT INTO billing_audit (event_type, actor, data, created_at) VALUES ('payment_failed', 'webhook', '{\"invoice\": \"$INV_T\"}', '$T5')" >/dev/null
CRON_TZ=Asia/Tokyo dun 2026-03-02T03:00:00Z
assert_eq "the next attempt is midnight of day 3 in CRON_TZ" "2026-03-04 15:00:00+00" \
	"$(sql "$URL" "SELECT next_attempt_at FROM apexops.dunning_cases WHERE invoice_id = '$INV_T'")"
CRON_TZ=Asia/Tokyo dun 2026-03-04T14:00:00Z
assert_eq "23:00 on March 4 in Tokyo: not yet" "0" "$(charges "$INV_T" succeeded)"
CRON_TZ=Asia/Tokyo dun 2026-03-04T18:00:00Z
assert_eq "03:00 on March 5 in Tokyo: paid" "1" "$(charges "$INV_T" succeeded)"

# ---- F: two runs at once ---------------------------------------------------------
curl -s -X POST "$D/__double/reset" >/dev/null
ids=""
for i in 1 2 3 4 5 6; do
	ids="$ids $(seed "{\"id\":\"in_testP$i\",\"customer\":\"cus_P$i\",\"amount_due\":100,\"payment_method\":\"pm_card_visa\",\"created\":$(ts 2026-07-01T10:00:00Z)}")"
done
# slow the first run down: two Stripe calls a second
STRIPE_SECRET_KEY=$KEY STRIPE_MAX_RPS=2 APEXOPS_CLOCK_START=2026-07-04T03:00:00Z "$APEXOPS_BIN" stripe dunning >"$E2E_TMP/first.out" 2>"$E2E_TMP/first.err" &
FIRST=$!
wait_for "$URL" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND a.application_name = 'apexops/stripe dunning'"
ok "the first run holds the job's lock"
dun 2026-07-04T03:00:00Z
expect_rc 75 "the second run refuses (exit 75)"
assert_contains "naming the run that holds the lock" "$ERR" "another dunning run is running"
wait $FIRST
RC=$?
expect_rc 0 "the first run finishes"
double_paid=0
for i in $ids; do [ "$(charges "$i" succeeded)" = 1 ] || double_paid=1; done
assert_eq "each invoice charged exactly once" 0 "$double_paid"

# ---- D: a missed webhook, found by reconciliation ------------------------------
T4=2026-06-01T10:00:00Z
INV_D=$(seed "{\"id\":\"in_testD1\",\"customer\":\"cus_C\",\"subscription\":\"sub_C\",\"amount_due\":1900,\"payment_method\":\"pm_card_visa\",\"created\":$(ts $T4)},{\"id\":\"in_testD0\",\"customer\":\"cus_C\",\"amount_due\":500,\"attempt_count\":0,\"created\":$(ts $T4)}")
INV_D1=${INV_D%% *} INV_D0=${INV_D##* }
dun 2026-06-02T03:00:00Z
expect_rc 0 "a run with no webhook row for the invoice"
assert_eq "reconciliation opened the case, resolving the customer through subscriptions.stripe_customer_id" \
	"open|reconciliation|20000000-0000-4000-8000-00000000000c|2026-06-04 00:00:00+00" \
	"$(sql "$URL" "SELECT status, opened_by, customer_id, next_attempt_at FROM apexops.dunning_cases WHERE invoice_id = '$INV_D1'")"
assert_eq "an open invoice without a failed attempt gets no case" 0 "$(sql "$URL" "SELECT count(*) FROM apexops.dunning_cases WHERE invoice_id = '$INV_D0'")"
run_ops dunning list --status open
assert_contains "dunning list --status open shows it" "$OUT" "$INV_D1"
assert_not_contains "and not the recovered ones" "$OUT" "$INV_A"
# many open invoices: every page of the list is read
ctl seed "{\"count\":230,\"invoices\":[{\"customer\":\"cus_X\",\"amount_due\":100,\"created\":$(ts $T4)}]}" >/dev/null
dun 2026-06-02T04:00:00Z
assert_eq "reconciliation reads every page (230 more cases)" 230 "$(sql "$URL" "SELECT count(*) FROM apexops.dunning_cases WHERE stripe_customer_id = 'cus_X'")"
assert_contains "pages follow starting_after" "$(curl -s "$D/__double/requests" | python3 -c 'import json,sys; print(" ".join(t for r in json.load(sys.stdin) if r["path"]=="/v1/invoices" for t in r["query"]))')" "starting_after=in_"

# the key from a mounted secret file, read by the run itself
printf '%s\n' "$KEY" >"$E2E_TMP/stripe.key"
STRIPE_SECRET_KEY_FILE=$E2E_TMP/stripe.key APEXOPS_CLOCK_START=2026-06-03T03:00:00Z run_ops stripe dunning
expect_rc 0 "STRIPE_SECRET_KEY_FILE works"
printf 'rk_wrong\n' >"$E2E_TMP/bad.key"
STRIPE_SECRET_KEY_FILE=$E2E_TMP/bad.key APEXOPS_CLOCK_START=2026-06-03T03:00:00Z run_ops stripe dunning
expect_rc 1 "a key the double refuses (401): the run fails"
assert_not_contains "without showing the key" "$ERR" "rk_wrong"

# a refusal that is not a decline (no payment method) is a failed attempt
INV_N=$(seed "{\"id\":\"in_testN\",\"customer\":\"cus_N\",\"amount_due\":100,\"payment_method\":\"none\",\"created\":$(ts 2026-08-01T10:00:00Z)}")
dun 2026-08-04T03:00:00Z
expect_rc 0 "a run against a customer without a payment method"
assert_eq "no payment method: attempt 1 failed, the schedule goes on" "open|1|2026-08-06 00:00:00+00|invalid_request_error" \
	"$(sql "$URL" "SELECT status, attempts, next_attempt_at, last_decline_code FROM apexops.dunning_cases WHERE invoice_id = '$INV_N'")"

# a Stripe customer no user or subscription names: the webhook row's
# customer_id decides
INV_Z=$(seed "{\"id\":\"in_testZ\",\"customer\":\"cus_Z\",\"amount_due\":100,\"payment_method\":\"pm_card_visa\",\"created\":$(ts 2026-08-01T10:00:00Z)}")
sql "$URL" "INSERT INTO billing_audit (event_type, actor, customer_id, data, created_at) VALUES
 ('payment_failed', 'webhook', '20000000-0000-4000-8000-00000000000c', '{\"invoice\": \"$INV_Z\"}', '2026-08-01T10:00:00Z')" >/dev/null
dun 2026-08-02T03:00:00Z
assert_eq "the customer comes from the webhook row when Stripe's id is unknown" "20000000-0000-4000-8000-00000000000c" \
	"$(sql "$URL" "SELECT customer_id FROM apexops.dunning_cases WHERE invoice_id = '$INV_Z'")"

# Stripe answering 429 (its limit lower than ours): retried with backoff,
# every case done, each charged once
for i in 1 2 3 4; do
	seed "{\"id\":\"in_testR$i\",\"customer\":\"cus_R$i\",\"amount_due\":100,\"payment_method\":\"pm_card_visa\",\"created\":$(ts 2026-09-01T10:00:00Z)}" >/dev/null
done
curl -s -X POST -d '{"rps":4,"burst":1}' "$D/__double/ratelimit" >/dev/null
before=$(curl -s "$D/__double/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["throttled"])')
STRIPE_MAX_RPS=100 APEXOPS_STRIPE_CONCURRENCY=4 dun 2026-09-04T03:00:00Z
expect_rc 0 "a run through Stripe's 429s succeeds"
curl -s -X POST -d '{"rps":0}' "$D/__double/ratelimit" >/dev/null
after=$(curl -s "$D/__double/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["throttled"])')
[ "$after" -gt "$before" ] && ok "the double did throttle ($((after - before)) 429s)" || not_ok "the double did throttle"
assert_eq "every throttled case recovered, each charged once" "1 1 1 1" \
	"$(for i in 1 2 3 4; do printf '%s ' "$(charges in_testR$i succeeded)"; done | sed 's/ $//')"

# ---- G: a bank debit still processing after Stripe forgot the key -------------
# Stripe's SEPA test method pm_success_de: the pay call is accepted (200) with
# the invoice still open and its payment intent processing; the double keeps
# it so until __double/billing/settle. Stripe keeps the key 24 h only: a
# replayed pay then is refused (payment_intent_unexpected_state), which must
# not count as a failed attempt.
sql "$URL" "INSERT INTO users (id, publisher_id, email, password_hash, stripe_customer_id) VALUES
 ('20000000-0000-4000-8000-00000000000e', '10000000-0000-4000-8000-000000000001', 'e@dun.test', 'x', 'cus_G'),
 ('20000000-0000-4000-8000-00000000000f', '10000000-0000-4000-8000-000000000001', 'f@dun.test', 'x', 'cus_H');
INSERT INTO subscriptions (customer_id, plan_type, status, plan_limit_impressions, stripe_subscription_id, stripe_customer_id,
  base_price_cents, included_impressions, billing_interval, next_billing_date, failed_payment_count) VALUES
 ('20000000-0000-4000-8000-00000000000e', 'growth', 'past_due', 1000, 'sub_G', 'cus_G', 4900, 1000, 'monthly', '2026-11-01', 1),
 ('20000000-0000-4000-8000-00000000000f', 'growth', 'past_due', 1000, 'sub_H', 'cus_H', 4900, 1000, 'monthly', '2026-12-01', 1);" >/dev/null
pays() { # pays INVOICE: how many pay calls the double saw for it
	curl -s "$D/__double/requests" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["path"]=="/v1/invoices/"+sys.argv[1]+"/pay"))' "$1"
}
posts() { curl -s "$D/__double/requests" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["method"]=="POST"))'; }
kinds() { sql "$URL" "SELECT string_agg(t.kind, ' ' ORDER BY t.id) FROM apexops.dunning_transitions t JOIN apexops.dunning_cases c ON c.id = t.case_id WHERE c.invoice_id = '$1'"; }
# what a run's --json says last of INVOICE: "action|attempt|detail"; a count
case_of() { printf %s "$OUT" | python3 -c 'import json,sys
c=[x for x in json.load(sys.stdin)["cases"] if x["invoice"]==sys.argv[1]][-1]
print("%s|%s|%s" % (c["action"], c.get("attempt",""), c.get("detail","")))' "$1"; }
count_of() { printf %s "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

T6=2026-10-01T10:00:00Z
INV_G=$(seed "{\"id\":\"in_testG\",\"customer\":\"cus_G\",\"subscription\":\"sub_G\",\"amount_due\":4900,\"currency\":\"eur\",\"payment_method\":\"pm_success_de\",\"created\":$(ts $T6)}")
PI_G=$(curl -s -H "Authorization: Bearer $KEY" "$D/v1/invoices/$INV_G" | python3 -c 'import json,sys; print(json.load(sys.stdin)["payment_intent"])')
sql "$URL" "INSERT INTO billing_audit (event_type, actor, data, created_at) VALUES ('payment_failed', 'webhook', '{\"invoice\": \"$INV_G\"}', '$T6')" >/dev/null
dun 2026-10-04T03:00:00Z --json
expect_rc 0 "day 3: the SEPA debit of attempt 1 is accepted"
assert_eq "accepted, not paid: the intent of attempt 1 stays" "open|0|1|apexops-dunning-$INV_G-attempt-1" \
	"$(sql "$URL" "SELECT status, attempts, pending_attempt, pending_key FROM apexops.dunning_cases WHERE invoice_id = '$INV_G'")"
assert_eq "the run counts it pending" "pending|1|open 1" "$(case_of "$INV_G") $(count_of pending)"
assert_eq "the debit is processing in Stripe: one pending charge" "processing 1" \
	"$(curl -s -H "Authorization: Bearer $KEY" "$D/v1/payment_intents/$PI_G" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])') $(charges "$INV_G" pending)"
assert_eq "Stripe's acceptance is in the history, naming the payment intent" "opened attempt_started attempt_started|accepted|$PI_G" \
	"$(kinds "$INV_G")|$(sql "$URL" "SELECT t.detail->>'result' || '|' || (t.detail->>'payment_intent') FROM apexops.dunning_transitions t JOIN apexops.dunning_cases c ON c.id = t.case_id WHERE c.invoice_id = '$INV_G' ORDER BY t.id DESC LIMIT 1")"

ctl forget_idempotency '{}' >/dev/null # a day later: Stripe no longer has the key
dun 2026-10-05T03:00:00Z --json
expect_rc 0 "day 4: the run after Stripe forgot the key"
assert_eq "apexops read the payment intent, and sent no second pay call" "1 1" \
	"$(curl -s "$D/__double/requests" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["method"]=="GET" and r["path"]=="/v1/payment_intents/"+sys.argv[1] and r["headers"]["stripe-version"]))' "$PI_G") $(pays "$INV_G")"
assert_eq "still pending: no failed attempt, the same intent" "open|0|1|apexops-dunning-$INV_G-attempt-1|" \
	"$(sql "$URL" "SELECT status, attempts, pending_attempt, pending_key, COALESCE(last_decline_code, '') FROM apexops.dunning_cases WHERE invoice_id = '$INV_G'")"
assert_eq "noted pending with the intent's status, counted pending, nothing declined" "pending|1|processing (payment intent $PI_G) 1 0" \
	"$(case_of "$INV_G") $(count_of pending) $(count_of declined)"
assert_eq "no transition written, the subscription and the emails untouched" "opened attempt_started attempt_started|past_due|1|0" \
	"$(kinds "$INV_G")|$(sql "$URL" "SELECT status || '|' || failed_payment_count FROM subscriptions WHERE stripe_subscription_id = 'sub_G'")|$(sql "$URL" "SELECT count(*) FROM events WHERE event_type = 'email.payment_retry' AND data->>'invoice_id' = '$INV_G'")"

before=$(posts)
dun 2026-10-05T04:00:00Z --dry-run --json
expect_rc 0 "a dry run while the debit processes"
assert_eq "the dry run reports it pending and sends no POST" "pending|1|processing (payment intent $PI_G) $before" "$(case_of "$INV_G") $(posts)"

ctl settle "{\"invoice\":\"$INV_G\",\"outcome\":\"succeeded\",\"invoice_paid\":false}" >/dev/null
dun 2026-10-06T03:00:00Z --json
assert_eq "the intent succeeded, the invoice not yet marked paid: pending, no pay call" "pending|1|succeeded (payment intent $PI_G) 1 open" \
	"$(case_of "$INV_G") $(pays "$INV_G") $(sql "$URL" "SELECT status FROM apexops.dunning_cases WHERE invoice_id = '$INV_G'")"
ctl settle "{\"invoice\":\"$INV_G\"}" >/dev/null # Stripe marks the invoice paid
dun 2026-10-07T03:00:00Z
expect_rc 0 "the run after the debit succeeded"
assert_eq "recovered on attempt 1, found on this run" "recovered|1||by apexops (found on the next run)" \
	"$(sql "$URL" "SELECT c.status, c.attempts, COALESCE(c.pending_key, ''), t.detail->>'paid' FROM apexops.dunning_cases c JOIN apexops.dunning_transitions t ON t.case_id = c.id AND t.kind = 'recovered' WHERE c.invoice_id = '$INV_G'")"
assert_eq "the subscription active with no failed payments, one debit, one pay call" "active|0 1 1" \
	"$(sql "$URL" "SELECT status || '|' || failed_payment_count FROM subscriptions WHERE stripe_subscription_id = 'sub_G'") $(charges "$INV_G" succeeded) $(pays "$INV_G")"
assert_eq "no failed attempt in its history" "opened attempt_started attempt_started recovered stripe_resumed" "$(kinds "$INV_G")"

# the debit fails (pm_failed_de): one failed attempt, read from the intent
T7=2026-11-01T10:00:00Z
INV_H=$(seed "{\"id\":\"in_testH\",\"customer\":\"cus_H\",\"subscription\":\"sub_H\",\"amount_due\":4900,\"currency\":\"eur\",\"payment_method\":\"pm_failed_de\",\"created\":$(ts $T7)}")
sql "$URL" "INSERT INTO billing_audit (event_type, actor, data, created_at) VALUES ('payment_failed', 'webhook', '{\"invoice\": \"$INV_H\"}', '$T7')" >/dev/null
dun 2026-11-04T03:00:00Z
ctl forget_idempotency '{}' >/dev/null
dun 2026-11-05T03:00:00Z
assert_eq "while it processes, after the key is forgotten: pending, no failed attempt" "open|0|1|1" \
	"$(sql "$URL" "SELECT status, attempts, pending_attempt FROM apexops.dunning_cases WHERE invoice_id = '$INV_H'")|$(pays "$INV_H")"
ctl settle "{\"invoice\":\"$INV_H\"}" >/dev/null # the bank refuses the debit
before=$(posts)
dun 2026-11-05T04:00:00Z --dry-run --json
assert_eq "a dry run says it would record the failed attempt, and sends nothing" "would decline|1|payment_method_provider_decline $before open|0|1" \
	"$(case_of "$INV_H") $(posts) $(sql "$URL" "SELECT status, attempts, pending_attempt FROM apexops.dunning_cases WHERE invoice_id = '$INV_H'")"
dun 2026-11-05T05:00:00Z --json
expect_rc 0 "the run after the debit failed"
assert_eq "one failed attempt, with the intent's error code, the next one on day 5" "open|1||2026-11-06 00:00:00+00|payment_method_provider_decline" \
	"$(sql "$URL" "SELECT status, attempts, COALESCE(pending_attempt::text, ''), next_attempt_at, last_decline_code FROM apexops.dunning_cases WHERE invoice_id = '$INV_H'")"
assert_eq "counted declined, recorded as a decline is, without a second pay call" "declined|1|payment_method_provider_decline 1 1" \
	"$(case_of "$INV_H") $(count_of declined) $(pays "$INV_H")"
assert_eq "the subscription counts one more failed payment, a payment_retry notice" "past_due|2|1" \
	"$(sql "$URL" "SELECT status || '|' || failed_payment_count FROM subscriptions WHERE stripe_subscription_id = 'sub_H'")|$(sql "$URL" "SELECT count(*) FROM events WHERE event_type = 'email.payment_retry' AND data->>'invoice_id' = '$INV_H'")"
assert_eq "its history: accepted, then failed" "opened attempt_started attempt_started attempt_failed" "$(kinds "$INV_H")"
dun 2026-11-06T03:00:00Z
assert_eq "day 5: attempt 2 is a new debit; attempt 1 counted once" "open|1|2|2" \
	"$(sql "$URL" "SELECT status, attempts, pending_attempt FROM apexops.dunning_cases WHERE invoice_id = '$INV_H'")|$(pays "$INV_H")"

# an intent committed whose pay call never reached Stripe (an unknown
# outcome): the payment intent still requires a payment method from the
# first failure, which is no outcome of this attempt, so the pay is sent
T8=2026-12-01T10:00:00Z
INV_U=$(seed "{\"id\":\"in_testU\",\"customer\":\"cus_U\",\"amount_due\":700,\"payment_method\":\"pm_card_visa\",\"created\":$(ts $T8)}")
dun 2026-12-02T03:00:00Z
sql "$URL" "UPDATE apexops.dunning_cases SET pending_attempt = 1, pending_key = 'apexops-dunning-$INV_U-attempt-1', pending_since = now() WHERE invoice_id = '$INV_U'" >/dev/null
dun 2026-12-02T04:00:00Z
assert_eq "an attempt Stripe never received is sent, and pays" "recovered|1 1" \
	"$(sql "$URL" "SELECT status, attempts FROM apexops.dunning_cases WHERE invoice_id = '$INV_U'") $(charges "$INV_U" succeeded)"

# killed right after Stripe accepted a debit (nothing recorded it accepted):
# the next run, finding the intent processing, records the acceptance, so
# that the debit's failure later is this attempt's failure, not a call
# never received (which would send a second debit)
# failed_debit ID CUSTOMER AMOUNT AT: a EUR invoice whose SEPA debit will
# fail (pm_failed_de), created at AT, with its payment_failed webhook row
failed_debit() {
	local id
	id=$(seed "{\"id\":\"$1\",\"customer\":\"$2\",\"amount_due\":$3,\"currency\":\"eur\",\"payment_method\":\"pm_failed_de\",\"created\":$(ts "$4")}")
	sql "$URL" "INSERT INTO billing_audit (event_type, actor, data, created_at) VALUES ('payment_failed', 'webhook', '{\"invoice\": \"$id\"}', '$4')" >/dev/null
	echo "$id"
}
INV_K=$(failed_debit in_testK cus_K 700 2026-12-03T10:00:00Z)
APEXOPS_TEST_CRASH_AFTER_PAY=1 dun 2026-12-06T03:00:00Z
expect_rc 137 "killed right after the accepted debit"
assert_eq "nothing recorded the acceptance" "opened attempt_started" "$(kinds "$INV_K")"
ctl forget_idempotency '{}' >/dev/null
dun 2026-12-07T03:00:00Z --json
expect_rc 0 "the next run finds the debit processing"
assert_eq "pending, the acceptance recorded now, no second pay call" "pending|1|processing (payment intent $(curl -s -H "Authorization: Bearer $KEY" "$D/v1/invoices/$INV_K" | python3 -c 'import json,sys; print(json.load(sys.stdin)["payment_intent"])')) opened attempt_started attempt_started 1" \
	"$(case_of "$INV_K") $(kinds "$INV_K") $(pays "$INV_K")"
ctl settle "{\"invoice\":\"$INV_K\"}" >/dev/null # the bank refuses the debit
dun 2026-12-07T04:00:00Z --json
expect_rc 0 "the run after the debit failed"
assert_eq "one failed attempt, no second debit" "open|1|payment_method_provider_decline 1 0" \
	"$(sql "$URL" "SELECT status, attempts, last_decline_code FROM apexops.dunning_cases WHERE invoice_id = '$INV_K'") $(pays "$INV_K") $(charges "$INV_K" succeeded)"

# ---- H: API version 2025-03-31.basil: the invoice names no payment intent ----
# From basil the invoice has no payment_intent (nor charge, paid); its
# intents are its invoice payments (GET /v1/invoice_payments?invoice=). With
# STRIPE_API_VERSION on basil: a debit accepted is recorded with the intent
# listed there, and read back after Stripe forgot the key; a run killed
# right after the pay call (nothing recorded) is followed by one that finds
# the intent through the invoice's payments, so that it neither replays the
# pay (a second debit, or a refusal counted as a failure) nor loses the
# attempt when the debit fails.
BASIL=2025-03-31.basil
bdun() { STRIPE_API_VERSION=$BASIL dun "$@"; }
pi_of() { curl -s -H "Authorization: Bearer $KEY" "$D/v1/invoices/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["payment_intent"])'; }
T10=2026-12-08T10:00:00Z
INV_J=$(seed "{\"id\":\"in_testJ\",\"customer\":\"cus_J\",\"subscription\":\"sub_J\",\"amount_due\":900,\"currency\":\"eur\",\"payment_method\":\"pm_success_de\",\"created\":$(ts $T10)}")
PI_J=$(pi_of "$INV_J")
assert_eq "the double on basil: the invoice names no payment intent, its subscription under parent" "False sub_J" \
	"$(curl -s -H "Authorization: Bearer $KEY" -H "Stripe-Version: $BASIL" "$D/v1/invoices/$INV_J" | python3 -c 'import json,sys; i=json.load(sys.stdin); print("payment_intent" in i, i["parent"]["subscription_details"]["subscription"])')"
sql "$URL" "INSERT INTO billing_audit (event_type, actor, data, created_at) VALUES ('payment_failed', 'webhook', '{\"invoice\": \"$INV_J\"}', '$T10')" >/dev/null
bdun 2026-12-11T03:00:00Z --json
expect_rc 0 "basil, day 3: the debit of attempt 1 is accepted"
assert_eq "the acceptance names the intent listed in the invoice's payments" "pending|1|open|accepted|$PI_J" \
	"$(case_of "$INV_J")|$(sql "$URL" "SELECT t.detail->>'result' || '|' || (t.detail->>'payment_intent') FROM apexops.dunning_transitions t JOIN apexops.dunning_cases c ON c.id = t.case_id WHERE c.invoice_id = '$INV_J' ORDER BY t.id DESC LIMIT 1")"
ctl forget_idempotency '{}' >/dev/null
bdun 2026-12-12T03:00:00Z --json
expect_rc 0 "basil, day 4: the run after Stripe forgot the key"
assert_eq "pending, read from the recorded intent, no second pay call" "pending|1|processing (payment intent $PI_J) 1" \
	"$(case_of "$INV_J") $(pays "$INV_J")"
ctl settle "{\"invoice\":\"$INV_J\"}" >/dev/null # the debit succeeds
bdun 2026-12-13T03:00:00Z
expect_rc 0 "basil: the run after the debit succeeded"
assert_eq "recovered on attempt 1, one debit, one pay call" "recovered|1 1 1" \
	"$(sql "$URL" "SELECT status || '|' || attempts FROM apexops.dunning_cases WHERE invoice_id = '$INV_J'") $(charges "$INV_J" succeeded) $(pays "$INV_J")"

INV_L=$(failed_debit in_testL cus_L 800 2026-12-20T10:00:00Z)
PI_L=$(pi_of "$INV_L")
APEXOPS_TEST_CRASH_AFTER_PAY=1 bdun 2026-12-23T03:00:00Z
expect_rc 137 "basil: killed right after the accepted debit"
assert_eq "nothing recorded the acceptance" "opened attempt_started" "$(kinds "$INV_L")"
ctl forget_idempotency '{}' >/dev/null
bdun 2026-12-23T04:00:00Z --json
expect_rc 0 "basil: the next run finds the debit processing"
assert_eq "pending, the acceptance recorded now, the intent found in the invoice's payments, no second pay call" \
	"pending|1|processing (payment intent $PI_L) opened attempt_started attempt_started 1" \
	"$(case_of "$INV_L") $(kinds "$INV_L") $(pays "$INV_L")"
assert_eq "the invoice's payments were listed for it, on basil" "yes" \
	"$(curl -s "$D/__double/requests" | python3 -c 'import json,sys
rs=[r for r in json.load(sys.stdin) if r["path"]=="/v1/invoice_payments" and "invoice='"$INV_L"'" in r["query"]]
print("yes" if rs and all(r["headers"]["stripe-version"]==sys.argv[1] for r in rs) else rs)' "$BASIL")"
ctl settle "{\"invoice\":\"$INV_L\"}" >/dev/null # the bank refuses the debit
bdun 2026-12-23T05:00:00Z --json
expect_rc 0 "basil: the run after the debit failed"
assert_eq "one failed attempt with the intent's code, no second debit" "open|1|payment_method_provider_decline 1 0" \
	"$(sql "$URL" "SELECT status, attempts, last_decline_code FROM apexops.dunning_cases WHERE invoice_id = '$INV_L'") $(pays "$INV_L") $(charges "$INV_L" succeeded)"

# the basil runs' requests against the official SDK's (on that version;
# the replay resets the double, so this comes last)
curl -s "$D/__double/requests" | python3 -c 'import json,sys
print(json.dumps([x for x in json.load(sys.stdin) if x["headers"]["stripe-version"]==sys.argv[1]]))' "$BASIL" >"$E2E_TMP/cb.json"
node "$PEERS_JS/stripe-sdk-replay.mjs" "$E2E_TMP/cb.json" "$D" >"$E2E_TMP/sdkb.json" 2>"$E2E_TMP/sdkb.err"
assert_eq "on basil the official SDK sends the same requests (invoice payments, intents, invoices, pay)" "same" \
	"$(python3 -c 'import json,sys
c=json.load(open(sys.argv[1])); s=json.load(open(sys.argv[2]))
k=lambda x:(x["method"],x["path"],sorted(x["query"]),sorted(x["body"]),x["headers"]["stripe-version"],x["headers"]["idempotency-key"],x["headers"]["content-type"])
paths={x["path"].split("/")[2] for x in c}
print("same" if len(c)==len(s) and all(k(a)==k(b) for a,b in zip(c,s)) and {"invoice_payments","payment_intents","invoices"}<=paths else [ (k(a),k(b)) for a,b in zip(c,s) if k(a)!=k(b)][:2] or (len(c),len(s),paths))' "$E2E_TMP/cb.json" "$E2E_TMP/sdkb.json")"

# ---- the key never shows -----------------------------------------------------
all_out=$(cat "$E2E_TMP"/*.out "$E2E_TMP"/*.err 2>/dev/null; sql "$URL" "SELECT string_agg(coalesce(error, '') || params::text || counts::text, ' ') FROM apexops.job_runs"; sql "$URL" "SELECT string_agg(data::text, ' ') FROM billing_audit")
assert_not_contains "the secret key is in no output, ledger row or audit row" "$all_out$OUT$ERR" "$KEY"

done_testing
