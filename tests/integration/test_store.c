/*
 * The privacy export store (src/storage/store.h).
 *
 * Local provider: content and SHA-256 read back, modes 0700/0600, the
 * temporary file unlisted and removed on abort, a planted symbolic link or
 * foreign directory refused, traversal keys and foreign locations refused.
 *
 * S3 and GCS: against s3rver behind the SigV4-checking front that uses
 * AWS's own signer (tests/peers/s3-sigv4-front.mjs), every object read back
 * with @aws-sdk/client-s3 (tests/peers/s3-sdk-get.mjs) and compared with
 * the SHA-256 the writer reported; multipart with 5 MiB parts; aborts
 * leaving no object and no pending upload (the front answers
 * ListMultipartUploads and AbortMultipartUpload, which s3rver lacks);
 * 500s, resets and timeouts injected by the front, retried; presigned
 * URLs fetched with curl; GCS with a GOOG1 HMAC key (region auto) and
 * with a service account whose OAuth2 token comes from
 * tests/peers/gcs-token-double.mjs, with a key pair made by openssl here.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/xalloc.h"
#include "http/http.h"
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

/* A file in dir, of mtime age seconds ago. */
static void
touch_old(const char *dir, const char *name, long age)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct timespec ts[2];
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs("partial", fp);
	fclose(fp);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= age;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	free(path);
}

