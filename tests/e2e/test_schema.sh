#!/usr/bin/env bash
# The platform baseline and retention-index migrations, driven through
# `apexops migrate` as an operator would:
#   (a) an empty database gets every platform table, with the original's
#       effective shapes, and a second `up` is a no-op;
#   (b) adoption: a copy of a legacy Apex production database keeps every
#       column, constraint, index and row through `up`, and `down` back to
#       zero takes back only what apexops added;
#   (c) down to zero then up again gives an identical pg_dump --schema-only.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export APEXOPS_MIGRATIONS_DIR="$ROOT/migrations/postgres"
FIXTURE="$ROOT/tests/fixtures/legacy_schema.sql"

TABLES="publishers users apps placements adapters adapter_configs revenue_events
waterfall_configs usage_events usage_records billing_audit subscriptions
invoices payment_failures events usage_alerts api_keys stripe_webhook_events"

mig() { # mig URL ARGS...: apexops migrate against URL; sets OUT, ERR, RC
	local url=$1
	shift
	OUT=$(DATABASE_URL=$url "$APEXOPS_BIN" migrate "$@" 2>"$E2E_TMP/stderr")
	RC=$?
	ERR=$(cat "$E2E_TMP/stderr")
}
applied_count() { sql "$1" "SELECT count(*) FROM apexops.schema_migrations"; }

# the shape of schema public: columns, constraints, indexes (one per line)
shape() {
	psql -X -At -v ON_ERROR_STOP=1 "$1" <<'SQL'
SELECT 'col ' || table_name || '.' || column_name || ' #' || ordinal_position
	|| ' ' || data_type || coalesce('(' || character_maximum_length || ')', '')
	|| coalesce(' p' || numeric_precision || ',' || numeric_scale, '')
	|| ' null=' || is_nullable || ' default=' || coalesce(column_default, '-')
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'con ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'ext ' || extname FROM pg_extension
ORDER BY 1
SQL
}

# a digest of the legacy rows, over the columns the legacy schema has
rows_digest() {
	sql "$1" "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
	SELECT 'p' || (id, company_name, created_at)::text AS x FROM publishers
	UNION ALL SELECT 'u' || (id, publisher_id, email, password_hash, created_at,
		role, stripe_customer_id, api_key)::text FROM users
	UNION ALL SELECT 'a' || (id, publisher_id, name, bundle_id, platform)::text FROM apps
	UNION ALL SELECT 'l' || (id, app_id, name, type, status)::text FROM placements
	UNION ALL SELECT 'e' || (id, customer_id, event_name, event_value, event_metadata,
		created_at, stripe_synced, stripe_synced_at)::text FROM usage_events
	UNION ALL SELECT 'b' || (id, event_type, actor, customer_id, data, created_at)::text
		FROM billing_audit
	UNION ALL SELECT 's' || (id, customer_id, plan_type, status, next_billing_date)::text
		FROM subscriptions
	UNION ALL SELECT 'f' || (id, publisher_id, type, details)::text FROM fraud_alerts
	UNION ALL SELECT 'm' || version FROM schema_migrations) t"
}

schema_dump() { # pg_dump --schema-only minus comments and per-run restrict keys
	pg_dump --schema-only --no-owner "$1" | grep -v -e '^--' -e '^\\restrict ' -e '^\\unrestrict '
}

# ---- (a) empty database ---------------------------------------------------
url=$(empty_db schema_a) || exit 1
mig "$url" up
expect_rc 0 "migrate up on an empty database succeeds"
missing=""
for t in $TABLES; do
	[ "$(sql "$url" "SELECT to_regclass('public.$t') IS NOT NULL")" = t ] || missing="$missing $t"
done
assert_eq "every platform table exists after up" "" "$missing"
assert_eq "dunning_attempts is not part of the baseline" "" \
	"$(sql "$url" "SELECT to_regclass('public.dunning_attempts')")"
assert_eq "users.role: varchar(50) not null default 'customer'" \
	"character varying|50|NO|'customer'::character varying" \
	"$(sql "$url" "SELECT data_type || '|' || character_maximum_length || '|' || is_nullable || '|' || column_default
		FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'role'")"
