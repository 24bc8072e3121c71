/*
 * The sandbox fixture set, in one place (ORIGINAL-SYSTEM.md §2.9, §4.1,
 * §4.2): the publisher Apex Sandbox Studio, its 5 apps and 25 placements,
 * the owner, developer and finance logins, the FakeNetworkA/B/C adapters
 * with their configs, and the derived waterfall per placement. Bootstrap
 * writes exactly these rows, revenue reads them back (the publisher, the
 * placement ids, the adapters' ids and eCPMs), and the tests check both
 * against this table (tests/unit/test_sandbox_fixtures.c,
 * tests/integration/test_revenue_write.c).
 *
 * Choices where the sources are silent: apps.platform is android, ios,
 * unity, android_tv, tvos; placement names are "<Platform> <Type> <NN>"
 * with the platform words Android, iOS, Unity, Android TV, tvOS (e.g.
 * "Android TV Rewarded 02"); placements.type is interstitial, rewarded or
 * banner. Roles are owner, developer, finance, as the original wrote them.
 *
 * Everything here is constant data or a pure function of it: safe to use
 * from several threads.
 */
#ifndef OPS_JOBS_SANDBOX_FIXTURES_H
#define OPS_JOBS_SANDBOX_FIXTURES_H

#include <stddef.h>

#define SANDBOX_PUBLISHER_ID	"138f62be-5cee-4c73-aba4-ba78ea77ab44"
#define SANDBOX_PUBLISHER_NAME	"Apex Sandbox Studio"
#define SANDBOX_OWNER_ID	"821cd756-d945-4efd-8f7c-3e7d3520a899"
#define SANDBOX_NAPPS		5
#define SANDBOX_NPLACEMENTS	5 /* per app */
#define SANDBOX_NALL_PLACEMENTS (SANDBOX_NAPPS * SANDBOX_NPLACEMENTS)
#define SANDBOX_NUSERS		3
#define SANDBOX_NADAPTERS	3

/* Waterfall rows: floor, strategy (every fixture waterfall is active). */
#define SANDBOX_WATERFALL_FLOOR_CENTS 50
#define SANDBOX_WATERFALL_STRATEGY    "static"

struct sandbox_app {
	const char *id;
	const char *name;
	const char *bundle_id;
	const char *platform;	   /* apps.platform */
	const char *platform_word; /* in placement names */
	const char *placement_ids[SANDBOX_NPLACEMENTS];
};

struct sandbox_user {
	const char *id;
	const char *email;
	const char *role;
};

/* FakeNetworkA/B/C in rotation order (§4.1): the adapter row, its config
 * row of the sandbox publisher, and the numbers both bootstrap (config
 * JSON) and revenue (impressions from eCPM) use. */
struct sandbox_adapter {
	const char *name;
	const char *id;
	const char *config_id;
	const char *behavior;
	int timeout_ms;
	double ecpm;	  /* USD per 1000 impressions; "targetEcpm" */
	double fill_rate; /* 0..1; "fillRate" */
};

extern const struct sandbox_app sandbox_apps[SANDBOX_NAPPS];
extern const struct sandbox_user sandbox_users[SANDBOX_NUSERS];
extern const struct sandbox_adapter sandbox_adapters[SANDBOX_NADAPTERS];
/* Placement kinds in id order: Interstitial 01, 02, Rewarded 01, 02,
 * Banner 01. */
extern const char *const sandbox_placement_types[SANDBOX_NPLACEMENTS];
extern const char *const sandbox_placement_labels[SANDBOX_NPLACEMENTS];

/* The name of placement p (0..SANDBOX_NPLACEMENTS-1) of app a into buf,
 * e.g. "Android TV Rewarded 01". */
void sandbox_placement_name(const struct sandbox_app *a, int p, char *buf,
			    size_t len);

/* The index (0..SANDBOX_NALL_PLACEMENTS-1, app-major) of a fixture
 * placement id, or -1 when id (may be NULL) is not one. */
int sandbox_placement_index(const char *id);

/* The 25 fixture placement ids as a uuid[] literal "{id,id,...}" for a
 * query parameter. A new string the caller frees. */
char *sandbox_placement_id_array(void);

/* RFC 4122 version-5 UUID of name in namespace ns (a UUID string); out
 * gets 36 characters and a NUL. Returns OPS_E_INVALID for a bad ns. */
int sandbox_uuid5(const char *ns, const char *name, char out[37]);

/* The fixture waterfall id of a placement: uuid5(publisher id,
 * "waterfall:<placement id>"), so a rerun never swaps a row a running demo
 * is reading. Returns OPS_E_INVALID when it cannot be derived. */
int sandbox_waterfall_id(const char *placement_id, char out[37]);

/*
 * The config JSON of an adapter, keys in the original's order:
 * {"behavior": ..., "fillRate": ..., "timeoutMs": ..., "targetEcpm": ...},
 * numbers in their shortest round-trip form (8.1, not 8.0999...). A new
 * string the caller frees.
 */
char *sandbox_adapter_config_json(const struct sandbox_adapter *a);

/* The adapter_priorities JSON array every fixture waterfall has (the three
 * adapters, priority 1..3, their timeouts, notes = behavior). A new string
 * the caller frees. */
char *sandbox_waterfall_priorities_json(void);

/* x in its shortest decimal form that strtod() reads back as x, into buf
 * (at least 32 bytes). */
void sandbox_format_number(double x, char *buf, size_t len);

#endif