static void
test_local_sweep(void **state)
{
	struct ops_config cfg;
	struct store *s = local_store(&cfg, "sw");
	struct store_writer *w = NULL;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	char *dir = xasprintf("%s/sw/t/u", tmpdir);
	char *other = xasprintf("%s/sw/t2/u", tmpdir);
	int n = -1;

	(void)state;
	assert_int_equal(store_writer_open(s, "t/u/1.jsonl", NULL, &w, &err),
			 0);
	assert_int_equal(store_writer_commit(w, &obj, &err), 0);
	assert_int_equal(store_writer_open(s, "t2/u/1.jsonl", NULL, &w, &err),
			 0);
	assert_int_equal(store_writer_commit(w, &obj, &err), 0);
	/* left by workers that died an hour ago, and one writing now */
	touch_old(dir, ".2.jsonl.tmp.0123456789abcdef", 3600);
	touch_old(other, ".2.jsonl.tmp.fedcba9876543210", 3600);
	touch_old(dir, ".3.jsonl.tmp.00000000000000aa", 10);
	/* not temporaries: kept whatever their age */
	touch_old(dir, ".notes", 3600);
	touch_old(dir, ".4.jsonl.tmp.xyz", 3600);
	assert_int_equal(store_sweep(s, "t/", 300, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(count_entries(dir), 4);
	assert_int_equal(count_entries(other), 2);
	assert_int_equal(store_sweep(s, "", 300, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(count_entries(other), 1);
	assert_int_equal(store_exists(s, obj.location, &err), 0);
	assert_int_equal(store_sweep(s, "", 59, &n, &err), OPS_E_INVALID);
	assert_int_equal(store_sweep(s, "../", 300, &n, &err), OPS_E_INVALID);
	assert_int_equal(store_sweep(s, "none/", 300, &n, &err), 0);
	assert_int_equal(n, 0);
	free(dir);
	free(other);
	local_done(&cfg, s);
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

/* ---- the peers: the S3 front (with s3rver) and the token double ---- */

static char root[4096];
static pid_t front_pid = -1, token_pid = -1;
static int front_port, token_port;
static char endpoint[64];
static char *keyfile, *badkeyfile;

#define SA_EMAIL "exports@apexops-test.iam.gserviceaccount.com"

/* Start node on script with env (NULL-terminated "NAME=value"), wait for
 * "<banner> on 127.0.0.1:PORT" in its log; returns the port. */
static int
start_node(const char *script, const char *banner, char *const *env, pid_t *pid)
{
	char *log = xasprintf("%s/%s.log", tmpdir, banner);
	char *path = xasprintf("%s/tests/peers/%s", root, script);
	char *pat = xasprintf("%s on 127.0.0.1:%%d", banner);
	int port = 0;

	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		FILE *out = freopen(log, "w", stdout);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (out == NULL || dup2(fileno(stdout), 2) < 0)
			_exit(127);
		for (char *const *e = env; *e != NULL; e++)
			putenv(*e);
		execlp("node", "node", "--openssl-legacy-provider",
		       "--no-warnings", path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300 && port == 0; i++) {
		FILE *fp = fopen(log, "r");
		char line[256];
		int status;

		if (fp != NULL) {
			while (port == 0 && fgets(line, sizeof(line), fp))
				(void)sscanf(line, pat, &port);
			fclose(fp);
		}
		if (port != 0)
			break;
		if (waitpid(*pid, &status, WNOHANG) == *pid)
			fail_msg("%s exited; see %s", script, log);
		usleep(100 * 1000);
	}
	if (port == 0)
		fail_msg("%s did not start in 30 s; see %s", script, log);
	free(log);
	free(path);
	free(pat);
	return port;
}

static void
run(const char *cmd)
{
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

/* A service-account key file for key.pem, token_uri at the double. */
static char *
write_keyfile(const char *name, const char *pem_path)
{
	struct buf pem = BUF_INIT;
	char *path = xasprintf("%s/%s", tmpdir, name);
	char *uri = xasprintf("http://127.0.0.1:%d/token", token_port);
	json_t *doc;

	read_file(pem_path, &pem);
	doc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "service_account",
			"project_id", "apexops-test", "client_email", SA_EMAIL,
			"private_key", buf_str(&pem), "token_uri", uri);
	assert_non_null(doc);
	assert_int_equal(json_dump_file(doc, path, JSON_INDENT(2)), 0);
	json_decref(doc);
	buf_release(&pem);
	free(uri);
	return path;
}

static int
start_peers(void **state)
{
	const char *f = __FILE__;
	const char *end = strstr(f, "/tests/integration/");
	char *cmd, *pub, *env_token[4], *env_front[10];

	(void)state;
	assert_non_null(end);
	snprintf(root, sizeof(root), "%.*s", (int)(end - f), f);
	cmd = xasprintf("cd '%s' && openssl genpkey -algorithm RSA -pkeyopt "
			"rsa_keygen_bits:2048 -out sa.pem 2>/dev/null && "
			"openssl pkey -in sa.pem -pubout -out sa.pub && "
			"openssl genpkey -algorithm RSA -pkeyopt "
			"rsa_keygen_bits:2048 -out other.pem 2>/dev/null",
			tmpdir);
	run(cmd);
	free(cmd);
	pub = xasprintf("%s/sa.pub", tmpdir);
	env_token[0] = xasprintf("PORT=0");
	env_token[1] = xasprintf("SA_EMAIL=%s", SA_EMAIL);
	env_token[2] = xasprintf("SA_PUBKEY=%s", pub);
	env_token[3] = NULL;
	token_port = start_node("gcs-token-double.mjs", "token double",
				env_token, &token_pid);
	env_front[0] = xasprintf("PORT=0");
	env_front[1] = xasprintf("S3_DIR=%s/s3data", tmpdir);
	env_front[2] = xasprintf("BUCKETS=exports,gcs-bucket");
	env_front[3] = xasprintf("EXTRA_AK=GOOG1EXAMPLEHMACKEYSTORE");
	env_front[4] = xasprintf("EXTRA_SK=gcsHmacSecret/+store");
	env_front[5] = xasprintf("TOKENINFO_URL=http://127.0.0.1:%d/tokeninfo",
				 token_port);
	env_front[6] = xasprintf("GOOG_SA_EMAIL=%s", SA_EMAIL);
	env_front[7] = xasprintf("GOOG_SA_PUBKEY=%s", pub);
	env_front[8] = NULL;
	front_port = start_node("s3-sigv4-front.mjs", "s3 front", env_front,
				&front_pid);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", front_port);
	for (int i = 0; env_token[i] != NULL; i++)
		free(env_token[i]);
	for (int i = 0; env_front[i] != NULL; i++)
		free(env_front[i]);
	free(pub);
	{
		char *p = xasprintf("%s/sa.pem", tmpdir);

		keyfile = write_keyfile("sa.json", p);
		free(p);
		p = xasprintf("%s/other.pem", tmpdir);
		badkeyfile = write_keyfile("other.json", p);
		free(p);
	}
	return 0;
}

static int
stop_peers(void **state)
{
	(void)state;
	if (front_pid > 0) {
		kill(front_pid, SIGTERM);
		waitpid(front_pid, NULL, 0);
	}
	if (token_pid > 0) {
		kill(token_pid, SIGTERM);
		waitpid(token_pid, NULL, 0);
	}
	free(keyfile);
	free(badkeyfile);
	return remove_tmp(NULL);
}

/* ---- talking to the peers' controls ---- */

static void
http_call(const char *method, int port, const char *path, const char *body,
	  struct buf *out)
{
	struct http_policy p;
	struct http_client *hc = NULL;
	struct http_response resp = HTTP_RESPONSE_INIT;
	const char *hdrs[] = { "Content-Type: application/json", NULL };
	char *url = xasprintf("http://127.0.0.1:%d%s", port, path);
	struct http_request req = { .method = method,
				    .url = url,
				    .headers = hdrs,
				    .body = body,
				    .body_len = body != NULL ? strlen(body) : 0,
				    .idempotent = true };
	struct ops_err err = OPS_ERR_INIT;

	http_policy_default(&p);
	p.max_retries = 0;
	assert_int_equal(http_client_new(&p, &hc, &err), 0);
	if (http_do(hc, &req, &resp, &err) != 0)
		fail_msg("%s %s: %s", method, url, err.msg);
	assert_int_equal(resp.status, 200);
	if (out != NULL)
		buf_addn(out, resp.body.data != NULL ? resp.body.data : "",
			 resp.body.len);
	http_response_release(&resp);
	http_client_free(hc);
	free(url);
}

static void
faults(const char *json)
{
	http_call("POST", front_port, "/__front/faults", json, NULL);
}

static void
requests_clear(void)
{
	http_call("DELETE", front_port, "/__front/requests", NULL, NULL);
}

/* How many requests the front saw with method whose url holds needle
 * (NULL: any) and status (0: any). */
static int
requests_count(const char *method, const char *needle, int status)
{
	struct buf b = BUF_INIT;
	json_t *doc, *v;
	size_t i;
	int n = 0;

	http_call("GET", front_port, "/__front/requests", NULL, &b);
	doc = json_loads(buf_str(&b), 0, NULL);
	assert_non_null(doc);
	json_array_foreach(doc, i, v)
	{
		const char *m = json_string_value(json_object_get(v, "method"));
		const char *u = json_string_value(json_object_get(v, "url"));
		int st = (int)json_integer_value(json_object_get(v, "status"));

		if (strcmp(m, method) == 0 &&
		    (needle == NULL || strstr(u, needle) != NULL) &&
		    (status == 0 || st == status))
			n++;
	}
	json_decref(doc);
	buf_release(&b);
	return n;
}

static int
pending_uploads(void)
{
	struct buf b = BUF_INIT;
	json_t *doc;
	int n;

	http_call("GET", front_port, "/__front/uploads", NULL, &b);
	doc = json_loads(buf_str(&b), 0, NULL);
	assert_non_null(doc);
	n = (int)json_array_size(doc);
	json_decref(doc);
	buf_release(&b);
	return n;
}

/* Read bucket/key back with the AWS SDK into out; 0 when it could. */
static int
sdk_get(const char *region, const char *ak, const char *sk, const char *bucket,
	const char *key, struct buf *out)
{
	char *file = xasprintf("%s/sdk-get.out", tmpdir);
	char *script = xasprintf("%s/tests/peers/s3-sdk-get.mjs", root);
	int status = -1;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, 2);
		execlp("node", "node", "--no-warnings", script, endpoint,
		       region, ak, sk, bucket, key, file, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		read_file(file, out);
		unlink(file);
		status = 0;
	} else {
		status = -1;
	}
	free(script);
	free(file);
	return status;
}

/* The SDK reads the object of obj back: same bytes, same SHA-256. */
static void
assert_sdk_object(const char *region, const char *ak, const char *sk,
		  const char *bucket, const struct store_object *obj,
		  const void *want, size_t len)
{
	struct buf got = BUF_INIT;
	const char *key = strstr(obj->location, "/privacy-exports/");
	char sha[65];

	assert_non_null(key);
	if (sdk_get(region, ak, sk, bucket, key + 1, &got) != 0)
		fail_msg("the SDK cannot read %s", obj->location);
	assert_int_equal(got.len, len);
	assert_int_equal(obj->size, (long long)len);
	sigv4_sha256_hex(got.data != NULL ? got.data : "", got.len, sha);
	assert_string_equal(obj->sha256, sha);
	assert_memory_equal(got.data != NULL ? got.data : "", want, len);
	buf_release(&got);
}

/* Fetch url with curl(1): the HTTP status, the body into out. */
static long
curl_get(const char *url, struct buf *out)
{
	char *file = xasprintf("%s/curl.out", tmpdir);
	char *cmd =
		xasprintf("curl -s -o '%s' -w '%%{http_code}' '%s'", file, url);
	FILE *p = popen(cmd, "r");
	long status = 0;

	assert_non_null(p);
	assert_int_equal(fscanf(p, "%ld", &status), 1);
	pclose(p);
	read_file(file, out);
	unlink(file);
	free(cmd);
	free(file);
	return status;
}

static void
random_bytes(unsigned char *p, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = getrandom(p + off, len - off, 0);

		assert_true(n > 0);
		off += (size_t)n;
	}
}

static void
s3_env(void)
{
	setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
	setenv("AWS_REGION", "us-east-1", 1);
	setenv("AWS_ENDPOINT_URL_S3", endpoint, 1);
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("APEXOPS_S3_SSE");
}

/* A configuration as config_load() leaves it for these tests: 5 MiB
 * parts, the bucket of the front. */
static void
base_cfg(struct ops_config *cfg, const char *bucket)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->privacy_export_bucket = (char *)bucket;
	cfg->s3_multipart_threshold_mb = 5;
}

static struct store *
open_store(struct ops_config *cfg, enum store_provider p)
{
	struct store *s = NULL;
	struct ops_err err = OPS_ERR_INIT;

	if (store_open(cfg, p, NULL, &s, &err) != 0)
		fail_msg("store_open %s: %s", store_provider_name(p), err.msg);
	return s;
}

static struct store *
s3_store(struct ops_config *cfg)
{
	base_cfg(cfg, "exports");
	s3_env();
	return open_store(cfg, STORE_S3);
}

/* Write len bytes of data under key in pieces of step bytes. */
static int
write_object(struct store *s, const char *key, const void *data, size_t len,
	     size_t step, struct store_object *obj, struct ops_err *err)
{
	struct store_writer *w = NULL;
	int r;

	r = store_writer_open(s, key, "application/x-ndjson", &w, err);
	if (r != 0)
		return r;
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;

		r = store_write(w, (const char *)data + off, n, err);
		if (r != 0) {
			store_writer_abort(w);
			return r;
		}
	}
	return store_writer_commit(w, obj, err);
}

static void
test_s3_single_put(void **state)
{
	struct ops_config cfg;
	struct store *s = s3_store(&cfg);
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	struct buf data = BUF_INIT, list = BUF_INIT, got = BUF_INIT;
	char *url = NULL;

	(void)state;
	for (int i = 0; i < 2000; i++)
		buf_addf(&data, "{\"table\":\"usage_events\",\"n\":%d}\n", i);
	requests_clear();
	if (write_object(s, "t-1/u-1/1764590000001.jsonl", data.data, data.len,
			 1000, &obj, &err) != 0)
		fail_msg("write: %s", err.msg);
	assert_string_equal(obj.location, "s3://exports/privacy-exports/t-1/"
					  "u-1/1764590000001.jsonl");
	/* under the threshold: one PUT, no multipart */
	assert_int_equal(requests_count("PUT", NULL, 200), 1);
	assert_int_equal(requests_count("POST", NULL, 0), 0);
	assert_sdk_object("us-east-1", "S3RVER", "S3RVER", "exports", &obj,
			  data.data, data.len);
	assert_int_equal(store_exists(s, obj.location, &err), 0);
	assert_int_equal(store_list(s, "t-1/u-1/", collect, &list, &err), 0);
	assert_non_null(strstr(buf_str(&list), obj.location));
	/* the presigned GET, fetched with curl */
	assert_int_equal(store_url(s, obj.location, 600, &url, &err), 0);
	assert_non_null(strstr(url, "X-Amz-Expires=600"));
	assert_int_equal(curl_get(url, &got), 200);
	assert_int_equal(got.len, data.len);
	assert_memory_equal(got.data, data.data, data.len);
	free(url);
	/* delete; again is fine */
	assert_int_equal(store_delete(s, obj.location, &err), 0);
	assert_int_equal(store_exists(s, obj.location, &err), OPS_E_NOTFOUND);
	assert_int_equal(store_delete(s, obj.location, &err), 0);
	/* a location of another bucket or provider */
	assert_int_equal(
		store_delete(s, "s3://other/privacy-exports/t/u/1", &err),
		OPS_E_INVALID);
	assert_int_equal(
		store_exists(s, "gs://exports/privacy-exports/t/u/1", &err),
		OPS_E_INVALID);
	buf_release(&data);
	buf_release(&list);
	buf_release(&got);
	store_free(s);
}

static void
test_s3_multipart(void **state)
{
	size_t len = 12u << 20;
	unsigned char *data = xmalloc(len);
	struct ops_config cfg;
	struct store *s = s3_store(&cfg);
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	struct buf got = BUF_INIT;
	char *url = NULL;

	(void)state;
	random_bytes(data, len);
	requests_clear();
	if (write_object(s, "t-1/u-1/big.jsonl", data, len, 65536, &obj,
			 &err) != 0)
		fail_msg("write: %s", err.msg);
	/* 5 + 5 + 2 MiB: create, three parts, complete */
	assert_int_equal(requests_count("POST", "?uploads", 200), 1);
	assert_int_equal(requests_count("PUT", "partNumber=", 200), 3);
	assert_int_equal(requests_count("POST", "uploadId=", 200), 1);
	assert_int_equal(pending_uploads(), 0);
	assert_sdk_object("us-east-1", "S3RVER", "S3RVER", "exports", &obj,
			  data, len);
	assert_int_equal(store_url(s, obj.location, 60, &url, &err), 0);
	assert_int_equal(curl_get(url, &got), 200);
	assert_int_equal(got.len, len);
	free(url);
	/* exactly one part's worth: one PUT */
	requests_clear();
	assert_int_equal(write_object(s, "t-1/u-1/five.jsonl", data, 5u << 20,
				      4096, &obj, &err),
			 0);
	assert_int_equal(requests_count("PUT", NULL, 200), 1);
	assert_int_equal(requests_count("POST", NULL, 0), 0);
	assert_sdk_object("us-east-1", "S3RVER", "S3RVER", "exports", &obj,
			  data, 5u << 20);
	buf_release(&got);
	free(data);
	store_free(s);
}

static void
test_s3_abort_leaves_nothing(void **state)
{
	size_t len = 7u << 20;
	unsigned char *data = xmalloc(len);
	struct ops_config cfg;
	struct store *s = s3_store(&cfg);
	struct store_writer *w = NULL;
	struct ops_err err = OPS_ERR_INIT;
	struct buf list = BUF_INIT;

	(void)state;
	random_bytes(data, len);
	requests_clear();
	/* one part has gone when it is aborted */
	assert_int_equal(store_writer_open(s, "t-ab/u/1.jsonl", NULL, &w, &err),
			 0);
	assert_int_equal(store_write(w, data, len, &err), 0);
	/* part 1 goes up on its own thread: wait until the front saw it */
	for (int i = 0;
	     i < 300 && requests_count("PUT", "partNumber=1", 200) < 1; i++)
		usleep(100 * 1000);
	assert_int_equal(requests_count("PUT", "partNumber=1", 200), 1);
	assert_int_equal(pending_uploads(), 1);
	store_writer_abort(w);
	assert_int_equal(requests_count("DELETE", "uploadId=", 204), 1);
	assert_int_equal(pending_uploads(), 0);
	assert_int_equal(store_exists(s,
				      "s3://exports/privacy-exports/t-ab/u/"
				      "1.jsonl",
				      &err),
			 OPS_E_NOTFOUND);
	/* under one part: nothing was sent, nothing to undo */
	requests_clear();
	assert_int_equal(store_writer_open(s, "t-ab/u/2.jsonl", NULL, &w, &err),
			 0);
	assert_int_equal(store_write(w, data, 1000, &err), 0);
	store_writer_abort(w);
	assert_int_equal(requests_count("PUT", NULL, 0), 0);
	assert_int_equal(requests_count("POST", NULL, 0), 0);
	assert_int_equal(store_list(s, "t-ab/", collect, &list, &err), 0);
	assert_int_equal(list.len, 0);
	buf_release(&list);
	free(data);
	store_free(s);
}

static void
test_s3_failed_part_aborts(void **state)
{
	size_t len = 11u << 20;
	unsigned char *data = xmalloc(len);
	struct ops_config cfg;
	struct store *s = s3_store(&cfg);
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	random_bytes(data, len);
	requests_clear();
	/* part 2 refused for good (a 4xx is not retried) */
	faults("[{\"method\":\"PUT\",\"match\":\"partNumber=2\","
	       "\"status\":400,\"count\":1}]");
	assert_int_equal(write_object(s, "t-f/u/1.jsonl", data, len, 1 << 20,
				      &obj, &err),
			 OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "HTTP 400"));
	/* the caller aborts the writer after a failed write */
	assert_int_equal(pending_uploads(), 0);
	assert_int_equal(store_exists(s,
				      "s3://exports/privacy-exports/t-f/u/"
				      "1.jsonl",
				      &err),
			 OPS_E_NOTFOUND);
	/* a failed complete aborts as well */
	faults("[{\"method\":\"POST\",\"match\":\"uploadId=\","
	       "\"status\":403,\"count\":1}]");
	assert_int_equal(write_object(s, "t-f/u/2.jsonl", data, len, 1 << 20,
				      &obj, &err),
			 OPS_E_HTTP);
	assert_int_equal(pending_uploads(), 0);
	faults("[]");
	free(data);
	store_free(s);
}

