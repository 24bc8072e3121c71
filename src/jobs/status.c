#include "jobs/status.h"

#include <stddef.h>

#include "jobs/job_status.h"
#include "jobs/purge.h"

const struct status_section status_sections[] = {
	{ "jobs", job_status_report },
	{ "retention", purge_status_report },
	{ NULL, NULL },
};
