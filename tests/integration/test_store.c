/*
 * The privacy export store (src/storage/store.h). Local provider: content
 * and SHA-256 read back, modes 0700/0600, the temporary file unlisted and
 * removed on abort, a planted symbolic link or foreign directory refused,
 * traversal keys and foreign locations refused.
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

#include <cmocka.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/xalloc.h"
#include "storage/sigv4.h"
#include "storage/store.h"

static char tmpdir[] = "/tmp/store-it.XXXXXX";

static int
make_tmp(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
remove_tmp(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);

	(void)state;
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	free(cmd);
	return 0;
}

/* A local store in tmpdir/<sub> (made on first write). */
static struct store *
local_store(struct ops_config *cfg, const char *sub)
{
	struct store *s = NULL;
	struct ops_err err = OPS_ERR_INIT;

	memset(cfg, 0, sizeof(*cfg));
	cfg->privacy_export_dir = xasprintf("%s/%s", tmpdir, sub);
	if (store_open(cfg, STORE_LOCAL, NULL, &s, &err) != 0)
		fail_msg("store_open: %s", err.msg);
	return s;
}

static void
local_done(struct ops_config *cfg, struct store *s)
{
	store_free(s);
	free(cfg->privacy_export_dir);
}

static int
count_entries(const char *dir)
{
	char *cmd = xasprintf("find '%s' -mindepth 1 | wc -l", dir);
	FILE *p = popen(cmd, "r");
	int n = -1;

	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	free(cmd);
	return n;
}

static int
collect(void *arg, const char *location)
{
	struct buf *b = arg;

	buf_addf(b, "%s\n", location);
	return 0;
}

static void
read_file(const char *path, struct buf *out)
{
	FILE *fp = fopen(path, "rb");
	char chunk[4096];
	size_t n;

	assert_non_null(fp);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_addn(out, chunk, n);
	fclose(fp);
}

static void
test_names(void **state)
{
	enum store_provider p;

	(void)state;
	assert_string_equal(store_provider_name(STORE_LOCAL), "local");
	assert_string_equal(store_provider_name(STORE_S3), "s3");
	assert_string_equal(store_provider_name(STORE_GCS), "gcs");
	assert_int_equal(store_provider_parse("gcs", &p), 0);
	assert_int_equal(p, STORE_GCS);
	assert_int_equal(store_provider_parse("s3", &p), 0);
	assert_int_equal(p, STORE_S3);
	assert_int_equal(store_provider_parse("local", &p), 0);
	assert_int_equal(p, STORE_LOCAL);
	assert_int_equal(store_provider_parse("S3", &p), -1);
	assert_int_equal(store_provider_parse("", &p), -1);
	assert_int_equal(store_provider_parse(NULL, &p), -1);
	assert_int_equal(store_location_provider("/x/y", &p), 0);
	assert_int_equal(p, STORE_LOCAL);
	assert_int_equal(store_location_provider("s3://b/k", &p), 0);
	assert_int_equal(p, STORE_S3);
	assert_int_equal(store_location_provider("gs://b/k", &p), 0);
	assert_int_equal(p, STORE_GCS);
	assert_int_equal(store_location_provider("x/y", &p), -1);
	assert_int_equal(store_location_provider("http://b/k", &p), -1);
}