static void
test_s3_retries(void **state)
{
	size_t len = 11u << 20;
	unsigned char *data = xmalloc(len);
	struct ops_config cfg;
	struct store *s = s3_store(&cfg);
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	random_bytes(data, len);
	requests_clear();
	/* two 500s on a part, a reset connection on another, a 503 on
	 * the complete: all retried */
	faults("[{\"method\":\"PUT\",\"match\":\"partNumber=2\","
	       "\"status\":500,\"count\":2},"
	       "{\"method\":\"PUT\",\"match\":\"partNumber=3\","
	       "\"reset\":true,\"count\":1},"
	       "{\"method\":\"POST\",\"match\":\"uploadId=\","
	       "\"status\":503,\"count\":1}]");
	if (write_object(s, "t-r/u/1.jsonl", data, len, 1 << 20, &obj, &err) !=
	    0)
		fail_msg("write: %s", err.msg);
	assert_int_equal(requests_count("PUT", "partNumber=2", 500), 2);
	assert_int_equal(requests_count("PUT", "partNumber=2", 200), 1);
	assert_int_equal(requests_count("PUT", "partNumber=3", -1), 1);
	assert_int_equal(requests_count("PUT", "partNumber=3", 200), 1);
	assert_int_equal(requests_count("POST", "uploadId=", 503), 1);
	assert_sdk_object("us-east-1", "S3RVER", "S3RVER", "exports", &obj,
			  data, len);
	/* the single PUT too */
	requests_clear();
	faults("[{\"method\":\"PUT\",\"status\":500,\"count\":1},"
	       "{\"method\":\"PUT\",\"reset\":true,\"count\":1}]");
	if (write_object(s, "t-r/u/2.jsonl", data, 1000, 100, &obj, &err) != 0)
		fail_msg("write: %s", err.msg);
	assert_int_equal(requests_count("PUT", NULL, 200), 1);
	assert_int_equal(requests_count("PUT", NULL, 0), 3);
	assert_sdk_object("us-east-1", "S3RVER", "S3RVER", "exports", &obj,
			  data, 1000);
	/* 500s past the retries: a transient failure, nothing left */
	faults("[{\"method\":\"PUT\",\"status\":500,\"count\":10}]");
	assert_int_equal(
		write_object(s, "t-r/u/3.jsonl", data, 1000, 100, &obj, &err),
		OPS_E_HTTP);
	assert_true(err.transient);
	assert_non_null(strstr(err.msg, "HTTP 500"));
	faults("[]");
	assert_int_equal(store_exists(s,
				      "s3://exports/privacy-exports/t-r/u/"
				      "3.jsonl",
				      &err),
			 OPS_E_NOTFOUND);
	free(data);
	store_free(s);
}

