/* db_check_url(): what is refused before connecting, and how it is said. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "db/db.h"

static void
test_accepts_good_urls(void **state)
{
	static const char *const good[] = {
		"postgresql://u:pw@127.0.0.1:5432/db",
		"postgres://u@localhost/db?sslmode=require",
		"postgresql://u:Sec%40ret@127.0.0.1/db",
		"postgresql://u:a%2Fb%25c@[::1]:5432/db",
		"postgresql:///db?host=/run/postgresql",
		"postgresql://h1:5432,h2:5433/db",
		"postgresql://apexops@/apexops?host=/tmp/x&port=54321",
		"host=127.0.0.1 port=5432 dbname=x user=u password='a b@c'",
		"dbname=x",
	};
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (db_check_url(good[i], &err) != 0)
			fail_msg("refused %s: %s", good[i], err.msg);
}

static void
test_refuses_bad_urls_without_echoing_secrets(void **state)
{
	static const struct {
		const char *url;
		const char *says;   /* the message must contain this */
		const char *secret; /* ... and never this */
	} bad[] = {
		{ "postgresql://u:Sec@ret@127.0.0.1/db", "%40", "ret" },
		{ "postgresql://u:Sec@ret@127.0.0.1/db", "user:password",
		  "Sec" },
		{ "postgres://u:pa/zq7@127.0.0.1/db", "%2F", "zq7" },
		{ "postgresql://u:pw@127.0.0.1:notaport/db", "port",
		  "notaport" },
		{ "postgresql://u:pw@127.0.0.1:70000/db", "1 to 65535", "pw" },
		{ "postgresql://u:secret/db", "port", "secret" },
		{ "postgresql://u:p%zzw@127.0.0.1/db", "percent-encoding",
		  "zz" },
		{ "postgresql://u:p%00w@127.0.0.1/db", "percent-encoding",
		  "p%" },
		{ "host=127.0.0.1 port=abc", "port", "abc" },
		{ "host=127.0.0.1 password=my secret", "without '='",
		  "secret" },
		{ "host=127.0.0.1 bogus_option=1", "bogus_option", "=1" },
		{ "", "empty", "\x01" },
	};
	struct ops_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ops_err_clear(&err);
		if (db_check_url(bad[i].url, &err) != OPS_E_CONFIG)
			fail_msg("accepted %s", bad[i].url);
		assert_int_equal(ops_err_exit_code(&err), 78);
		if (strstr(err.msg, bad[i].says) == NULL)
			fail_msg("%s: message lacks '%s': %s", bad[i].url,
				 bad[i].says, err.msg);
		if (strstr(err.msg, bad[i].secret) != NULL)
			fail_msg("%s: message shows '%s': %s", bad[i].url,
				 bad[i].secret, err.msg);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_good_urls),
		cmocka_unit_test(test_refuses_bad_urls_without_echoing_secrets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