static void
test_local_roundtrip(void **state)
{
	static const char key[] = "t-1/u-1/1764590000000.jsonl";
	struct ops_config cfg;
	struct store *s = local_store(&cfg, "rt");
	struct store_writer *w = NULL;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	struct buf want = BUF_INIT, got = BUF_INIT, list = BUF_INIT;
	char sha[65], *path, *url = NULL;
	struct stat st;

	(void)state;
	for (int i = 0; i < 5000; i++)
		buf_addf(&want, "{\"table\":\"t\",\"record\":{\"n\":%d}}\n", i);
	assert_int_equal(
		store_writer_open(s, key, "application/x-ndjson", &w, &err), 0);
	/* in pieces of odd sizes */
	for (size_t off = 0; off < want.len; off += 777) {
		size_t n = want.len - off < 777 ? want.len - off : 777;

		assert_int_equal(store_write(w, want.data + off, n, &err), 0);
	}
	/* while writing, only a temporary exists, and it is not listed */
	assert_int_equal(store_list(s, "t-1/", collect, &list, &err), 0);
	assert_int_equal(list.len, 0);
	if (store_writer_commit(w, &obj, &err) != 0)
		fail_msg("commit: %s", err.msg);
	path = xasprintf("%s/rt/%s", tmpdir, key);
	assert_string_equal(obj.location, path);
	assert_int_equal(obj.size, (long long)want.len);
	sigv4_sha256_hex(want.data, want.len, sha);
	assert_string_equal(obj.sha256, sha);
	read_file(path, &got);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.data, want.data, want.len);
	/* modes */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	free(path);
	path = xasprintf("%s/rt/t-1/u-1", tmpdir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	free(path);
	path = xasprintf("%s/rt/t-1", tmpdir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	free(path);
	path = xasprintf("%s/rt", tmpdir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* exactly one file, no temporary left */
	assert_int_equal(count_entries(path), 3);
	free(path);
	/* exists, list, url */
	assert_int_equal(store_exists(s, obj.location, &err), 0);
	buf_reset(&list);
	assert_int_equal(store_list(s, "t-1/u-1/", collect, &list, &err), 0);
	path = xasprintf("%s\n", obj.location);
	assert_string_equal(buf_str(&list), path);
	free(path);
	buf_reset(&list);
	assert_int_equal(store_list(s, "t-1/u", collect, &list, &err), 0);
	assert_non_null(strstr(buf_str(&list), key));
	buf_reset(&list);
	assert_int_equal(store_list(s, "t-2/", collect, &list, &err), 0);
	assert_int_equal(list.len, 0);
	assert_int_equal(store_url(s, obj.location, 3600, &url, &err), 0);
	assert_string_equal(url, obj.location);
	free(url);
	/* delete, and again: a missing file is success */
	assert_int_equal(store_delete(s, obj.location, &err), 0);
	assert_int_equal(store_exists(s, obj.location, &err), OPS_E_NOTFOUND);
	assert_int_equal(store_delete(s, obj.location, &err), 0);
	/* the person's now empty directories went with it */
	path = xasprintf("%s/rt", tmpdir);
	assert_int_equal(count_entries(path), 0);
	free(path);
	buf_release(&want);
	buf_release(&got);
	buf_release(&list);
	local_done(&cfg, s);
}

static void
test_local_abort_leaves_nothing(void **state)
{
	struct ops_config cfg;
	struct store *s = local_store(&cfg, "ab");
	struct store_writer *w = NULL;
	struct ops_err err = OPS_ERR_INIT;
	struct buf list = BUF_INIT;
	char *dir = xasprintf("%s/ab/t/u", tmpdir);

	(void)state;
	assert_int_equal(
		store_writer_open(s, "t/u/1.csv", "text/csv", &w, &err), 0);
	assert_int_equal(store_write(w, "a,b\r\n", 5, &err), 0);
	/* the temporary is there while writing */
	assert_int_equal(count_entries(dir), 1);
	store_writer_abort(w);
	assert_int_equal(count_entries(dir), 0);
	assert_int_equal(store_list(s, "", collect, &list, &err), 0);
	assert_int_equal(list.len, 0);
	store_writer_abort(NULL);
	free(dir);
	buf_release(&list);
	local_done(&cfg, s);
}

static void
test_local_symlink_refused(void **state)
{
	struct ops_config cfg;
	struct store *s = local_store(&cfg, "ln");
	struct store_writer *w = NULL;
	struct ops_err err = OPS_ERR_INIT;
	char *victim = xasprintf("%s/victim", tmpdir);
	char *base = xasprintf("%s/ln", tmpdir);
	char *link = xasprintf("%s/ln/tenant", tmpdir);

	(void)state;
	assert_int_equal(mkdir(victim, 0755), 0);
	assert_int_equal(mkdir(base, 0700), 0);
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(
		store_writer_open(s, "tenant/u/1.jsonl", NULL, &w, &err),
		OPS_E_REFUSED);
	assert_null(w);
	assert_non_null(strstr(err.msg, "symbolic link"));
	assert_int_equal(count_entries(victim), 0);
	/* a symlinked user directory, one level down */
	assert_int_equal(unlink(link), 0);
	assert_int_equal(mkdir(link, 0700), 0);
	free(link);
	link = xasprintf("%s/ln/tenant/u", tmpdir);
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(
		store_writer_open(s, "tenant/u/1.jsonl", NULL, &w, &err),
		OPS_E_REFUSED);
	assert_int_equal(count_entries(victim), 0);
	/* a symlink where the file goes: the temporary is written beside
	 * it and rename replaces the link, never writing through it */
	assert_int_equal(unlink(link), 0);
	assert_int_equal(mkdir(link, 0700), 0);
	free(link);
	link = xasprintf("%s/ln/tenant/u/2.jsonl", tmpdir);
	free(victim);
	victim = xasprintf("%s/victim/file", tmpdir);
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(
		store_writer_open(s, "tenant/u/2.jsonl", NULL, &w, &err), 0);
	assert_int_equal(store_write(w, "x", 1, &err), 0);
	{
		struct store_object obj;
		struct stat st;

		assert_int_equal(store_writer_commit(w, &obj, &err), 0);
		assert_int_equal(lstat(link, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(access(victim, F_OK), -1);
	}
	free(victim);
	free(base);
	free(link);
	local_done(&cfg, s);
}

static void
test_local_foreign_owner_refused(void **state)
{
	struct ops_config cfg;
	struct store *s;
	struct store_writer *w = NULL;
	struct ops_err err = OPS_ERR_INIT;
	char *base = xasprintf("%s/own", tmpdir);
	char *dir = xasprintf("%s/own/tenant", tmpdir);

	(void)state;
	if (geteuid() != 0) {
		printf("# skip: not root (chown to another user)\n");
		free(base);
		free(dir);
		skip();
	}
	s = local_store(&cfg, "own");
	assert_int_equal(mkdir(base, 0700), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	assert_int_equal(
		store_writer_open(s, "tenant/u/1.jsonl", NULL, &w, &err),
		OPS_E_REFUSED);
	assert_non_null(strstr(err.msg, "owned by uid 65534"));
	assert_int_equal(count_entries(dir), 0);
	/* the export directory itself */
	assert_int_equal(chown(dir, 0, 0), 0);
	assert_int_equal(chown(base, 65534, 65534), 0);
	assert_int_equal(
		store_writer_open(s, "tenant/u/1.jsonl", NULL, &w, &err),
		OPS_E_REFUSED);
	assert_non_null(strstr(err.msg, "owned by uid 65534"));
	free(base);
	free(dir);
	local_done(&cfg, s);
}

static void
test_local_bad_keys_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"../x.jsonl",
		"t/../../etc/passwd",
		"/etc/passwd",
		"t//u/1.jsonl",
		"t/u/",
		"t/./u/1.jsonl",
		"t/u/.hidden",
		"t/u/a b.jsonl",
		"t/u/a\\b",
		"t/u/\xc3\xa9.jsonl",
		"t/u/1.jsonl\n",
	};
	struct ops_config cfg;
	struct store *s = local_store(&cfg, "bad");
	struct store_writer *w = NULL;
	struct ops_err err = OPS_ERR_INIT;
	struct buf longkey = BUF_INIT;
	char *url = NULL, *loc;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (store_writer_open(s, bad[i], NULL, &w, &err) !=
		    OPS_E_INVALID)
			fail_msg("key '%s' was not refused", bad[i]);
		assert_null(w);
		assert_non_null(strstr(err.msg, "is not allowed"));
	}
	while (longkey.len <= 900)
		buf_adds(&longkey, "abcdefghi/");
	buf_adds(&longkey, "x");
	assert_int_equal(
		store_writer_open(s, buf_str(&longkey), NULL, &w, &err),
		OPS_E_INVALID);
	assert_int_equal(store_list(s, "../", collect, NULL, &err),
			 OPS_E_INVALID);
	/* locations outside the export directory */
	assert_int_equal(store_delete(s, "/etc/passwd", &err), OPS_E_INVALID);
	assert_non_null(strstr(err.msg, "not in this local store"));
	loc = xasprintf("%s/bad/../x", tmpdir);
	assert_int_equal(store_delete(s, loc, &err), OPS_E_INVALID);
	assert_int_equal(store_exists(s, loc, &err), OPS_E_INVALID);
	assert_int_equal(store_url(s, loc, 60, &url, &err), OPS_E_INVALID);
	assert_null(url);
	free(loc);
	loc = xasprintf("%s/badx/t/u/1.jsonl", tmpdir);
	assert_int_equal(store_delete(s, loc, &err), OPS_E_INVALID);
	free(loc);
	assert_int_equal(store_delete(s, "s3://b/privacy-exports/t/u/1", &err),
			 OPS_E_INVALID);
	loc = xasprintf("%s/bad/t/u/1.jsonl", tmpdir);
	assert_int_equal(store_url(s, loc, 0, &url, &err), OPS_E_INVALID);
	assert_int_equal(store_url(s, loc, 604801, &url, &err), OPS_E_INVALID);
	free(loc);
	/* nothing was made */
	loc = xasprintf("%s/bad", tmpdir);
	assert_int_equal(access(loc, F_OK), -1);
	free(loc);
	buf_release(&longkey);
	local_done(&cfg, s);
}

static void
test_local_relative_dir(void **state)
{
	struct ops_config cfg;
	struct store *s = NULL;
	struct store_writer *w = NULL;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	char cwd[4096], *want;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.privacy_export_dir = "./rel//logs/./exports/";
	assert_int_equal(store_open(&cfg, STORE_LOCAL, NULL, &s, &err), 0);
	assert_int_equal(store_writer_open(s, "t/u/5.csv", NULL, &w, &err), 0);
	assert_int_equal(store_writer_commit(w, &obj, &err), 0);
	want = xasprintf("%s/rel/logs/exports/t/u/5.csv", tmpdir);
	assert_string_equal(obj.location, want);
	assert_int_equal(obj.size, 0);
	assert_string_equal(obj.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae4"
					"1e4649b934ca495991b7852b855");
	assert_int_equal(access(want, F_OK), 0);
	free(want);
	store_free(s);
	assert_int_equal(chdir(cwd), 0);
	cfg.privacy_export_dir = "";
	assert_int_equal(store_open(&cfg, STORE_LOCAL, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "PRIVACY_EXPORT_DIR"));
	store_free(NULL);
}

static void
test_local_stop_flag(void **state)
{
	volatile sig_atomic_t stop = 0;
	struct ops_config cfg;
	struct store *s = NULL;
	struct store_writer *w = NULL;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	char *dir;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.privacy_export_dir = xasprintf("%s/stop", tmpdir);
	assert_int_equal(store_open(&cfg, STORE_LOCAL, &stop, &s, &err), 0);
	assert_int_equal(store_writer_open(s, "t/u/1.csv", NULL, &w, &err), 0);
	assert_int_equal(store_write(w, "x", 1, &err), 0);
	stop = 1;
	assert_int_equal(store_write(w, "y", 1, &err), OPS_E_STOPPED);
	assert_int_equal(store_writer_commit(w, &obj, &err), OPS_E_STOPPED);
	dir = xasprintf("%s/stop/t/u", tmpdir);
	assert_int_equal(count_entries(dir), 0);
	free(dir);
	local_done(&cfg, s);
}

int
main(void)
{
	const struct CMUnitTest local[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_local_roundtrip),
		cmocka_unit_test(test_local_abort_leaves_nothing),
		cmocka_unit_test(test_local_symlink_refused),
		cmocka_unit_test(test_local_foreign_owner_refused),
		cmocka_unit_test(test_local_bad_keys_refused),
		cmocka_unit_test(test_local_relative_dir),
		cmocka_unit_test(test_local_stop_flag),
	};

	return cmocka_run_group_tests_name("local", local, make_tmp,
					   remove_tmp);
}
