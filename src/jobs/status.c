#include "jobs/status.h"

#include <stddef.h>

#include "jobs/privacy.h"
#include "jobs/purge.h"
#include "jobs/queue.h"
#include "stripe/dunning.h"
#include "stripe/usage.h"

const struct status_section status_sections[] = {
	{ "retention", NULL, purge_status_report },
	{ "queue", "apexops.queue_jobs", queue_status_report },
	{ "stripe usage sync", "apexops.stripe_usage_events",
	  usage_status_report },
	{ "privacy requests", "apexops.privacy_requests",
	  privacy_status_report },
	{ "dunning", "apexops.dunning_cases", dunning_status_report },
	{ NULL, NULL, NULL },
};