static void
test_s3_timeout_retried(void **state)
{
	struct ops_config cfg;
	struct store *s;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	base_cfg(&cfg, "exports");
	s3_env();
	cfg.storage_timeout_s = 1;
	s = open_store(&cfg, STORE_S3);
	requests_clear();
	/* the first attempt outlives the timeout */
	faults("[{\"method\":\"PUT\",\"delay_ms\":3000,\"count\":1}]");
	if (write_object(s, "t-to/u/1.jsonl", "slow", 4, 4, &obj, &err) != 0)
		fail_msg("write: %s", err.msg);
	assert_int_equal(requests_count("PUT", NULL, 0), 2);
	assert_sdk_object("us-east-1", "S3RVER", "S3RVER", "exports", &obj,
			  "slow", 4);
	store_free(s);
}

static int count_one(void *arg, const char *location);

/* SIGTERM mid-export: the writer stops, and its abort still goes out. */
static void
test_s3_stop_aborts_upload(void **state)
{
	size_t len = 7u << 20;
	unsigned char *data = xmalloc(len);
	volatile sig_atomic_t stop = 0;
	struct ops_config cfg;
	struct store *s = NULL;
	struct store_writer *w = NULL;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	random_bytes(data, len);
	base_cfg(&cfg, "exports");
	s3_env();
	assert_int_equal(store_open(&cfg, STORE_S3, &stop, &s, &err), 0);
	requests_clear();
	assert_int_equal(store_writer_open(s, "t-st/u/1.jsonl", NULL, &w, &err),
			 0);
	assert_int_equal(store_write(w, data, len, &err), 0);
	assert_int_equal(pending_uploads(), 1);
	stop = 1;
	assert_int_equal(store_write(w, data, 10, &err), OPS_E_STOPPED);
	store_writer_abort(w);
	assert_int_equal(requests_count("DELETE", "uploadId=", 204), 1);
	assert_int_equal(pending_uploads(), 0);
	stop = 0;
	assert_int_equal(store_exists(s,
				      "s3://exports/privacy-exports/t-st/u/"
				      "1.jsonl",
				      &err),
			 OPS_E_NOTFOUND);
	free(data);
	store_free(s);
}

