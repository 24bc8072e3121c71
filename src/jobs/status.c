#include "jobs/status.h"

#include <stddef.h>

#include "jobs/privacy.h"
#include "jobs/purge.h"
#include "jobs/queue.h"
#include "stripe/dunning.h"
#include "stripe/usage.h"

const struct status_section status_sections[] = {
	{ "retention", purge_status_report },
	{ "queue", queue_status_report },
	{ "stripe usage sync", usage_status_report },
	{ "privacy requests", privacy_status_report },
	{ "dunning", dunning_status_report },
	{ NULL, NULL },
};
