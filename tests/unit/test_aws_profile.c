/*
 * The AWS shared credentials and config files (storage/aws_profile.h):
 * the parser, table-driven, the loader's files, and the order
 * s3_opts_from_env() takes values in (environment > credentials file >
 * config file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "aws_env.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "storage/aws_profile.h"
#include "storage/s3.h"

#define CRED AWS_PROFILE_CREDENTIALS
#define CONF AWS_PROFILE_CONFIG

static char tmpdir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/apexops-awsprof-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	aws_env_clear();
	setenv("HOME", tmpdir, 1); /* never the user's own ~/.aws */
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	aws_env_clear();
	log_forget_secrets();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* tmpdir/name with text in it; the path is new, the caller frees it */
static char *
write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void
check_value(const char *what, size_t i, const char *got, const char *want)
{
	if (want == NULL && got != NULL)
		fail_msg("case %zu (%s): got '%s', want none", i, what, got);
	if (want != NULL && (got == NULL || strcmp(got, want) != 0))
		fail_msg("case %zu (%s): got '%s', want '%s'", i, what,
			 got != NULL ? got : "(none)", want);
}

static void
test_parse(void **state)
{
	static const struct {
		enum aws_profile_file kind;
		const char *profile, *text;
		bool found;
		const char *id, *secret, *token, *region;
	} cases[] = {
		/* 0: sections; the three credential values */
		{ CRED, "default",
		  "[default]\naws_access_key_id = AKID1\n"
		  "aws_secret_access_key = sec/ret+1\n"
		  "aws_session_token = tok1\n",
		  true, "AKID1", "sec/ret+1", "tok1", NULL },
		/* 1: the profile asked for, not the others */
		{ CRED, "dev",
		  "[default]\naws_access_key_id = AKID1\n"
		  "[dev]\naws_access_key_id = AKIDDEV\n"
		  "aws_secret_access_key = devsecret\n"
		  "[prod]\naws_access_key_id = AKIDPROD\n",
		  true, "AKIDDEV", "devsecret", NULL, NULL },
		/* 2: "[profile x]" in the config file */
		{ CONF, "dev",
		  "[default]\nregion = us-east-1\n"
		  "[profile dev]\nregion = eu-west-1\n"
		  "aws_access_key_id = AKIDCONF\n",
		  true, "AKIDCONF", NULL, NULL, "eu-west-1" },
		/* 3: "[x]" in the config file is no profile */
		{ CONF, "dev", "[dev]\nregion = eu-west-1\n", false, NULL, NULL,
		  NULL, NULL },
		/* 4: "[profile x]" in the credentials file is no profile */
		{ CRED, "dev", "[profile dev]\naws_access_key_id = AKID\n",
		  false, NULL, NULL, NULL, NULL },
		/* 5: region is read from the config file only */
		{ CRED, "default",
		  "[default]\nregion = eu-west-1\naws_access_key_id = AKID\n",
		  true, "AKID", NULL, NULL, NULL },
		/* 6: comments: whole lines, indented, after a value past a
		 * blank, after a header without one; '#' and ';' inside a
		 * value stay */
		{ CRED, "default",
		  "# top\n; also\n[default] # c\n   # indented\n"
		  "aws_access_key_id = AKID # the id\n"
		  "aws_secret_access_key = a#b;c\t; tab comment\n"
		  "aws_session_token = t;1\n",
		  true, "AKID", "a#b;c", "t;1", NULL },
		{ CONF, "x", "[profile x];c\nregion = eu-west-1;\n", true, NULL,
		  NULL, NULL, "eu-west-1;" },
		/* 8: blanks around names, values, brackets */
		{ CONF, "x",
		  "[  profile \t x  ]  \n"
		  "aws_access_key_id=AKID\n"
		  "region\t=\t  ap-south-1   \n",
		  true, "AKID", NULL, NULL, "ap-south-1" },
		/* 9: CRLF line ends */
		{ CRED, "default",
		  "[default]\r\naws_access_key_id = AKID\r\n\r\n"
		  "aws_secret_access_key = s\r\n",
		  true, "AKID", "s", NULL, NULL },
		/* 10: empty values are given, as empty */
		{ CRED, "default",
		  "[default]\naws_access_key_id =\naws_session_token=\n", true,
		  "", NULL, "", NULL },
		/* 11: the same name twice, a section twice: the later wins */
		{ CRED, "default",
		  "[default]\naws_access_key_id = FIRST\n"
		  "aws_secret_access_key = s1\n"
		  "aws_access_key_id = SECOND\n"
		  "[other]\naws_access_key_id = OTHER\n"
		  "[default]\naws_secret_access_key = s2\n",
		  true, "SECOND", "s2", NULL, NULL },
		/* 12: sub-settings are skipped, and so are the values of
		 * other settings going on over indented lines */
		{ CONF, "default",
		  "[default]\ns3 =\n  max_concurrent_requests = 20\n"
		  "\n  # a comment among them\n"
		  "\taddressing_style = path\n"
		  "ca_bundle = /etc/x\n  and more of it\n"
		  "region = eu-north-1\n",
		  true, NULL, NULL, NULL, "eu-north-1" },
		/* 13: other sections of the config file are read, not used */
		{ CONF, "default",
		  "[sso-session s]\nsso_region = us-east-1\n"
		  "[services s]\ns3 =\n  endpoint_url = http://x\n"
		  "[default]\nregion = eu-west-2\n",
		  true, NULL, NULL, NULL, "eu-west-2" },
		/* 14: "[profile default]" wins over "[default]", both
		 * orders */
		{ CONF, "default",
		  "[default]\nregion = us-east-1\n"
		  "aws_access_key_id = PLAIN\n"
		  "[profile default]\nregion = eu-west-1\n",
		  true, NULL, NULL, NULL, "eu-west-1" },
		{ CONF, "default",
		  "[profile default]\nregion = eu-west-1\n"
		  "[default]\nregion = us-east-1\n",
		  true, NULL, NULL, NULL, "eu-west-1" },
		/* 16: a missing profile */
		{ CRED, "nope", "[default]\naws_access_key_id = AKID\n", false,
		  NULL, NULL, NULL, NULL },
		/* 17: names are case-sensitive */
		{ CRED, "default",
		  "[Default]\naws_access_key_id = A1\n"
		  "[default]\nAWS_ACCESS_KEY_ID = A2\n",
		  true, NULL, NULL, NULL, NULL },
		/* 18: no newline at the end; empty text */
		{ CRED, "default", "[default]\naws_access_key_id = LAST", true,
		  "LAST", NULL, NULL, NULL },
		{ CRED, "default", "", false, NULL, NULL, NULL, NULL },
		/* 20: a name that is no profile name, and the sections'
		 * other names */
		{ CRED, "a@b.c",
		  "[my profile]\nx = 1\n[a@b.c]\n"
		  "aws_access_key_id = AKID\n",
		  true, "AKID", NULL, NULL, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aws_profile p = AWS_PROFILE_INIT;
		struct ops_err err = OPS_ERR_INIT;

		if (aws_profile_parse(cases[i].text, strlen(cases[i].text),
				      cases[i].kind, "t", cases[i].profile, &p,
				      &err) != 0)
			fail_msg("case %zu: %s", i, err.msg);
		if (p.found != cases[i].found)
			fail_msg("case %zu: found %d", i, p.found);
		check_value("id", i, p.access_key_id, cases[i].id);
		check_value("secret", i, p.secret_access_key, cases[i].secret);
		check_value("token", i, p.session_token, cases[i].token);
		check_value("region", i, p.region, cases[i].region);
		aws_profile_release(&p);
	}
}

static void
test_parse_errors(void **state)
{
	static const struct {
		enum aws_profile_file kind;
		const char *text;
		size_t len; /* 0: strlen */
		const char *says;
	} cases[] = {
		{ CRED, "[default]\nnot a setting topSecretValue\n", 0,
		  "t:2: expected a [section] header" },
		{ CRED, "aws_secret_access_key = topSecretValue\n[default]\n",
		  0, "t:1: a setting before any [section]" },
		{ CONF, "[default\nregion = topSecretValue\n", 0,
		  "t:1: a section header must end with ']'" },
		{ CRED, "[default] topSecretValue\n", 0,
		  "t:1: a section header must end with ']'" },
		{ CRED, "[default]\n = topSecretValue\n", 0,
		  "t:2: an indented line with no setting" },
		{ CRED, "[default]\n= topSecretValue\n", 0,
		  "t:2: a setting needs a name before '='" },
		{ CRED, "[default]\n  topSecretValue\n", 0,
		  "t:2: an indented line with no setting" },
		{ CRED, "  topSecretValue\n", 0,
		  "t:1: an indented line with no setting" },
		{ CONF, "[default]\ns3 =\n  max = 1\n  topSecretValue\n", 0,
		  "t:4: expected an indented 'name = value' sub-setting" },
		{ CRED,
		  "[default]\naws_secret_access_key = abc\n  topSecretValue\n",
		  0, "t:3: the value of aws_secret_access_key goes on" },
		{ CRED, "[default]\r\n\r\nbad topSecretValue\r\n", 0,
		  "t:3: expected" },
		{ CRED, "[default]\nx = topSecretValue\0z\n", 31,
		  "t:2: a NUL byte" },
		/* a bad line in a profile not asked for is still bad */
		{ CRED, "[default]\n[other]\noops topSecretValue\n", 0,
		  "t:3: expected" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aws_profile p = AWS_PROFILE_INIT;
		struct ops_err err = OPS_ERR_INIT;
		size_t len =
			cases[i].len ? cases[i].len : strlen(cases[i].text);

		/* what p held before stays */
		p.region = xstrdup("kept-1");
		if (aws_profile_parse(cases[i].text, len, cases[i].kind, "t",
				      "default", &p, &err) != OPS_E_CONFIG)
			fail_msg("case %zu: accepted", i);
		assert_int_equal(ops_err_exit_code(&err), 78);
		if (strstr(err.msg, cases[i].says) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg,
				 cases[i].says);
		if (strstr(err.msg, "topSecretValue") != NULL)
			fail_msg("case %zu: '%s' shows the line", i, err.msg);
		assert_string_equal(p.region, "kept-1");
		assert_null(p.access_key_id);
		assert_null(p.secret_access_key);
		aws_profile_release(&p);
	}
}

/* The later text's values win, one by one; the others stay. */
static void
test_parse_lays_over(void **state)
{
	static const char conf[] = "[profile p]\nregion = eu-west-1\n"
				   "aws_access_key_id = CONFID\n"
				   "aws_secret_access_key = confsecret\n"
				   "aws_session_token = conftoken\n";
	static const char cred[] = "[p]\naws_access_key_id = CREDID\n"
				   "aws_secret_access_key = credsecret\n";
	struct aws_profile p = AWS_PROFILE_INIT;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_int_equal(
		aws_profile_parse(conf, strlen(conf), CONF, "c", "p", &p, &err),
		0);
	assert_int_equal(
		aws_profile_parse(cred, strlen(cred), CRED, "k", "p", &p, &err),
		0);
	assert_true(p.found);
	assert_string_equal(p.access_key_id, "CREDID");
	assert_string_equal(p.secret_access_key, "credsecret");
	assert_string_equal(p.session_token, "conftoken");
	assert_string_equal(p.region, "eu-west-1");
	/* a text without the profile changes nothing */
	assert_int_equal(
		aws_profile_parse("[q]\n", 4, CRED, "k", "p", &p, &err), 0);
	assert_string_equal(p.access_key_id, "CREDID");
	aws_profile_release(&p);
	assert_null(p.access_key_id);
	assert_null(p.region);
	assert_false(p.found);
	aws_profile_release(NULL);
}

static void
test_load_files(void **state)
{
	struct aws_profile p = AWS_PROFILE_INIT;
	struct ops_err err = OPS_ERR_INIT;
	char *dir, *fifo, *missing, *big, *path, *home_aws;
	struct buf text = BUF_INIT;

	(void)state;
	/* no HOME, no variable: nowhere to look, no error */
	unsetenv("HOME");
	assert_int_equal(aws_profile_load(CRED, "default", &p, &err), 0);
	assert_null(p.credentials_file);
	assert_false(p.found);
	setenv("HOME", tmpdir, 1);
	/* HOME without .aws: the default paths, nothing in them */
	assert_int_equal(aws_profile_load(CRED, "default", &p, &err), 0);
	assert_int_equal(aws_profile_load(CONF, "default", &p, &err), 0);
	path = xasprintf("%s/.aws/credentials", tmpdir);
	assert_string_equal(p.credentials_file, path);
	free(path);
	path = xasprintf("%s/.aws/config", tmpdir);
	assert_string_equal(p.config_file, path);
	free(path);
	assert_false(p.found);
	/* the default file, read */
	home_aws = xasprintf("%s/.aws", tmpdir);
	assert_int_equal(mkdir(home_aws, 0700), 0);
	free(write_file(".aws/credentials",
			"[default]\naws_access_key_id = HOMEID\n"));
	assert_int_equal(aws_profile_load(CRED, "default", &p, &err), 0);
	assert_string_equal(p.access_key_id, "HOMEID");
	/* the variable wins over the default; "~/" is HOME */
	free(write_file("named", "[default]\naws_access_key_id = NAMEDID\n"));
	setenv("AWS_SHARED_CREDENTIALS_FILE", "~/named", 1);
	assert_int_equal(aws_profile_load(CRED, "default", &p, &err), 0);
	assert_string_equal(p.access_key_id, "NAMEDID");
	/* named but missing, a directory, a FIFO: errors naming the
	 * variable and the reason */
	dir = xasprintf("%s/adir", tmpdir);
	fifo = xasprintf("%s/afifo", tmpdir);
	missing = xasprintf("%s/missing", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	{
		const struct {
			const char *var, *path, *says;
			enum aws_profile_file kind;
		} bad[] = {
			{ "AWS_SHARED_CREDENTIALS_FILE", missing,
			  "No such file", CRED },
			{ "AWS_SHARED_CREDENTIALS_FILE", dir, "is a directory",
			  CRED },
			{ "AWS_CONFIG_FILE", fifo, "is a FIFO", CONF },
			{ "AWS_CONFIG_FILE", dir, "is a directory", CONF },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			setenv(bad[i].var, bad[i].path, 1);
			ops_err_clear(&err);
			assert_int_equal(aws_profile_load(bad[i].kind,
							  "default", &p, &err),
					 OPS_E_CONFIG);
			if (strstr(err.msg, bad[i].var) == NULL ||
			    strstr(err.msg, bad[i].says) == NULL)
				fail_msg("%zu: %s", i, err.msg);
			unsetenv(bad[i].var);
		}
	}
	/* values from before an error stay */
	assert_string_equal(p.access_key_id, "NAMEDID");
	/* unreadable (root reads anything) */
	if (geteuid() != 0) {
		path = write_file("unreadable", "[default]\n");
		assert_int_equal(chmod(path, 0), 0);
		setenv("AWS_CONFIG_FILE", path, 1);
		assert_int_equal(aws_profile_load(CONF, "default", &p, &err),
				 OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "Permission denied"));
		unsetenv("AWS_CONFIG_FILE");
		free(path);
	}
	/* too big */
	while (text.len <= AWS_PROFILE_MAX_BYTES)
		buf_adds(&text, "# a comment line, over and over, until it is "
				"too big\n");
	big = write_file("big", buf_str(&text));
	buf_release(&text);
	setenv("AWS_CONFIG_FILE", big, 1);
	assert_int_equal(aws_profile_load(CONF, "default", &p, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "AWS_CONFIG_FILE"));
	assert_non_null(strstr(err.msg, "larger than"));
	unsetenv("AWS_CONFIG_FILE");
	/* malformed: the file's name and the line */
	path = write_file("bad", "[default]\nregion eu-west-1\n");
	setenv("AWS_CONFIG_FILE", path, 1);
	assert_int_equal(aws_profile_load(CONF, "default", &p, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "/bad:2: expected"));
	unsetenv("AWS_CONFIG_FILE");
	free(path);
	/* a default file that is a directory is an error too */
	path = xasprintf("%s/.aws/config", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(aws_profile_load(CONF, "default", &p, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "shared config file"));
	assert_non_null(strstr(err.msg, "is a directory"));
	assert_int_equal(rmdir(path), 0);
	free(path);
	/* AWS_PROFILE */
	assert_string_equal(aws_profile_name(), "default");
	setenv("AWS_PROFILE", "", 1);
	assert_string_equal(aws_profile_name(), "default");
	setenv("AWS_PROFILE", "dev", 1);
	assert_string_equal(aws_profile_name(), "dev");
	unsetenv("AWS_PROFILE");
	aws_profile_release(&p);
	free(dir);
	free(fifo);
	free(missing);
	free(big);
	free(home_aws);
}

/* environment > credentials file > config file, in s3_opts_from_env() */
static void
test_precedence(void **state)
{
	char *cred, *conf;
	struct s3_opts o;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	cred = write_file("p-credentials",
			  "[default]\naws_access_key_id = DEFID\n"
			  "aws_secret_access_key = defSecretValue\n"
			  "[p]\naws_access_key_id = CREDID\n"
			  "aws_secret_access_key = credSecretValue\n");
	conf = write_file("p-config",
			  "[default]\nregion = us-west-2\n"
			  "[profile p]\nregion = eu-west-3\n"
			  "aws_access_key_id = CONFID\n"
			  "aws_secret_access_key = confSecretValue\n"
			  "aws_session_token = confTokenValue\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	setenv("AWS_CONFIG_FILE", conf, 1);
	setenv("AWS_PROFILE", "p", 1);
	/* files only: credentials over config, key by key */
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.access_key_id, "CREDID");
	assert_string_equal(o.secret_access_key, "credSecretValue");
	assert_string_equal(o.session_token, "confTokenValue");
	assert_string_equal(o.region, "eu-west-3");
	assert_non_null(o.profile);
	s3_opts_release(&o);
	assert_null(o.profile);
	assert_null(o.access_key_id);
	/* one variable of the pair is not the pair: the files' */
	setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.access_key_id, "CREDID");
	s3_opts_release(&o);
	/* the environment's pair, with its own token or none */
	setenv("AWS_SECRET_ACCESS_KEY", "envSecretValue", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.access_key_id, "ENVID");
	assert_string_equal(o.secret_access_key, "envSecretValue");
	assert_null(o.session_token);
	assert_string_equal(o.region, "eu-west-3");
	s3_opts_release(&o);
	setenv("AWS_SESSION_TOKEN", "envTokenValue", 1);
	/* regions: AWS_REGION > AWS_DEFAULT_REGION > the profile's */
	setenv("AWS_DEFAULT_REGION", "ap-east-1", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.session_token, "envTokenValue");
	assert_string_equal(o.region, "ap-east-1");
	assert_null(o.profile); /* everything from the environment */
	setenv("AWS_REGION", "sa-east-1", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.region, "sa-east-1");
	/* with everything in the environment the files are not read */
	setenv("AWS_CONFIG_FILE", tmpdir, 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	s3_opts_release(&o);
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "AWS_CONFIG_FILE"));
	assert_non_null(strstr(err.msg, "is a directory"));
	assert_null(o.profile);
	setenv("AWS_CONFIG_FILE", conf, 1);
	/* the default profile when AWS_PROFILE is unset */
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_PROFILE");
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.access_key_id, "DEFID");
	assert_null(o.session_token);
	assert_string_equal(o.region, "us-west-2");
	s3_opts_release(&o);
	/* a profile that is nowhere: the message says where was looked */
	setenv("AWS_PROFILE", "nope", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "AWS_ACCESS_KEY_ID is not set"));
	assert_non_null(strstr(err.msg, "profile 'nope' (AWS_PROFILE)"));
	assert_non_null(strstr(err.msg, "shared credentials file"));
	assert_non_null(strstr(err.msg, cred));
	assert_null(strstr(err.msg, "SecretValue"));
	unsetenv("AWS_PROFILE");
	free(cred);
	free(conf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_lays_over),
		cmocka_unit_test(test_load_files),
		cmocka_unit_test(test_precedence),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