assert_eq "users.role has no CHECK" "0" \
	"$(sql "$url" "SELECT count(*) FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'c'")"
assert_eq "users has stripe_customer_id and api_key, unique" "2" \
	"$(sql "$url" "SELECT count(*) FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'u'
		AND conname IN ('users_stripe_customer_id_key', 'users_api_key_key')")"
assert_eq "users has no is_active" "0" \
	"$(sql "$url" "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'is_active'")"
assert_eq "adapters.id has no default" "" \
	"$(sql "$url" "SELECT column_default FROM information_schema.columns WHERE table_name = 'adapters' AND column_name = 'id'")"
assert_eq "revenue_events has no created_at" "0" \
	"$(sql "$url" "SELECT count(*) FROM information_schema.columns WHERE table_name = 'revenue_events' AND column_name = 'created_at'")"
assert_eq "placements.config jsonb default '{}' and no publisher_id" "jsonb|'{}'::jsonb|0" \
	"$(sql "$url" "SELECT data_type || '|' || column_default || '|' || (SELECT count(*) FROM information_schema.columns
		WHERE table_name = 'placements' AND column_name = 'publisher_id')
		FROM information_schema.columns WHERE table_name = 'placements' AND column_name = 'config'")"
assert_eq "usage_events.created_at is nullable" "YES" \
	"$(sql "$url" "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'usage_events' AND column_name = 'created_at'")"
assert_eq "usage_events indexes, retention one included" \
	"idx_usage_events_created,idx_usage_events_created_at,idx_usage_events_customer,idx_usage_events_name,idx_usage_events_synced" \
	"$(sql "$url" "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes
		WHERE tablename = 'usage_events' AND indexname LIKE 'idx_%'")"
assert_eq "billing_audit indexes, retention one included" \
	"idx_billing_audit_actor,idx_billing_audit_created,idx_billing_audit_created_at,idx_billing_audit_customer,idx_billing_audit_event_type" \
	"$(sql "$url" "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes
		WHERE tablename = 'billing_audit' AND indexname LIKE 'idx_%'")"
assert_eq "foreign keys keep the original ON DELETE rules" \
	"billing_audit:n,events:c,invoices:c,invoices:n,payment_failures:c,payment_failures:c,usage_events:c,usage_records:r,users:a,waterfall_configs:c,waterfall_configs:c" \
	"$(sql "$url" "SELECT string_agg(conrelid::regclass::text || ':' || confdeltype::text, ',' ORDER BY conrelid::regclass::text, confdeltype)
		FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text IN
		('billing_audit','events','invoices','payment_failures','usage_events','usage_records','users','waterfall_configs')")"
assert_eq "subscriptions CHECKs after 017/028" \
	"CHECK ((payment_processor = ANY (ARRAY['stripe'::text, 'paddle'::text, 'manual'::text])))|CHECK (((plan_type)::text = ANY ((ARRAY['starter'::character varying, 'growth'::character varying, 'scale'::character varying, 'enterprise'::character varying])::text[])))|CHECK (((status)::text = ANY ((ARRAY['trial'::character varying, 'active'::character varying, 'past_due'::character varying, 'cancelled'::character varying, 'suspended'::character varying])::text[])))" \
	"$(sql "$url" "SELECT string_agg(pg_get_constraintdef(oid), '|' ORDER BY conname) FROM pg_constraint
		WHERE conrelid = 'subscriptions'::regclass AND contype = 'c'")"
assert_eq "subscriptions periods are DATE, trial_end renamed" "date|date|date" \
	"$(sql "$url" "SELECT string_agg(data_type, '|' ORDER BY column_name) FROM information_schema.columns
		WHERE table_name = 'subscriptions' AND column_name IN ('current_period_start', 'current_period_end', 'trial_end_date')")"
before=$(shape "$url")
mig "$url" up
expect_rc 0 "a second migrate up succeeds"
assert_contains "a second migrate up applies nothing" "$OUT" "applied 0 migration(s)"
assert_eq "a second migrate up changes no schema" "$before" "$(shape "$url")"

