/*
 * The data map (see privacy_map.h). Legal reasons cite GDPR Art. 17(3)(b)
 * (erasure does not apply where keeping is a legal obligation) and the
 * usual commercial and tax retention periods for invoices and the
 * records behind them; a data-protection officer adjusts the wording,
 * not the mechanism.
 */
#include "jobs/privacy_map.h"

#include <string.h>

#define USER   PRIVACY_MAP_USER
#define TENANT PRIVACY_MAP_TENANT

/* billing_audit.data keys that may hold personal data */
#define AUDIT_PERSONAL_KEYS                                                \
	"ARRAY['email', 'name', 'customer_email', 'customer_name', 'ip', " \
	"'ip_address', 'user_agent', 'phone', 'address', 'billing_details']"

const struct privacy_table privacy_map[] = {
	/* ---- the user's own rows ---- */
	{ "usage_events", "t.customer_id = " USER, true, NULL, NULL,
	  PRIVACY_DELETE, NULL, "true",
	  "metered usage of the user: deleted (already reported to Stripe, "
	  "which keeps its own record)" },
	{ "usage_records", "t.customer_id = " USER, true, NULL, NULL,
	  PRIVACY_DELETE, NULL, "true", "usage records of the user: deleted" },
	{ "events", "t.customer_id = " USER, true, NULL, NULL, PRIVACY_DELETE,
	  NULL, "true", "notification and processing events: deleted" },
	{ "usage_alerts", "t.customer_id = " USER, true, NULL, NULL,
	  PRIVACY_DELETE, NULL, "true",
	  "usage alerts sent to the user: deleted" },
	{ "api_keys", "t.user_id = " USER, true, NULL, "key", PRIVACY_DELETE,
	  NULL, "true", "API keys: deleted; exported masked, never in clear" },
	{ "waterfall_configs", "t.customer_id = " USER, true, NULL, NULL,
	  PRIVACY_DELETE, NULL, "true",
	  "the user's waterfall configurations: deleted" },
	{ "payment_failures", "t.customer_id = " USER, true, NULL, NULL,
	  PRIVACY_ANONYMISE, "failure_reason = 'erased'",
	  "t.failure_reason IS DISTINCT FROM 'erased'",
	  "failed payments: kept for the accounts behind the invoices "
	  "(GDPR Art. 17(3)(b), commercial and tax retention), amounts kept, "
	  "the free-text reason (may name the payer or card) cleared" },
	{ "invoices", "t.customer_id = " USER, true, NULL, NULL,
	  PRIVACY_ANONYMISE, "notes = NULL, pdf_url = NULL",
	  "t.notes IS NOT NULL OR t.pdf_url IS NOT NULL",
	  "invoices: kept for the statutory retention of invoices "
	  "(GDPR Art. 17(3)(b), tax law), amounts and numbers kept, notes "
	  "and the PDF link (which shows the name and address) cleared" },
	{ "billing_audit", "t.customer_id = " USER, true, NULL, NULL,
	  PRIVACY_ANONYMISE,
	  "actor = NULL, ip_address = NULL, user_agent = NULL, "
	  "data = t.data - " AUDIT_PERSONAL_KEYS,
	  "t.actor IS NOT NULL OR t.ip_address IS NOT NULL OR "
	  "t.user_agent IS NOT NULL OR t.data ?| " AUDIT_PERSONAL_KEYS,
	  "billing audit trail: kept as the record of billing operations "
	  "(GDPR Art. 17(3)(b)), amounts kept, actor, IP address, user agent "
	  "and personal keys of data cleared" },
	{ "subscriptions", "t.customer_id = " USER, true, NULL, NULL,
	  PRIVACY_ANONYMISE,
	  "stripe_customer_id = NULL, cancellation_reason = NULL, "
	  "metadata = '{}'::jsonb",
	  "t.stripe_customer_id IS NOT NULL OR t.cancellation_reason IS NOT "
	  "NULL OR t.metadata IS DISTINCT FROM '{}'::jsonb",
	  "the subscription contract: kept while its invoices are "
	  "(GDPR Art. 17(3)(b)), plan and prices kept, the Stripe customer "
	  "link, the free-text cancellation reason and metadata cleared" },
	{ "users", "t.id = " USER, true, "password_hash", "api_key",
	  PRIVACY_ANONYMISE,
	  "email = 'erased-' || left(encode(sha256(convert_to(t.id::text, "
	  "'UTF8')), 'hex'), 32) || '@erased.invalid', password_hash = '!', "
	  "api_key = NULL, stripe_customer_id = NULL",
	  "t.email NOT LIKE 'erased-%@erased.invalid' OR t.password_hash <> "
	  "'!' "
	  "OR t.api_key IS NOT NULL OR t.stripe_customer_id IS NOT NULL",
	  "the login: kept as the referent of the kept invoices and audit "
	  "rows, the email replaced by one derived from a hash of the id, the "
	  "password hash removed (no login possible), API key and Stripe "
	  "customer id cleared; password_hash is never exported" },
	/* ---- the tenant's records: not the user's personal data ---- */
	{ "revenue_events", "t.publisher_id = " TENANT, false, NULL, NULL,
	  PRIVACY_KEEP, NULL, NULL,
	  "the tenant's ad revenue per placement: no personal data of a "
	  "login; kept, not exported" },
	{ "adapter_configs", "t.publisher_id = " TENANT, false, NULL, NULL,
	  PRIVACY_KEEP, NULL, NULL,
	  "the tenant's ad-network credentials and settings: the "
	  "company's, not the user's; kept, not exported" },
	{ "placements",
	  "t.app_id IN (SELECT a.id FROM public.apps a WHERE a.publisher_id "
	  "= " TENANT ")",
	  false, NULL, NULL, PRIVACY_KEEP, NULL, NULL,
	  "the tenant's ad placements: no personal data; kept, not exported" },
	{ "apps", "t.publisher_id = " TENANT, false, NULL, NULL, PRIVACY_KEEP,
	  NULL, NULL,
	  "the tenant's apps: no personal data; kept, not exported" },
	{ "publishers", "t.id = " TENANT, false, NULL, NULL, PRIVACY_KEEP, NULL,
	  NULL,
	  "the tenant (a company, not a natural person); kept, not exported" },
};
const int privacy_map_count =
	(int)(sizeof(privacy_map) / sizeof(privacy_map[0]));

const struct privacy_table *
privacy_map_find(const char *name)
{
	for (int i = 0; i < privacy_map_count; i++)
		if (strcmp(privacy_map[i].name, name) == 0)
			return &privacy_map[i];
	return NULL;
}

const char *
privacy_action_name(enum privacy_action a)
{
	switch (a) {
	case PRIVACY_DELETE:
		return "delete";
	case PRIVACY_ANONYMISE:
		return "anonymise";
	case PRIVACY_KEEP:
		return "keep";
	}
	return "?";
}
