/* The configuration rules of core/config.c and core/file.c: env and
 * secret files must be regular files (a directory is not empty, a FIFO
 * does not block). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/dotenv.h"
#include "core/log.h"

static const char *const *fake_env;

static const char *
fake_getenv(const char *name)
{
	for (size_t i = 0; fake_env[i] != NULL; i += 2)
		if (strcmp(fake_env[i], name) == 0)
			return fake_env[i + 1];
	return NULL;
}

static char tmpdir[64];
static char empty_env[96];

static int
setup(void **state)
{
	FILE *f;

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/apexops-cfg-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(empty_env, sizeof(empty_env), "%s/empty.env", tmpdir);
	f = fopen(empty_env, "w");
	if (f == NULL)
		return -1;
	fclose(f);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	log_forget_secrets();
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_files_must_be_regular(void **state)
{
	char fifo[128], missing[128];
	const char *const specials[] = { tmpdir, fifo };
	static const char *const none[] = { NULL };
	static const char *const kinds[] = { "directory", "FIFO" };

	(void)state;
	snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
	snprintf(missing, sizeof(missing), "%s/missing", tmpdir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	for (size_t i = 0; i < 2; i++) {
		const char *env[] = { "STRIPE_SECRET_KEY_FILE", specials[i],
				      NULL };
		struct ops_config cfg;
		struct ops_err err = OPS_ERR_INIT;
		struct dotenv de = DOTENV_INIT;

		/* --env-file naming it: not an empty file, and no hang */
		fake_env = none;
		assert_int_equal(
			config_load(&cfg, specials[i], fake_getenv, &err),
			OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "--env-file"));
		assert_non_null(strstr(err.msg, kinds[i]));
		assert_int_equal(ops_err_exit_code(&err), 78);
		assert_int_equal(dotenv_load(specials[i], &de, &err),
				 OPS_E_CONFIG);
		/* a secret file naming it */
		fake_env = env;
		assert_int_equal(
			config_load(&cfg, empty_env, fake_getenv, &err),
			OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "STRIPE_SECRET_KEY_FILE"));
		assert_non_null(strstr(err.msg, kinds[i]));
	}
	{
		const char *env[] = { "STRIPE_SECRET_KEY_FILE", missing, NULL };
		struct ops_config cfg;
		struct ops_err err = OPS_ERR_INIT;

		fake_env = env;
		assert_int_equal(
			config_load(&cfg, empty_env, fake_getenv, &err),
			OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "No such file"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_files_must_be_regular),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
