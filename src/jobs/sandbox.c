/* Sandbox bootstrap: what the database and Stripe parts share. */
#include "jobs/sandbox.h"

#include <stdio.h>
#include <string.h>

const char *const sandbox_kind_names[SBX_NKINDS] = {
	"publisher",	   "apps",	 "placements", "users", "adapters",
	"adapter_configs", "waterfalls",
};

const char *const sandbox_stripe_step_names[SBX_ST_NSTEPS] = {
	"customer",	     "card (tok_visa)", "ach (btok_us_verified)",
	"sepa (sepa_debit)", "default source",
};

int
sandbox_check_environment(const struct ops_config *cfg, bool force,
			  const char *what, struct ops_err *err)
{
	const char *var = config_production_var(cfg);
	const char *val;

	if (force || var == NULL)
		return 0;
	val = strcmp(var, "APP_ENV") == 0 ? cfg->app_env : cfg->node_env;
	return ops_fail(err, OPS_E_CONFIG, false,
			"refusing to run: %s is '%s', a production "
			"environment, and %s; pass --force to run anyway",
			var, val, what);
}

int
sandbox_report_changes(const struct sandbox_report *rep)
{
	int n = 0;

	for (int k = 0; k < SBX_NKINDS; k++)
		n += rep->kind[k].created + rep->kind[k].updated +
		     rep->kind[k].removed;
	return n;
}
