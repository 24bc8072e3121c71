#include "jobs/sandbox_fixtures.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/xalloc.h"

/* §4.2: apps and their placements in the order Interstitial 01,
 * Interstitial 02, Rewarded 01, Rewarded 02, Banner 01. */
const struct sandbox_app sandbox_apps[SANDBOX_NAPPS] = {
	{ "7bcfc807-1834-4d69-a1ca-27e258f4ce75",
	  "Apex Sandbox Android",
	  "com.apex.sandbox.android",
	  "android",
	  "Android",
	  { "edcbe420-5e96-4c0f-b7ee-e5a10eb11db3",
	    "92fe3cb3-8028-4a65-aacf-c9916b2efc29",
	    "b8372490-f300-49e8-b7c2-a77fc04f85e9",
	    "631c2a8a-94b8-4448-8d56-a7cddb280ea5",
	    "47998e9f-dfbe-4ba9-922c-3001f106722e" } },
	{ "6b8213e3-b331-40b8-a32f-2bac1678e737",
	  "Apex Sandbox iOS",
	  "com.apex.sandbox.ios",
	  "ios",
	  "iOS",
	  { "26c8907d-7635-4a13-a94b-6c3b12af1779",
	    "3b94ce00-15d2-4b96-9d1e-b096cd12cdb9",
	    "ca610a0c-8607-4a38-8a21-9cbfd3018b7b",
	    "83d155c1-d3ab-413a-8d6f-bb282d4a058b",
	    "bdf98482-e3c8-4792-bc06-7e98f7184d08" } },
	{ "26c1c1eb-9fe1-4d3d-9218-6a2d863d57ac",
	  "Apex Sandbox Unity",
	  "com.apex.sandbox.unity",
	  "unity",
	  "Unity",
	  { "3d1094ab-a85b-4737-a749-d8a153a0f026",
	    "7f7f250e-48c0-4a89-9015-5c6cea325b3e",
	    "074b2dc7-3173-4da0-aba0-250f3f129df1",
	    "e159286d-7f60-437c-9f58-83aebdcdbf13",
	    "f6e7aa9b-09c5-4644-bf56-f8ab781ac62d" } },
	{ "3a6dac72-aa81-44af-909c-5b48ab9cbe67",
	  "Apex Sandbox Android TV/CTV",
	  "com.apex.sandbox.androidtv",
	  "android_tv",
	  "Android TV",
	  { "28f1d412-71d4-486b-93c7-e3d7101f2b2c",
	    "15d8efc7-0e45-4eb8-9eec-47eedb8424bb",
	    "916aa3f1-b875-45f9-b672-bb6461ceadf4",
	    "430810ca-0549-4755-ae74-cd0df596cfee",
	    "1a5c9eca-b8b7-4b9a-b8a7-2ec5942d5645" } },
	{ "f79cd436-751a-4e26-b2cc-298d1029f794",
	  "Apex Sandbox tvOS",
	  "com.apex.sandbox.tvos",
	  "tvos",
	  "tvOS",
	  { "8a94e8fd-8995-4b17-b308-38f1104d1e84",
	    "d8f4ec50-cde4-47b7-a139-ed02bd1f88d8",
	    "090ce110-b9dc-4722-93dd-8bd3fcfdb2e0",
	    "24ed4867-b16e-4a4b-b8ac-43dd05788a81",
	    "f7defcdc-33e5-41f3-8577-2bceb73015d3" } },
};

const char *const sandbox_placement_types[SANDBOX_NPLACEMENTS] = {
	"interstitial", "interstitial", "rewarded", "rewarded", "banner"
};
const char *const sandbox_placement_labels[SANDBOX_NPLACEMENTS] = {
	"Interstitial 01", "Interstitial 02", "Rewarded 01", "Rewarded 02",
	"Banner 01"
};

/* §4.1 */
const struct sandbox_user sandbox_users[SANDBOX_NUSERS] = {
	{ SANDBOX_OWNER_ID, "owner@apex-sandbox.test", "owner" },
	{ "6348ae56-dcd1-474a-9563-f6cf5f96395e", "dev@apex-sandbox.test",
	  "developer" },
	{ "1f13d605-e292-4a31-9532-5eeace27d601", "finance@apex-sandbox.test",
	  "finance" },
};

