/*
 * For the tests of the S3 options: unset every variable
 * s3_opts_from_env() and the shared-file loader read, so that a case sees
 * only what it sets, and turn instance metadata off
 * (AWS_EC2_METADATA_DISABLED=true) with the container variables unset, so
 * that no test ever probes 169.254.169.254 or 169.254.170.2 unless it
 * sets them itself. Not thread-safe (it changes the environment): call it
 * before a test starts threads.
 */
#ifndef OPS_TESTS_AWS_ENV_H
#define OPS_TESTS_AWS_ENV_H

#include <stddef.h>
#include <stdlib.h>

static inline void
aws_env_clear(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN",
		"AWS_REGION",
		"AWS_DEFAULT_REGION",
		"AWS_ENDPOINT_URL_S3",
		"AWS_ENDPOINT_URL",
		"APEXOPS_S3_FORCE_PATH_STYLE",
		"APEXOPS_S3_SSE",
		"AWS_PROFILE",
		"AWS_SHARED_CREDENTIALS_FILE",
		"AWS_CONFIG_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT",
	};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

#endif
