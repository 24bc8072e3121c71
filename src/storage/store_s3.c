/*
 * The S3 and GCS providers. NEEDSWORK: not built yet; opening either
 * fails with OPS_E_CONFIG.
 */
#include "storage/store_internal.h"

static int
s3_open(struct store *s, struct ops_err *err)
{
	return ops_fail(err, OPS_E_CONFIG, false,
			"PRIVACY_EXPORT_PROVIDER=%s is not built yet: use "
			"local",
			store_provider_name(s->provider));
}

static void
s3_close(struct store *s)
{
	(void)s;
}

const struct store_provider_ops store_s3_ops = {
	.open = s3_open,
	.close = s3_close,
};

const struct store_provider_ops store_gcs_ops = {
	.open = s3_open,
	.close = s3_close,
};