/* A worker killed mid-upload leaves a pending upload; a sweep aborts it
 * once it is old enough, and touches nothing else. */
static void
test_s3_sweep_after_kill(void **state)
{
	struct ops_config cfg;
	struct store *s;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	int status = 0, n = -1;
	pid_t pid;

	(void)state;
	base_cfg(&cfg, "exports");
	s3_env();
	s = open_store(&cfg, STORE_S3);
	assert_int_equal(
		write_object(s, "t-k/u/done.jsonl", "kept", 4, 4, &obj, &err),
		0);
	assert_int_equal(pending_uploads(), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the worker: two parts sent (the second send waits for the
		 * first), then killed */
		size_t len = 11u << 20;
		unsigned char *data = calloc(1, len);
		struct store *cs = NULL;
		struct store_writer *w = NULL;

		if (data == NULL ||
		    store_open(&cfg, STORE_S3, NULL, &cs, NULL) != 0 ||
		    store_writer_open(cs, "t-k/u/1.jsonl", NULL, &w, NULL) !=
			    0 ||
		    store_write(w, data, len, NULL) != 0)
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(pending_uploads(), 1);
	/* young: left alone */
	assert_int_equal(store_sweep(s, "t-k/", 3600, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(pending_uploads(), 1);
	/* two hours on, another tenant's prefix: not it */
	http_call("POST", front_port, "/__front/config",
		  "{\"uploads_age_s\":7200}", NULL);
	assert_int_equal(store_sweep(s, "t-other/", 3600, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_sweep(s, "t-k/", 3600, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pending_uploads(), 0);
	http_call("POST", front_port, "/__front/config",
		  "{\"uploads_age_s\":0}", NULL);
	assert_int_equal(store_exists(s, obj.location, &err), 0);
	assert_int_equal(store_exists(s,
				      "s3://exports/privacy-exports/t-k/u/"
				      "1.jsonl",
				      &err),
			 OPS_E_NOTFOUND);
	store_free(s);
}

/* While part 1 is held by the front, the writer takes part 2's bytes:
 * the upload runs beside the export, not in turn with it. */
static void
test_s3_parts_overlap_writing(void **state)
{
	size_t len = 11u << 20;
	unsigned char *data = xmalloc(len);
	struct ops_config cfg;
	struct store *s;
	struct store_writer *w = NULL;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	struct buf b = BUF_INIT;
	int n = 0;

	(void)state;
	random_bytes(data, len);
	base_cfg(&cfg, "exports");
	s3_env();
	cfg.storage_timeout_s = 30; /* bounds a failure */
	s = open_store(&cfg, STORE_S3);
	requests_clear();
	faults("[{\"method\":\"PUT\",\"match\":\"partNumber=1\","
	       "\"hold\":true,\"count\":1}]");
	assert_int_equal(store_writer_open(s, "t-ov/u/1.jsonl", NULL, &w, &err),
			 0);
	/* part 1 full and sent, part 2 filled to the brim */
	assert_int_equal(store_write(w, data, 10u << 20, &err), 0);
	/* part 1 has not been answered, yet the writer took all of it */
	assert_int_equal(requests_count("PUT", "partNumber=1", 200), 0);
	/* release it once the front holds it (the part's thread may still
	 * be on its way) */
	for (int i = 0; i < 300; i++) {
		buf_reset(&b);
		http_call("POST", front_port, "/__front/release", NULL, &b);
		if (strcmp(buf_str(&b), "{\"released\":1}") == 0)
			break;
		usleep(100 * 1000);
	}
	assert_string_equal(buf_str(&b), "{\"released\":1}");
	/* the store between writes, while part 1 may still be going up: it
	 * waits for the part, which keeps its result for the writer */
	assert_int_equal(store_exists(s,
				      "s3://exports/privacy-exports/t-ov/u/"
				      "none",
				      &err),
			 OPS_E_NOTFOUND);
	assert_int_equal(store_list(s, "t-ov/", count_one, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(
		store_write(w, data + (10u << 20), len - (10u << 20), &err), 0);
	if (store_writer_commit(w, &obj, &err) != 0)
		fail_msg("commit: %s", err.msg);
	assert_int_equal(requests_count("PUT", "partNumber=", 200), 3);
	assert_sdk_object("us-east-1", "S3RVER", "S3RVER", "exports", &obj,
			  data, len);
	buf_release(&b);
	free(data);
	store_free(s);
}

static int
count_one(void *arg, const char *location)
{
	int *n = arg;

	(void)location;
	(*n)++;
	return 0;
}

static int
stop_at_two(void *arg, const char *location)
{
	int *n = arg;

	(void)location;
	return ++(*n) == 2 ? 42 : 0;
}

static void
test_s3_list_pages(void **state)
{
	struct ops_config cfg;
	struct store *s = s3_store(&cfg);
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	struct buf list = BUF_INIT;
	int n = 0;

	(void)state;
	for (int i = 0; i < 5; i++) {
		char key[64];

		snprintf(key, sizeof(key), "t-l/u-1/%d.csv", i);
		assert_int_equal(
			write_object(s, key, "a,b\r\n", 5, 5, &obj, &err), 0);
	}
	assert_int_equal(
		write_object(s, "t-l/u-2/9.csv", "x", 1, 1, &obj, &err), 0);
	/* pages of two keys: three pages for u-1 */
	http_call("POST", front_port, "/__front/config",
		  "{\"list_max_keys\":2}", NULL);
	requests_clear();
	assert_int_equal(store_list(s, "t-l/u-1/", collect, &list, &err), 0);
	assert_int_equal(requests_count("GET", "list-type=2", 200), 3);
	assert_int_equal(requests_count("GET", "continuation-token=", 200), 2);
	for (int i = 0; i < 5; i++) {
		char want[96];

		snprintf(want, sizeof(want),
			 "s3://exports/privacy-exports/t-l/u-1/%d.csv\n", i);
		assert_non_null(strstr(buf_str(&list), want));
	}
	assert_null(strstr(buf_str(&list), "u-2"));
	assert_int_equal(store_list(s, "t-l/", count_one, &n, &err), 0);
	assert_int_equal(n, 6);
	n = 0;
	assert_int_equal(store_list(s, "t-l/", stop_at_two, &n, &err), 42);
	assert_int_equal(n, 2);
	http_call("POST", front_port, "/__front/config",
		  "{\"list_max_keys\":0}", NULL);
	buf_release(&list);
	store_free(s);
}

static void
test_s3_wrong_secret(void **state)
{
	struct ops_config cfg;
	struct store *s;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	base_cfg(&cfg, "exports");
	s3_env();
	setenv("AWS_SECRET_ACCESS_KEY", "notTheSecret", 1);
	s = open_store(&cfg, STORE_S3);
	assert_int_equal(write_object(s, "t-w/u/1.csv", "x", 1, 1, &obj, &err),
			 OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "SignatureDoesNotMatch"));
	assert_false(err.transient);
	assert_null(strstr(err.msg, "notTheSecret"));
	store_free(s);
	s3_env();
}

static void
test_s3_config_errors(void **state)
{
	struct ops_config cfg;
	struct store *s = NULL;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	s3_env();
	assert_int_equal(store_open(&cfg, STORE_S3, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "PRIVACY_EXPORT_BUCKET is not set"));
	cfg.privacy_export_bucket = "exports";
	cfg.s3_multipart_threshold_mb = 4;
	assert_int_equal(store_open(&cfg, STORE_S3, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "APEXOPS_S3_MULTIPART_THRESHOLD_MB=4 "
					"is not allowed: a whole number of MiB "
					"from 5 to 5120"));
	cfg.s3_multipart_threshold_mb = 0; /* the default */
	cfg.storage_timeout_s = 3601;
	assert_int_equal(store_open(&cfg, STORE_S3, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "APEXOPS_STORAGE_TIMEOUT_S=3601"));
	cfg.storage_timeout_s = 0;
	/* from the environment, config_load() refuses them */
	{
		static const char *const bad[][2] = {
			{ "APEXOPS_S3_MULTIPART_THRESHOLD_MB", "4" },
			{ "APEXOPS_S3_MULTIPART_THRESHOLD_MB", "8x" },
			{ "APEXOPS_STORAGE_TIMEOUT_S", "0" },
		};
		char *envfile = xasprintf("%s/empty.env", tmpdir);
		FILE *fp = fopen(envfile, "w");

		assert_non_null(fp);
		fclose(fp);
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct ops_config loaded;

			setenv(bad[i][0], bad[i][1], 1);
			memset(&loaded, 0, sizeof(loaded));
			assert_int_equal(
				config_load(&loaded, envfile, NULL, &err),
				OPS_E_CONFIG);
			assert_non_null(strstr(err.msg, bad[i][0]));
			config_release(&loaded);
			unsetenv(bad[i][0]);
		}
		free(envfile);
	}
	s3_env();
	unsetenv("AWS_ACCESS_KEY_ID");
	assert_int_equal(store_open(&cfg, STORE_S3, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "AWS_ACCESS_KEY_ID is not set"));
	s3_env();
	cfg.privacy_export_bucket = "Bad_Bucket";
	assert_int_equal(store_open(&cfg, STORE_S3, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "PRIVACY_EXPORT_BUCKET: s3: bucket "
					"name 'Bad_Bucket'"));
	assert_null(s);
}

static void
test_s3_unreachable(void **state)
{
	struct ops_config cfg;
	struct store *s;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	int port;

	(void)state;
	/* a port nobody listens on: bind one, close it */
	{
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET };
		socklen_t al = sizeof(a);
		char ep[64];

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al),
				 0);
		port = ntohs(a.sin_port);
		close(fd);
		memset(&cfg, 0, sizeof(cfg));
		cfg.privacy_export_bucket = "exports";
		s3_env();
		snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
		setenv("AWS_ENDPOINT_URL_S3", ep, 1);
		s = open_store(&cfg, STORE_S3);
	}
	assert_int_equal(write_object(s, "t/u/1.csv", "x", 1, 1, &obj, &err),
			 OPS_E_HTTP);
	assert_true(err.transient);
	assert_non_null(strstr(err.msg, "failed after 4 attempts"));
	assert_non_null(strstr(err.msg, "127.0.0.1"));
	assert_int_equal(
		store_exists(s, "s3://exports/privacy-exports/t/u/1", &err),
		OPS_E_HTTP);
	assert_true(err.transient);
	store_free(s);
	s3_env();
}

static void
gcs_cfg(struct ops_config *cfg)
{
	base_cfg(cfg, "gcs-bucket");
	cfg->gcs_endpoint = endpoint;
	s3_env();
	/* what GCS needs comes from its own variables, not AWS_* */
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_REGION");
	unsetenv("AWS_ENDPOINT_URL_S3");
}

static void
test_gcs_hmac(void **state)
{
	size_t len = 6u << 20;
	unsigned char *data = xmalloc(len);
	struct ops_config cfg;
	struct store *s;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	struct buf got = BUF_INIT, list = BUF_INIT;
	char *url = NULL;

	(void)state;
	random_bytes(data, len);
	gcs_cfg(&cfg);
	cfg.gcs_hmac_access_id = "GOOG1EXAMPLEHMACKEYSTORE";
	cfg.gcs_hmac_secret = "gcsHmacSecret/+store";
	s = open_store(&cfg, STORE_GCS);
	assert_int_equal(store_provider_of(s), STORE_GCS);
	if (write_object(s, "t-g/u/1.jsonl", data, 1000, 300, &obj, &err) != 0)
		fail_msg("write: %s", err.msg);
	assert_string_equal(obj.location,
			    "gs://gcs-bucket/privacy-exports/t-g/u/1.jsonl");
	assert_sdk_object("auto", "GOOG1EXAMPLEHMACKEYSTORE",
			  "gcsHmacSecret/+store", "gcs-bucket", &obj, data,
			  1000);
	/* multipart, as the XML API takes it */
	requests_clear();
	if (write_object(s, "t-g/u/2.jsonl", data, len, 1 << 20, &obj, &err) !=
	    0)
		fail_msg("write: %s", err.msg);
	assert_int_equal(requests_count("PUT", "partNumber=", 200), 2);
	assert_sdk_object("auto", "GOOG1EXAMPLEHMACKEYSTORE",
			  "gcsHmacSecret/+store", "gcs-bucket", &obj, data,
			  len);
	assert_int_equal(store_url(s, obj.location, 300, &url, &err), 0);
	assert_non_null(strstr(url, "%2Fauto%2Fs3%2Faws4_request"));
	assert_int_equal(curl_get(url, &got), 200);
	assert_int_equal(got.len, len);
	free(url);
	assert_int_equal(store_list(s, "t-g/u/", collect, &list, &err), 0);
	assert_non_null(strstr(buf_str(&list), "gs://gcs-bucket/privacy-"
					       "exports/t-g/u/2.jsonl\n"));
	assert_int_equal(store_delete(s, obj.location, &err), 0);
	assert_int_equal(store_exists(s, obj.location, &err), OPS_E_NOTFOUND);
	buf_release(&got);
	buf_release(&list);
	free(data);
	store_free(s);
	s3_env();
}

static int
tokens_issued(void)
{
	struct buf b = BUF_INIT;
	json_t *doc;
	int n;

	http_call("GET", token_port, "/__double/stats", NULL, &b);
	doc = json_loads(buf_str(&b), 0, NULL);
	assert_non_null(doc);
	n = (int)json_integer_value(json_object_get(doc, "issued"));
	json_decref(doc);
	buf_release(&b);
	return n;
}

static void
test_gcs_service_account(void **state)
{
	size_t len = 6u << 20;
	unsigned char *data = xmalloc(len);
	struct ops_config cfg;
	struct store *s;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	struct buf got = BUF_INIT, list = BUF_INIT;
	char *url = NULL;
	int before = tokens_issued();
	size_t n;

	(void)state;
	random_bytes(data, len);
	gcs_cfg(&cfg);
	cfg.google_application_credentials = keyfile;
	s = open_store(&cfg, STORE_GCS);
	requests_clear();
	if (write_object(s, "t-sa/u/1.jsonl", data, 1000, 300, &obj, &err) != 0)
		fail_msg("write: %s", err.msg);
	assert_string_equal(obj.location,
			    "gs://gcs-bucket/privacy-exports/t-sa/u/1.jsonl");
	assert_sdk_object("us-east-1", "S3RVER", "S3RVER", "gcs-bucket", &obj,
			  data, 1000);
	if (write_object(s, "t-sa/u/2.jsonl", data, len, 1 << 20, &obj, &err) !=
	    0)
		fail_msg("multipart write: %s", err.msg);
	assert_int_equal(requests_count("PUT", "partNumber=", 200), 2);
	assert_sdk_object("us-east-1", "S3RVER", "S3RVER", "gcs-bucket", &obj,
			  data, len);
	assert_int_equal(store_exists(s, obj.location, &err), 0);
	assert_int_equal(store_list(s, "t-sa/", collect, &list, &err), 0);
	assert_non_null(strstr(buf_str(&list), "t-sa/u/1.jsonl\n"));
	assert_non_null(strstr(buf_str(&list), "t-sa/u/2.jsonl\n"));
	/* one token for all of it: cached */
	assert_int_equal(tokens_issued(), before + 1);
	/* a V4 RSA signed URL, fetched with curl */
	assert_int_equal(store_url(s, obj.location, 300, &url, &err), 0);
	assert_non_null(strstr(url, "X-Goog-Algorithm=GOOG4-RSA-SHA256&"));
	assert_non_null(strstr(url, "X-Goog-Credential=exports%40apexops-test"
				    ".iam.gserviceaccount.com%2F"));
	assert_non_null(strstr(url, "%2Fauto%2Fstorage%2Fgoog4_request&"));
	assert_int_equal(curl_get(url, &got), 200);
	assert_int_equal(got.len, len);
	assert_memory_equal(got.data, data, len);
	/* one digit of the signature changed */
	n = strlen(url);
	url[n - 1] = url[n - 1] == '0' ? '1' : '0';
	buf_reset(&got);
	assert_int_equal(curl_get(url, &got), 403);
	assert_non_null(strstr(buf_str(&got), "SignatureDoesNotMatch"));
	free(url);
	assert_int_equal(store_delete(s, obj.location, &err), 0);
	assert_int_equal(store_exists(s, obj.location, &err), OPS_E_NOTFOUND);
	store_free(s);
	/* a token about to expire is replaced before it is used */
	http_call("POST", token_port, "/__double/config", "{\"expires_in\":30}",
		  NULL);
	s = open_store(&cfg, STORE_GCS);
	before = tokens_issued();
	assert_int_equal(store_exists(s, obj.location, &err), OPS_E_NOTFOUND);
	assert_int_equal(tokens_issued(), before + 1);
	http_call("POST", token_port, "/__double/config",
		  "{\"expires_in\":3600}", NULL);
	/* the token endpoint failing for a while: retried */
	http_call("POST", token_port, "/__double/config", "{\"fail\":1}", NULL);
	store_free(s);
	s = open_store(&cfg, STORE_GCS);
	assert_int_equal(store_exists(s, obj.location, &err), OPS_E_NOTFOUND);
	buf_release(&got);
	buf_release(&list);
	free(data);
	store_free(s);
	s3_env();
}

static void
test_gcs_token_refused(void **state)
{
	struct ops_config cfg;
	struct store *s;
	struct store_object obj;
	struct ops_err err = OPS_ERR_INIT;
	struct buf key = BUF_INIT;
	char *pem = xasprintf("%s/other.pem", tmpdir);

	(void)state;
	gcs_cfg(&cfg);
	/* signed with a key that is not the service account's */
	cfg.google_application_credentials = badkeyfile;
	s = open_store(&cfg, STORE_GCS);
	assert_int_equal(write_object(s, "t-x/u/1.csv", "x", 1, 1, &obj, &err),
			 OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "HTTP 400 invalid_grant: Invalid JWT "
					"Signature"));
	assert_false(err.transient);
	read_file(pem, &key);
	/* no line of the key in the message */
	assert_null(strstr(err.msg, "PRIVATE KEY"));
	assert_null(strstr(err.msg, strchr(buf_str(&key), '\n') + 1 + 20));
	buf_release(&key);
	free(pem);
	store_free(s);
	s3_env();
}

static void
test_gcs_config_errors(void **state)
{
	static const struct {
		const char *json, *needle;
	} bad[] = {
		{ "not json", "is not a JSON object" },
		{ "[]", "is not a JSON object" },
		{ "{\"type\":\"authorized_user\",\"client_email\":\"a@b\","
		  "\"private_key\":\"x\"}",
		  "\"type\" is not \"service_account\"" },
		{ "{\"private_key\":\"x\"}", "\"client_email\" is missing" },
		{ "{\"client_email\":\"a@b\"}", "\"private_key\" is missing" },
		{ "{\"client_email\":\"a@b\",\"private_key\":\"secretjunk\"}",
		  "not a PEM RSA private key" },
		{ "{\"client_email\":\"a@b\",\"private_key\":\"-----BEGIN\","
		  "\"token_uri\":\"file:///etc/passwd\"}",
		  "\"token_uri\" must be an http" },
		{ "{\"client_email\":\"a b@c\",\"private_key\":\"x\"}",
		  "holds a space" },
	};
	struct ops_config cfg;
	struct store *s = NULL;
	struct ops_err err = OPS_ERR_INIT;
	char *path = xasprintf("%s/bad.json", tmpdir);

	(void)state;
	gcs_cfg(&cfg);
	assert_int_equal(store_open(&cfg, STORE_GCS, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "GOOGLE_APPLICATION_CREDENTIALS (a "
					"service-account key file)"));
	cfg.gcs_hmac_access_id = "GOOG1ABC";
	assert_int_equal(store_open(&cfg, STORE_GCS, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "APEXOPS_GCS_HMAC_SECRET is not set"));
	cfg.gcs_hmac_secret = "gcsSecretValue";
	cfg.gcs_hmac_access_id = "GOOG1-bad/id";
	assert_int_equal(store_open(&cfg, STORE_GCS, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "APEXOPS_GCS_HMAC_ACCESS_ID: s3: "
					"access key id"));
	assert_null(strstr(err.msg, "gcsSecretValue"));
	cfg.gcs_hmac_access_id = "GOOG1ABC";
	cfg.gcs_endpoint = "ftp://storage.example";
	assert_int_equal(store_open(&cfg, STORE_GCS, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "APEXOPS_GCS_ENDPOINT: s3: endpoint"));
	cfg.gcs_endpoint = endpoint;
	cfg.privacy_export_bucket = NULL;
	assert_int_equal(store_open(&cfg, STORE_GCS, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "PRIVACY_EXPORT_BUCKET is not set"));
	cfg.privacy_export_bucket = "gcs-bucket";
	cfg.gcs_hmac_secret = NULL;
	cfg.gcs_hmac_access_id = NULL;
	cfg.google_application_credentials = "/nonexistent/key.json";
	assert_int_equal(store_open(&cfg, STORE_GCS, NULL, &s, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "GOOGLE_APPLICATION_CREDENTIALS"));
	assert_non_null(strstr(err.msg, "/nonexistent/key.json"));
	cfg.google_application_credentials = path;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		fputs(bad[i].json, fp);
		fclose(fp);
		ops_err_clear(&err);
		assert_int_equal(store_open(&cfg, STORE_GCS, NULL, &s, &err),
				 OPS_E_CONFIG);
		assert_null(s);
		if (strstr(err.msg, bad[i].needle) == NULL)
			fail_msg("'%s' lacks '%s'", err.msg, bad[i].needle);
		assert_non_null(
			strstr(err.msg, "GOOGLE_APPLICATION_CREDENTIALS"));
		assert_null(strstr(err.msg, "secretjunk"));
	}
	free(path);
	s3_env();
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
		cmocka_unit_test(test_local_sweep),
	};

	const struct CMUnitTest peers[] = {
		cmocka_unit_test(test_s3_single_put),
		cmocka_unit_test(test_s3_multipart),
		cmocka_unit_test(test_s3_abort_leaves_nothing),
		cmocka_unit_test(test_s3_failed_part_aborts),
		cmocka_unit_test(test_s3_retries),
		cmocka_unit_test(test_s3_timeout_retried),
		cmocka_unit_test(test_s3_parts_overlap_writing),
		cmocka_unit_test(test_s3_sweep_after_kill),
		cmocka_unit_test(test_s3_stop_aborts_upload),
		cmocka_unit_test(test_s3_list_pages),
		cmocka_unit_test(test_s3_wrong_secret),
		cmocka_unit_test(test_s3_config_errors),
		cmocka_unit_test(test_s3_unreachable),
		cmocka_unit_test(test_gcs_hmac),
		cmocka_unit_test(test_gcs_service_account),
		cmocka_unit_test(test_gcs_token_refused),
		cmocka_unit_test(test_gcs_config_errors),
	};
	int r;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* one directory for both groups, removed by the second */
	(void)make_tmp(NULL);
	r = cmocka_run_group_tests_name("local", local, NULL, NULL);
	r |= cmocka_run_group_tests_name("peers", peers, start_peers,
					 stop_peers);
	curl_global_cleanup();
	return r;
}