# ---- (b) adoption of a legacy production database -------------------------
url=$(empty_db schema_b) || exit 1
if psql -X -q -v ON_ERROR_STOP=1 "$url" -f "$FIXTURE" >/dev/null 2>"$E2E_TMP/fixture.err"; then
	ok "legacy fixture loads"
else
	not_ok "legacy fixture loads" "$(cat "$E2E_TMP/fixture.err")"
fi
# a hand-dropped index: up must add it back, down must take it away again
sql "$url" "DROP INDEX idx_waterfall_active" >/dev/null
shape_before=$(shape "$url")
rows_before=$(rows_digest "$url")
mig "$url" up
expect_rc 0 "migrate up on the legacy database succeeds"
shape_up=$(shape "$url")
lost=$(comm -23 <(printf '%s\n' "$shape_before") <(printf '%s\n' "$shape_up"))
assert_eq "up keeps every legacy column, constraint and index unchanged" "" "$lost"
assert_eq "up keeps every legacy row" "$rows_before" "$(rows_digest "$url")"
assert_eq "up adds placements.config to the legacy table" "jsonb" \
	"$(sql "$url" "SELECT data_type FROM information_schema.columns WHERE table_name = 'placements' AND column_name = 'config'")"
assert_eq "up adds the missing idx_waterfall_active" "1" \
	"$(sql "$url" "SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_waterfall_active'")"
assert_eq "up creates api_keys, which no legacy migration made" "t" \
	"$(sql "$url" "SELECT to_regclass('public.api_keys') IS NOT NULL")"
assert_eq "baseline records only what it added" \
	"api_keys column:placements.config index:idx_waterfall_active" \
	"$(sql "$url" "SELECT string_agg(table_name, ' ' ORDER BY table_name) FROM apexops.baseline_created")"
n=$(applied_count "$url")
mig "$url" down "$n"
expect_rc 0 "migrate down $n without --execute previews"
assert_eq "the preview changes nothing" "$shape_up" "$(shape "$url")"
mig "$url" down "$n" --execute
expect_rc 0 "migrate down $n --execute succeeds"
assert_eq "down to zero leaves no applied migration" "0" "$(applied_count "$url")"
assert_eq "down to zero restores the legacy schema exactly" "$shape_before" "$(shape "$url")"
assert_eq "down to zero keeps every legacy row" "$rows_before" "$(rows_digest "$url")"
assert_eq "the legacy retention indexes survive down" "2" \
	"$(sql "$url" "SELECT count(*) FROM pg_indexes WHERE indexname IN
		('idx_usage_events_created_at', 'idx_billing_audit_created_at')")"
assert_eq "down drops apexops.baseline_created" "" \
	"$(sql "$url" "SELECT to_regclass('apexops.baseline_created')")"

# ---- (c) down to zero then up gives the same schema ------------------------
url=$(empty_db schema_c) || exit 1
mig "$url" up
expect_rc 0 "migrate up on a fresh database succeeds"
schema_dump "$url" >"$E2E_TMP/dump1.sql"
n=$(applied_count "$url")
mig "$url" down "$n" --execute
expect_rc 0 "migrate down $n --execute on the fresh database succeeds"
assert_eq "down to zero leaves no table in public" "0" \
	"$(sql "$url" "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")"
assert_eq "down to zero removes pgcrypto, which up created" "0" \
	"$(sql "$url" "SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'")"
mig "$url" up
expect_rc 0 "migrate up again succeeds"
schema_dump "$url" >"$E2E_TMP/dump2.sql"
if [ -s "$E2E_TMP/dump1.sql" ] && grep -q 'CREATE TABLE public.usage_events' "$E2E_TMP/dump1.sql"; then
	ok "the schema dump holds the platform tables"
else
	not_ok "the schema dump holds the platform tables"
fi
d=$(diff "$E2E_TMP/dump1.sql" "$E2E_TMP/dump2.sql" | head -20)
assert_eq "pg_dump --schema-only is identical after down to zero and up" "" "$d"

done_testing