const struct sandbox_adapter sandbox_adapters[SANDBOX_NADAPTERS] = {
	{ "FakeNetworkA", "a7f66258-6c5c-462f-9ff4-126886c1d7d3",
	  "038fec38-d1c4-4bc0-8745-33d3289b2839", "always_fill", 180, 12.5, 1 },
	{ "FakeNetworkB", "ca13eef0-bdbd-4475-823f-93c5b2932d6d",
	  "6f4b66b9-c7a1-42df-92b7-c3b5808140ea", "random_fill", 450, 8.1,
	  0.55 },
	{ "FakeNetworkC", "dc801f21-749c-46ae-ad33-ded15da2f5f0",
	  "69ac363f-73cb-46b1-afc3-a9db2d2b1f99", "slow_timeout", 1500, 5.3,
	  0.35 },
};

void
sandbox_placement_name(const struct sandbox_app *a, int p, char *buf,
		       size_t len)
{
	snprintf(buf, len, "%s %s", a->platform_word,
		 sandbox_placement_labels[p]);
}

int
sandbox_placement_index(const char *id)
{
	if (id == NULL)
		return -1;
	for (int a = 0; a < SANDBOX_NAPPS; a++)
		for (int p = 0; p < SANDBOX_NPLACEMENTS; p++)
			if (strcmp(sandbox_apps[a].placement_ids[p], id) == 0)
				return a * SANDBOX_NPLACEMENTS + p;
	return -1;
}

char *
sandbox_placement_id_array(void)
{
	struct buf b = BUF_INIT;

	buf_adds(&b, "{");
	for (int a = 0; a < SANDBOX_NAPPS; a++)
		for (int p = 0; p < SANDBOX_NPLACEMENTS; p++)
			buf_addf(&b, "%s%s", a + p > 0 ? "," : "",
				 sandbox_apps[a].placement_ids[p]);
	buf_adds(&b, "}");
	return buf_detach(&b);
}

void
sandbox_format_number(double x, char *buf, size_t len)
{
	/* the shortest %.*g that reads back exactly: 8.1, not 8.0999... */
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			return;
	}
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
sandbox_uuid5(const char *ns, const char *name, char out[37])
{
	unsigned char bytes[16], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	int nb = 0, ok;

	for (const char *p = ns; *p != '\0'; p++) {
		int hi, lo;

		if (*p == '-')
			continue;
		hi = hexval(p[0]);
		lo = p[1] != '\0' ? hexval(p[1]) : -1;
		if (hi < 0 || lo < 0 || nb == 16)
			return OPS_E_INVALID;
		bytes[nb++] = (unsigned char)(hi << 4 | lo);
		p++;
	}
	if (nb != 16)
		return OPS_E_INVALID;
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, bytes, 16) == 1 &&
	     EVP_DigestUpdate(ctx, name, strlen(name)) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return OPS_E_INVALID;
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* version 5 */
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8],
		 md[9], md[10], md[11], md[12], md[13], md[14], md[15]);
	return 0;
}

int
sandbox_waterfall_id(const char *placement_id, char out[37])
{
	char name[64];

	snprintf(name, sizeof(name), "waterfall:%s", placement_id);
	return sandbox_uuid5(SANDBOX_PUBLISHER_ID, name, out);
}

char *
sandbox_adapter_config_json(const struct sandbox_adapter *a)
{
	char fill[32], ecpm[32];

	sandbox_format_number(a->fill_rate, fill, sizeof(fill));
	sandbox_format_number(a->ecpm, ecpm, sizeof(ecpm));
	/* jsonb normalises spacing; the key order is the original's */
	return xasprintf("{\"behavior\": \"%s\", \"fillRate\": %s, "
			 "\"timeoutMs\": %d, \"targetEcpm\": %s}",
			 a->behavior, fill, a->timeout_ms, ecpm);
}

char *
sandbox_waterfall_priorities_json(void)
{
	json_t *arr = json_array();
	char *s;

	for (int i = 0; i < SANDBOX_NADAPTERS; i++) {
		const struct sandbox_adapter *a = &sandbox_adapters[i];

		json_array_append_new(
			arr, json_pack("{s:s, s:i, s:i, s:s}", "adapter_id",
				       a->id, "priority", i + 1, "timeout_ms",
				       a->timeout_ms, "notes", a->behavior));
	}
	s = json_dumps(arr, JSON_PRESERVE_ORDER | JSON_COMPACT);
	json_decref(arr);
	if (s == NULL)
		abort(); /* out of memory */
	return s;
}
