#include "jobs/status.h"

#include <stddef.h>

const struct status_section status_sections[] = {
	{ NULL, NULL },
};
