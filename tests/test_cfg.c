/* test_cfg: the configuration loader. Defaults, the example deploy/vigil.yaml, each value
 * parser, and every refusal with its exact "FILE:LINE:COL: KEY: message" line. Each test
 * writes its YAML into a fresh mkdtemp() directory that the teardown removes.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"

#define N(a)    (sizeof(a) / sizeof((a)[0]))
#define MIB     (1024ULL * 1024)
#define GIB     (1024ULL * MIB)
#define DEC2026 1796083200 /* 2026-12-01T00:00:00Z */

/* base belongs to the TCase and is removed by the parent process even when a forked test
 * fails half-way; dir is the fresh directory of one test inside it. */
static char base[200], dir[256];

static void
setup_base(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(base, sizeof(base), "%s/test_cfg.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(base));
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
teardown_base(void)
{
	nftw(base, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "%s/t.XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes dir/name; the returned path stays valid for the next few calls. */
static const char *
write_file(const char *name, const char *text)
{
	static char paths[4][PATH_MAX];
	static unsigned next;
	char *path = paths[next++ % 4];
	FILE *f;

	ck_assert_int_lt(snprintf(path, PATH_MAX, "%s/%s", dir, name), PATH_MAX);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

static struct cfg *
load_ok(const char *text)
{
	const char *path = write_file("vigil.yaml", text);
	struct cfg *cfg = NULL;
	char err[CFG_ERR_MAX];
	int r;

	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "cfg_load: %d: %s", r, err);
	ck_assert_str_eq(err, "");
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

/* expect is the error line after "PATH:". */
static void
load_bad(const char *text, const char *expect)
{
	const char *path = write_file("bad.yaml", text);
	struct cfg *cfg = (struct cfg *)&cfg; /* must stay untouched */
	char err[CFG_ERR_MAX], want[CFG_ERR_MAX + PATH_MAX];
	int r;

	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == -EINVAL, "cfg_load returned %d (%s) for:\n%s", r, err, text);
	ck_assert_ptr_eq(cfg, (struct cfg *)&cfg);
	snprintf(want, sizeof(want), "%s:%s", path, expect);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(strchr(err, '\n'));
}

static void
assert_defaults(const struct cfg *cfg)
{
	ck_assert_str_eq(cfg->instance, "default");
	ck_assert_str_eq(cfg->run_dir, "/run/vigil");
	ck_assert_str_eq(cfg->data_dir, "/var/lib/vigil");
	ck_assert_str_eq(cfg->log_level, "info");
	ck_assert_str_eq(cfg->listen_ingest.host, "0.0.0.0");
	ck_assert_uint_eq(cfg->listen_ingest.port, 8082);
	ck_assert_str_eq(cfg->listen_relay.host, "0.0.0.0");
	ck_assert_uint_eq(cfg->listen_relay.port, 8081);
	ck_assert_str_eq(cfg->listen_http.host, "0.0.0.0");
	ck_assert_uint_eq(cfg->listen_http.port, 8080);
	ck_assert_ptr_null(cfg->tls_cert);
	ck_assert_ptr_null(cfg->tls_key);
	ck_assert_int_eq(cfg->buffer_seconds, 20);
	ck_assert_uint_eq(cfg->ring_size, 512 * MIB);
	ck_assert_int_eq(cfg->max_sentinels, 200);
	ck_assert_int_eq(cfg->max_proctors, 500);
	ck_assert_uint_eq(cfg->max_message_bytes, 8 * MIB);
	ck_assert_int_eq(cfg->proctor_queue_seconds, 5);
	ck_assert_int_eq(cfg->timeout_register_ms, 5000);
	ck_assert_int_eq(cfg->timeout_idle_ms, 30000);
	ck_assert_int_eq(cfg->timeout_heartbeat_ms, 5000);
	ck_assert(cfg->sentinel_auth);
	ck_assert_ptr_null(cfg->tokens);
	ck_assert_uint_eq(cfg->n_tokens, 0);
	ck_assert_int_eq(cfg->retention_days, 30);
	ck_assert_uint_eq(cfg->archive_max_bytes, 200 * GIB);
	ck_assert_int_eq(cfg->relay_workers, 0);
	ck_assert_uint_ge(cfg_relay_workers(cfg), 1);
	ck_assert_uint_le(cfg_relay_workers(cfg), CFG_RELAY_WORKERS_MAX);
	ck_assert_int_eq(cfg->archive_min_free.kind, CFG_FLOOR_AUTO);
}

START_TEST(test_defaults)
{
	struct cfg *cfg = NULL;
	char err[CFG_ERR_MAX] = "stale";

	ck_assert_int_eq(cfg_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(cfg->path, "");
	assert_defaults(cfg);
	cfg_free(cfg);

	ck_assert_int_eq(cfg_load("", &cfg, NULL, 0), 0);
	assert_defaults(cfg);
	cfg_free(cfg);

	cfg = load_ok("");
	ck_assert_str_eq(cfg->path, write_file("vigil.yaml", ""));
	assert_defaults(cfg);
	cfg_free(cfg);

	cfg = load_ok("# only a comment\n\n   # and another\n");
	assert_defaults(cfg);
	cfg_free(cfg);

	cfg = load_ok("---\n...\n");
	assert_defaults(cfg);
	cfg_free(cfg);

	/* null (or nothing) keeps the default; empty sections are fine. */
	cfg = load_ok("instance: null\nrun_dir: ~\nlisten:\ntls: { cert: null, key: }\n"
		      "auth:\n  tokens:\nlimits: {}\narchive:\n  max_bytes: Null\n");
	assert_defaults(cfg);
	cfg_free(cfg);

	cfg_free(NULL);
}
END_TEST

START_TEST(test_open_errors)
{
	struct cfg *cfg = (struct cfg *)&cfg;
	char err[CFG_ERR_MAX], want[CFG_ERR_MAX + PATH_MAX];
	char path[PATH_MAX + 16], *big;

	snprintf(path, sizeof(path), "%s/missing.yaml", dir);
	ck_assert_int_eq(cfg_load(path, &cfg, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_eq(cfg, (struct cfg *)&cfg);

	ck_assert_int_eq(cfg_load(dir, &cfg, err, sizeof(err)), -EISDIR);
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", dir);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_eq(cfg, (struct cfg *)&cfg);

	/* A config file has no business being above 1 MiB. */
	big = malloc(1024 * 1024 + 2);
	ck_assert_ptr_nonnull(big);
	memset(big, '#', 1024 * 1024 + 1);
	big[1024 * 1024 + 1] = '\0';
	snprintf(path, sizeof(path), "%s", write_file("big.yaml", big));
	free(big);
	ck_assert_int_eq(cfg_load(path, &cfg, err, sizeof(err)), -EFBIG);
	snprintf(want, sizeof(want), "%s: cannot read: File too large", path);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_eq(cfg, (struct cfg *)&cfg);
}
END_TEST

START_TEST(test_err_buffer)
{
	const char *path = write_file("bad.yaml", "limits: { max_sentinels: 0 }\n");
	struct cfg *cfg = (struct cfg *)&cfg;
	char err[16];

	/* No buffer, or a short one: same result, nothing written past the end. */
	ck_assert_int_eq(cfg_load(path, &cfg, NULL, 0), -EINVAL);
	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(cfg_load(path, &cfg, err, 8), -EINVAL);
	ck_assert_uint_eq(strlen(err), 7);
	ck_assert_int_eq(err[8], 'x');
	ck_assert_int_eq(cfg_load(path, &cfg, err, 1), -EINVAL);
	ck_assert_str_eq(err, "");
	ck_assert_ptr_eq(cfg, (struct cfg *)&cfg);
}
END_TEST

START_TEST(test_example)
{
	const char *src = getenv("VIGIL_SOURCE_DIR");
	char path[PATH_MAX], err[CFG_ERR_MAX];
	struct cfg *cfg = NULL;
	const struct cfg_token *t;
	int r;

	snprintf(path, sizeof(path), "%s/deploy/vigil.yaml", src ? src : "..");
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
	ck_assert_str_eq(cfg->path, path);
	/* Apart from the tokens, the example spells out the defaults. */
	t = cfg->tokens;
	cfg->tokens = NULL;
	r = (int)cfg->n_tokens;
	cfg->n_tokens = 0;
	assert_defaults(cfg);
	cfg->tokens = (struct cfg_token *)t;
	cfg->n_tokens = (size_t)r;

	ck_assert_uint_eq(cfg->n_tokens, 4);
	ck_assert_str_eq(t[0].name, "sentinels");
	ck_assert_int_eq(t[0].role, CFG_ROLE_SENTINEL);
	ck_assert_str_eq(t[0].token, "change-me-sentinel");
	ck_assert_ptr_null(t[0].token_file);
	ck_assert_int_eq(t[0].expires, 0);
	ck_assert_str_eq(t[1].name, "proctors");
	ck_assert_int_eq(t[1].role, CFG_ROLE_PROCTOR);
	ck_assert_str_eq(t[1].token, "change-me-proctor");
	/* An example copied today must not start with a token that has expired. */
	ck_assert_int_eq(t[1].expires, 0);
	ck_assert_str_eq(t[2].name, "operators");
	ck_assert_int_eq(t[2].role, CFG_ROLE_OPERATOR);
	ck_assert_str_eq(t[2].token, "change-me-operator");
	ck_assert_int_eq(t[2].expires, 0);
	ck_assert_str_eq(t[3].name, "archivists");
	ck_assert_int_eq(t[3].role, CFG_ROLE_ARCHIVIST);
	ck_assert_str_eq(t[3].token, "change-me-archivist");
	ck_assert_int_eq(t[3].expires, 0);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_floor)
{
	static const struct {
		const char *s;
		enum cfg_floor_kind kind;
		uint64_t bytes;
		uint32_t hundredths;
		const char *shown;
	} good[] = {
		{ "auto", CFG_FLOOR_AUTO, 0, 0, "auto" },
		{ "0", CFG_FLOOR_BYTES, 0, 0, "0" },
		{ "20GiB", CFG_FLOOR_BYTES, 20 * GIB, 0, "21474836480" },
		{ "5%", CFG_FLOOR_PERCENT, 0, 500, "5%" },
		{ "0%", CFG_FLOOR_PERCENT, 0, 0, "0%" },
		{ "2.5%", CFG_FLOOR_PERCENT, 0, 250, "2.5%" },
		{ "0.05%", CFG_FLOOR_PERCENT, 0, 5, "0.05%" },
		{ "90%", CFG_FLOOR_PERCENT, 0, 9000, "90%" },
	};
	static const struct {
		const char *s;
		int r;
	} bad[] = {
		{ "", -EINVAL },     { "%", -EINVAL },      { "5 %", -EINVAL },
		{ "5.%", -EINVAL },  { ".5%", -EINVAL },    { "5.123%", -EINVAL },
		{ "-5%", -EINVAL },  { "90.01%", -ERANGE }, { "100%", -ERANGE },
		{ "Auto", -EINVAL }, { "5%%", -EINVAL },    { "99999999999999999999%", -ERANGE }
	};
	struct cfg_floor f;
	char buf[32];

	for (size_t i = 0; i < N(good); i++) {
		memset(&f, 0x5a, sizeof(f));
		ck_assert_msg(cfg_parse_floor(good[i].s, &f) == 0, "\"%s\" refused", good[i].s);
		ck_assert_int_eq(f.kind, good[i].kind);
		if (f.kind == CFG_FLOOR_BYTES)
			ck_assert_uint_eq(f.bytes, good[i].bytes);
		if (f.kind == CFG_FLOOR_PERCENT)
			ck_assert_uint_eq(f.hundredths, good[i].hundredths);
		cfg_fmt_floor(buf, sizeof(buf), &f);
		ck_assert_str_eq(buf, good[i].shown);
	}
	for (size_t i = 0; i < N(bad); i++) {
		memset(&f, 0x5a, sizeof(f));
		ck_assert_msg(cfg_parse_floor(bad[i].s, &f) == bad[i].r, "\"%s\"", bad[i].s);
		ck_assert_uint_eq(f.hundredths, 0x5a5a5a5a);
	}
}
END_TEST

START_TEST(test_expiry_notes)
{
	struct cfg_token t = { .name = "hall-b", .role = CFG_ROLE_PROCTOR, .token = "s3cret-x" };
	char buf[256];

	ck_assert(!cfg_token_expiry_note(&t, DEC2026, buf, sizeof(buf))); /* never expires */
	t.expires = DEC2026;
	ck_assert(!cfg_token_expiry_note(&t, DEC2026 - 86401, buf, sizeof(buf)));
	ck_assert(cfg_token_expiry_note(&t, DEC2026 - 86400, buf, sizeof(buf)));
	ck_assert_str_eq(buf,
			 "token 'hall-b' (proctor) expires in 24 hours (2026-12-01T00:00:00Z)");
	ck_assert(cfg_token_expiry_note(&t, DEC2026 - 300, buf, sizeof(buf)));
	ck_assert_str_eq(buf,
			 "token 'hall-b' (proctor) expires in 5 minutes (2026-12-01T00:00:00Z)");
	ck_assert(cfg_token_expiry_note(&t, DEC2026, buf, sizeof(buf)));
	ck_assert_str_eq(buf, "token 'hall-b' (proctor) expired a minute ago "
			      "(2026-12-01T00:00:00Z): it is refused");
	ck_assert(cfg_token_expiry_note(&t, DEC2026 + 5 * 86400 + 7, buf, sizeof(buf)));
	ck_assert_str_eq(buf, "token 'hall-b' (proctor) expired 5 days ago "
			      "(2026-12-01T00:00:00Z): it is refused");
	ck_assert_ptr_null(strstr(buf, "s3cret"));
}
END_TEST

static const char full_block[] = "instance: hall_A-2\n"
				 "run_dir: run\n"
				 "data_dir: ./data\n"
				 "log_level: debug\n"
				 "listen:\n"
				 "  ingest: 127.0.0.1:0\n"
				 "  relay: \"[::1]:9081\"\n"
				 "  http: localhost:9080\n"
				 "tls:\n"
				 "  cert: /etc/vigil/cert.pem\n"
				 "  key: /etc/vigil/key.pem\n"
				 "buffer_seconds: \"45\"\n"
				 "ring:\n"
				 "  size: 1 GiB\n"
				 "limits:\n"
				 "  max_sentinels: 10000\n"
				 "  max_proctors: 1\n"
				 "  max_message_bytes: 1KiB\n"
				 "  proctor_queue_seconds: 600\n"
				 "timeouts:\n"
				 "  register: 1500ms\n"
				 "  idle: 2m\n"
				 "  stage_heartbeat: 1d\n"
				 "auth:\n"
				 "  sentinel: none\n"
				 "  tokens:\n"
				 "    - name: p1\n"
				 "      role: proctor\n"
				 "      token: s3cret\n"
				 "      expires: 2026-12-01T02:00:00+02:00\n"
				 "    - name: ops\n"
				 "      role: operator\n"
				 "      token: 'op secret'\n"
				 "archive:\n"
				 "  retention_days: 0\n"
				 "  max_bytes: 0\n"
				 "relay:\n"
				 "  workers: 3\n";

static const char full_flow[] =
	"{ instance: hall_A-2, run_dir: run, data_dir: ./data, log_level: debug,\n"
	"  listen: { ingest: 127.0.0.1:0, relay: '[::1]:9081', http: localhost:9080 },\n"
	"  tls: { cert: /etc/vigil/cert.pem, key: /etc/vigil/key.pem }, buffer_seconds: 45,\n"
	"  ring: { size: 1073741824 }, limits: { max_sentinels: 10000, max_proctors: 1,\n"
	"  max_message_bytes: 1024, proctor_queue_seconds: 600 },\n"
	"  timeouts: { register: 1500ms, idle: 120s, stage_heartbeat: 24h },\n"
	"  auth: { sentinel: none, tokens: [\n"
	"    { name: p1, role: proctor, token: s3cret, expires: 2026-12-01T00:00:00Z },\n"
	"    { name: ops, role: operator, token: op secret } ] },\n"
	"  archive: { retention_days: 0, max_bytes: 0B }, relay: { workers: 3 } }\n";

START_TEST(test_styles)
{
	struct cfg *block = load_ok(full_block);
	struct cfg *flow = load_ok(full_flow);
	json_t *a, *b;

	ck_assert_str_eq(block->instance, "hall_A-2");
	ck_assert_str_eq(block->run_dir, "run");
	ck_assert_str_eq(block->data_dir, "./data");
	ck_assert_str_eq(block->log_level, "debug");
	ck_assert_str_eq(block->listen_ingest.host, "127.0.0.1");
	ck_assert_uint_eq(block->listen_ingest.port, 0);
	ck_assert_str_eq(block->listen_relay.host, "::1");
	ck_assert_uint_eq(block->listen_relay.port, 9081);
	ck_assert_str_eq(block->listen_http.host, "localhost");
	ck_assert_uint_eq(block->listen_http.port, 9080);
	ck_assert_str_eq(block->tls_cert, "/etc/vigil/cert.pem");
	ck_assert_str_eq(block->tls_key, "/etc/vigil/key.pem");
	ck_assert_int_eq(block->buffer_seconds, 45);
	ck_assert_uint_eq(block->ring_size, GIB);
	ck_assert_int_eq(block->max_sentinels, 10000);
	ck_assert_int_eq(block->max_proctors, 1);
	ck_assert_uint_eq(block->max_message_bytes, 1024);
	ck_assert_int_eq(block->proctor_queue_seconds, 600);
	ck_assert_int_eq(block->timeout_register_ms, 1500);
	ck_assert_int_eq(block->timeout_idle_ms, 120000);
	ck_assert_int_eq(block->timeout_heartbeat_ms, 86400000);
	ck_assert(!block->sentinel_auth);
	ck_assert_uint_eq(block->n_tokens, 2);
	ck_assert_str_eq(block->tokens[0].name, "p1");
	ck_assert_int_eq(block->tokens[0].role, CFG_ROLE_PROCTOR);
	ck_assert_str_eq(block->tokens[0].token, "s3cret");
	ck_assert_int_eq(block->tokens[0].expires, DEC2026);
	ck_assert_str_eq(block->tokens[1].token, "op secret");
	ck_assert_int_eq(block->retention_days, 0);
	ck_assert_uint_eq(block->archive_max_bytes, 0);
	ck_assert_int_eq(block->relay_workers, 3);
	ck_assert_uint_eq(cfg_relay_workers(block), 3);

	/* Both spellings give the same configuration. */
	a = cfg_to_json(block, false);
	b = cfg_to_json(flow, false);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_msg(json_equal(a, b), "block and flow differ");
	json_decref(a);
	json_decref(b);
	cfg_free(block);
	cfg_free(flow);
}
END_TEST

START_TEST(test_parse_size)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{ "0", 0 },
		{ "1024", 1024 },
		{ "1B", 1 },
		{ "1KiB", 1024 },
		{ "512MiB", 512 * MIB },
		{ "512 MiB", 512 * MIB },
		{ "200GiB", 200 * GIB },
		{ "2TiB", 2048 * GIB },
		{ "3KB", 3000 },
		{ "3MB", 3000000 },
		{ "3GB", 3000000000ULL },
		{ "3TB", 3000000000000ULL },
		{ "4k", 4096 },
		{ "4K", 4096 },
		{ "8M", 8 * MIB },
		{ "2G", 2 * GIB },
		{ "007", 7 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const struct {
		const char *s;
		int r;
	} bad[] = {
		{ "", -EINVAL },
		{ "-1", -EINVAL },
		{ "-1MiB", -EINVAL },
		{ "+1", -EINVAL },
		{ "1.5MiB", -EINVAL },
		{ "1,5MiB", -EINVAL },
		{ "MiB", -EINVAL },
		{ "1 ", -EINVAL },
		{ " 1", -EINVAL },
		{ "1  MiB", -EINVAL },
		{ "1mib", -EINVAL },
		{ "1kB", -EINVAL },
		{ "1MiBs", -EINVAL },
		{ "1e6", -EINVAL },
		{ "0x10", -EINVAL },
		{ "18446744073709551616", -ERANGE },
		{ "16777216TiB", -ERANGE },
		{ "99999999999999999999999MiB", -ERANGE },
	};
	uint64_t v;

	for (size_t i = 0; i < N(good); i++) {
		v = 1;
		ck_assert_msg(cfg_parse_size(good[i].s, &v) == 0, "\"%s\" refused", good[i].s);
		ck_assert_msg(v == good[i].v, "\"%s\" gave %llu", good[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < N(bad); i++) {
		v = 42;
		ck_assert_msg(cfg_parse_size(bad[i].s, &v) == bad[i].r, "\"%s\"", bad[i].s);
		ck_assert_uint_eq(v, 42);
	}
}
END_TEST

START_TEST(test_parse_duration)
{
	static const struct {
		const char *s;
		int64_t ms;
	} good[] = {
		{ "0", 0 },        { "5", 5000 },      { "500ms", 500 },
		{ "5s", 5000 },    { "30 s", 30000 },  { "2m", 120000 },
		{ "1h", 3600000 }, { "1d", 86400000 }, { "9223372036854775807ms", INT64_MAX },
	};
	static const struct {
		const char *s;
		int r;
	} bad[] = {
		{ "", -EINVAL },
		{ "-5s", -EINVAL },
		{ "1.5s", -EINVAL },
		{ "5x", -EINVAL },
		{ "5S", -EINVAL },
		{ "5 ", -EINVAL },
		{ "s", -EINVAL },
		{ "5sec", -EINVAL },
		{ "1m30s", -EINVAL },
		{ "9223372036854775808ms", -ERANGE },
		{ "200000000000d", -ERANGE },
		{ "9223372036854775807", -ERANGE },
	};
	int64_t ms;

	for (size_t i = 0; i < N(good); i++) {
		ms = -1;
		ck_assert_msg(cfg_parse_duration(good[i].s, &ms) == 0, "\"%s\" refused", good[i].s);
		ck_assert_msg(ms == good[i].ms, "\"%s\" gave %lld", good[i].s, (long long)ms);
	}
	for (size_t i = 0; i < N(bad); i++) {
		ms = 42;
		ck_assert_msg(cfg_parse_duration(bad[i].s, &ms) == bad[i].r, "\"%s\"", bad[i].s);
		ck_assert_int_eq(ms, 42);
	}
}
END_TEST

START_TEST(test_parse_time)
{
	static const struct {
		const char *s;
		int64_t t;
	} good[] = {
		{ "2026-12-01T00:00:00Z", DEC2026 },      { "2026-12-01T02:00:00+02:00", DEC2026 },
		{ "2026-11-30T21:30:00-02:30", DEC2026 }, { "2026-12-01T00:00:00+00:00", DEC2026 },
		{ "2026-12-01T00:00:00.750Z", DEC2026 },  { "1970-01-01T00:00:01Z", 1 },
		{ "2024-02-29T12:00:00Z", 1709208000 },
	};
	static const char *const bad[] = {
		"",
		"tomorrow",
		"2026-12-01",
		"2026-12-01T00:00:00",
		"2026-12-01 00:00:00Z",
		"2026-12-01t00:00:00Z",
		"2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z",
		"2026-02-29T00:00:00Z",
		"2026-04-31T00:00:00Z",
		"2026-12-01T24:00:00Z",
		"2026-12-01T00:60:00Z",
		"2026-12-01T00:00:60Z",
		"2026-12-01T00:00:00+0200",
		"2026-12-01T00:00:00+24:00",
		"2026-12-01T00:00:00Zjunk",
		"2026-12-01T00:00:00.Z",
		"26-12-01T00:00:00Z",
		"1969-12-31T23:59:59Z",
		"2026-12-1T00:00:00Z",
	};
	int64_t t;

	for (size_t i = 0; i < N(good); i++) {
		t = -1;
		ck_assert_msg(cfg_parse_time(good[i].s, &t) == 0, "\"%s\" refused", good[i].s);
		ck_assert_msg(t == good[i].t, "\"%s\" gave %lld", good[i].s, (long long)t);
	}
	for (size_t i = 0; i < N(bad); i++) {
		t = 42;
		ck_assert_msg(cfg_parse_time(bad[i], &t) < 0, "\"%s\" accepted", bad[i]);
		ck_assert_int_eq(t, 42);
	}
	/* Before the epoch after the offset is applied. */
	ck_assert_int_eq(cfg_parse_time("1970-01-01T00:00:00+01:00", &t), -ERANGE);
}
END_TEST

START_TEST(test_parse_listen)
{
	static const struct {
		const char *s, *host;
		uint16_t port;
	} good[] = {
		{ "0.0.0.0:8080", "0.0.0.0", 8080 },
		{ "127.0.0.1:0", "127.0.0.1", 0 },
		{ "[::1]:8080", "::1", 8080 },
		{ "[::]:443", "::", 443 },
		{ "[fe80::1:2]:65535", "fe80::1:2", 65535 },
		{ "localhost:8081", "localhost", 8081 },
		{ "vigil-1.example.org:1", "vigil-1.example.org", 1 },
	};
	static const struct {
		const char *s;
		int r;
	} bad[] = {
		{ "", -EINVAL },
		{ "8080", -EINVAL },
		{ ":8080", -EINVAL },
		{ "0.0.0.0:", -EINVAL },
		{ "0.0.0.0:-1", -EINVAL },
		{ "0.0.0.0:80x", -EINVAL },
		{ "0.0.0.0:65536", -ERANGE },
		{ "::1:8080", -EINVAL },
		{ "[::1]8080", -EINVAL },
		{ "[::1", -EINVAL },
		{ "[]:80", -EINVAL },
		{ "[1.2.3.4]:80", -EINVAL },
		{ "[::g]:80", -EINVAL },
		{ "256.1.1.1:80", -EINVAL },
		{ "host name:80", -EINVAL },
		{ "-host:80", -EINVAL },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:80",
		  -EINVAL },
	};
	struct cfg_listen l;

	for (size_t i = 0; i < N(good); i++) {
		memset(&l, 0, sizeof(l));
		ck_assert_msg(cfg_parse_listen(good[i].s, &l) == 0, "\"%s\" refused", good[i].s);
		ck_assert_str_eq(l.host, good[i].host);
		ck_assert_uint_eq(l.port, good[i].port);
	}
	for (size_t i = 0; i < N(bad); i++) {
		memset(&l, 0x5a, sizeof(l));
		ck_assert_msg(cfg_parse_listen(bad[i].s, &l) == bad[i].r, "\"%s\"", bad[i].s);
		ck_assert_uint_eq(l.port, 0x5a5a);
	}
}
END_TEST

START_TEST(test_roles)
{
	static const char *const names[] = { "sentinel", "proctor", "archivist", "operator" };
	enum cfg_role role;

	for (int i = 0; i < CFG_ROLE_COUNT; i++) {
		ck_assert_str_eq(cfg_role_name((enum cfg_role)i), names[i]);
		ck_assert_int_eq(cfg_role_parse(names[i], &role), 0);
		ck_assert_int_eq(role, i);
	}
	role = CFG_ROLE_PROCTOR;
	ck_assert_int_eq(cfg_role_parse("admin", &role), -EINVAL);
	ck_assert_int_eq(cfg_role_parse("Proctor", &role), -EINVAL);
	ck_assert_int_eq(role, CFG_ROLE_PROCTOR);
	ck_assert_str_eq(cfg_role_name(CFG_ROLE_COUNT), "unknown");
}
END_TEST

struct bad_file {
	const char *yaml;
	const char *err;
};

static const struct bad_file bad_syntax[] = {
	{ "listen: { ingest: 0.0.0.0:1\n",
	  "2:1: -: syntax error: did not find expected ',' or '}' while parsing a flow mapping "
	  "at line 1" },
	{ "a: b: c\n", "1:5: -: syntax error: mapping values are not allowed in this context" },
	{ "instance: \"vigil\nrun_dir: /x\n",
	  "3:1: -: syntax error: found unexpected end of stream while scanning a quoted scalar "
	  "at line 1" },
	/* Indentation: the line, how deep it is, and the levels open there. */
	{ "instance: a\n  run_dir: b\n",
	  "2:3: -: bad indentation: 2 spaces before run_dir; expected 0 (a top-level key)" },
	{ "instance: x\nring:\n  size: 16MiB\nlimits:\n  max_sentinels: 5\n max_proctors: 4\n",
	  "6:2: -: bad indentation: 1 space before max_proctors; expected 2 (a key of limits, as "
	  "max_sentinels at line 5) or 0 (a top-level key)" },
	{ "limits:\n  max_sentinels: 5\n    max_proctors: 4\ntimeouts:\n  idle: 3s\n",
	  "3:5: -: bad indentation: 4 spaces before max_proctors; expected 2 (a key of limits, as "
	  "max_sentinels at line 2) or 0 (a top-level key)" },
	{ "auth:\n  sentinel: none\n  tokens:\n    - name: a\n      role: proctor\n"
	  "     token: x\narchive: {}\n",
	  "6:6: -: bad indentation: 5 spaces before token; expected 6 (a key of auth.tokens[0], as "
	  "role at line 5), 4 (a '-' entry of auth.tokens), 2 (a key of auth, as tokens at line "
	  "3) or 0 (a top-level key)" },
	/* At a level that is open, the problem is another: libyaml's words, and
	 * the map it was in by its key rather than by the line it began on. */
	{ "limits:\n  max_sentinels: 5\n  - 4\n",
	  "3:3: -: syntax error: did not find expected key while parsing the keys of limits (from "
	  "line 2)" },
	{ "instance: \xff\n", "1:11: -: syntax error: invalid leading UTF-8 octet (byte 0xFF)" },
	{ "instance: *nope\n", "1:11: -: syntax error: found undefined alias" },
	{ "limits:\n\tmax_sentinels: 5\n",
	  "2:1: -: syntax error: found character that cannot start any token (a tab; indent with "
	  "spaces)" },
};

/* The top-level keys, as an unknown one's message lists them. */
#define CFG_TOP_KEYS                                                                             \
	"instance, run_dir, data_dir, log_level, listen, tls, trusted_proxies, buffer_seconds, " \
	"ring, limits, timeouts, auth, archive, audit or relay"

static const struct bad_file bad_keys[] = {
	{ "listen:\n  ingset: 0.0.0.0:1\n",
	  "2:3: listen.ingset: unknown key (expected ingest, relay or http); did you mean "
	  "listen.ingest?" },
	/* The key one level down, up, or in another map; a misspelling there. */
	{ "size: 3MiB\n", "1:1: size: unknown key (expected " CFG_TOP_KEYS "); did you mean "
			  "ring.size?" },
	{ "limits:\n  instance: x\n",
	  "2:3: limits.instance: unknown key (expected max_sentinels, max_proctors, "
	  "max_message_bytes, proctor_queue_seconds, max_connections_per_ip or max_handshakes); "
	  "did you mean instance?" },
	{ "limits: { size: 1GiB }\n",
	  "1:11: limits.size: unknown key (expected max_sentinels, max_proctors, "
	  "max_message_bytes, proctor_queue_seconds, max_connections_per_ip or max_handshakes); "
	  "did you mean ring.size?" },
	{ "retention_days: 3\n",
	  "1:1: retention_days: unknown key (expected " CFG_TOP_KEYS "); did you mean "
	  "archive.retention_days or audit.retention_days?" },
	{ "max_sentinel: 3\n",
	  "1:1: max_sentinel: unknown key (expected " CFG_TOP_KEYS "); did you mean "
	  "limits.max_sentinels?" },
	{ "Instance: a\n", "1:1: Instance: unknown key (expected " CFG_TOP_KEYS "); did you mean "
			   "instance?" },
	{ "colour: blue\n", "1:1: colour: unknown key (expected " CFG_TOP_KEYS ")" },
	{ "timeouts: { heartbeat: 5s }\n",
	  "1:13: timeouts.heartbeat: unknown key (expected register, idle or stage_heartbeat)" },
	{ "buffer_seconds: 10\nbuffer_seconds: 20\n",
	  "2:1: buffer_seconds: duplicate key (first at line 1)" },
	{ "ring: { size: 1GiB, size: 2GiB }\n",
	  "1:21: ring.size: duplicate key (first at line 1)" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor, token: x, name: b }\n",
	  "3:43: auth.tokens[0].name: duplicate key (first at line 3)" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor, token: x, colour: red }\n",
	  "3:43: auth.tokens[0].colour: unknown key (expected name, role, token, token_file or "
	  "expires)" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor, token: x, expire: 0 }\n",
	  "3:43: auth.tokens[0].expire: unknown key (expected name, role, token, token_file or "
	  "expires); did you mean auth.tokens[0].expires?" },
	{ "? [a, b]\n: 1\n", "1:3: -: expected a plain key, found a list" },
	{ "listen:\n  ? { a: 1 }\n  : 1\n", "2:5: listen: expected a plain key, found a map" },
};

static const struct bad_file bad_types[] = {
	{ "listen: 8080\n", "1:9: listen: expected a map, found \"8080\"" },
	{ "limits: [1, 2]\n", "1:9: limits: expected a map, found a list" },
	{ "buffer_seconds: { a: 1 }\n", "1:17: buffer_seconds: expected an integer, found a map" },
	{ "instance: [a]\n", "1:11: instance: expected an instance name, found a list" },
	{ "run_dir: { a: 1 }\n", "1:10: run_dir: expected a string, found a map" },
	{ "run_dir: \"\"\n", "1:10: run_dir: expected a non-empty string, found \"\"" },
	{ "ring:\n  size: [1]\n", "2:9: ring.size: expected a size, found a list" },
	{ "timeouts:\n  idle: {}\n", "2:9: timeouts.idle: expected a duration, found a map" },
	{ "limits:\n  max_sentinels: lots\n",
	  "2:18: limits.max_sentinels: expected an integer in 1..10000, found \"lots\"" },
	{ "buffer_seconds: 20.5\n",
	  "1:17: buffer_seconds: expected an integer in 1..3600, found \"20.5\"" },
	{ "buffer_seconds: 0x10\n",
	  "1:17: buffer_seconds: expected an integer in 1..3600, found \"0x10\"" },
	{ "log_level: verbose\n",
	  "1:12: log_level: expected error, warn, info or debug, found \"verbose\"" },
	{ "auth: { sentinel: maybe }\n",
	  "1:19: auth.sentinel: expected required or none, found \"maybe\"" },
	{ "auth: { sentinel: [required] }\n",
	  "1:19: auth.sentinel: expected required or none, found a list" },
	{ "auth:\n  tokens: { name: a }\n",
	  "2:11: auth.tokens: expected a list of tokens, found a map" },
	/* a bare secret where an entry belongs is not quoted back */
	{ "auth:\n  tokens:\n    - s3cret-bare\n",
	  "3:7: auth.tokens[0]: expected a map with name, role and token or token_file, "
	  "found a scalar (not quoted: it may be a secret)" },
	{ "auth:\n  tokens: s3cret-bare\n",
	  "2:11: auth.tokens: expected a list of tokens, found a scalar (not quoted: it may be a "
	  "secret)" },
	{ "tls: { cert: [a], key: b }\n",
	  "1:14: tls.cert: expected a file path or null, found a list" },
	{ "instance: \"a\\0b\"\n", "1:11: instance: expected text without NUL bytes" },
	{ "timeouts:\n  idle: soon\n",
	  "2:9: timeouts.idle: expected a duration such as 5s (plain seconds or units ms s m h d), "
	  "found \"soon\"" },
	{ "ring:\n  size: big\n",
	  "2:9: ring.size: expected a size such as 512MiB (units B KiB MiB GiB TiB KB MB GB TB), "
	  "found \"big\"" },
	{ "instance: \"line\\none \\\"quoted\\\" and a long tail that goes on\"\n",
	  "1:11: instance: expected 1..32 characters from [A-Za-z0-9_-], found "
	  "\"line\\none \\\"quoted\\\" and a long tail that g...\"" },
};

static const struct bad_file bad_ranges[] = {
	{ "ring: { size: 512KiB }\n",
	  "1:15: ring.size: expected a size in 1MiB..64GiB, found \"512KiB\"" },
	{ "ring: { size: 65GiB }\n",
	  "1:15: ring.size: expected a size in 1MiB..64GiB, found \"65GiB\"" },
	{ "ring: { size: 0 }\n", "1:15: ring.size: expected a size in 1MiB..64GiB, found \"0\"" },
	{ "ring: { size: -1MiB }\n",
	  "1:15: ring.size: expected a size such as 512MiB (units B KiB MiB GiB TiB KB MB GB TB), "
	  "found \"-1MiB\"" },
	{ "ring: { size: 99999999999999999999 }\n",
	  "1:15: ring.size: expected a size in 1MiB..64GiB, found \"99999999999999999999\"" },
	{ "archive: { max_bytes: 16777216TiB }\n",
	  "1:23: archive.max_bytes: expected 0 (unlimited) or a size in 1MiB..1048576TiB, found "
	  "\"16777216TiB\"" },
	{ "limits: { max_message_bytes: 512 }\n",
	  "1:30: limits.max_message_bytes: expected a size in 1KiB..256MiB, found \"512\"" },
	{ "limits: { max_message_bytes: 300MiB }\nring: { size: 4GiB }\n",
	  "1:30: limits.max_message_bytes: expected a size in 1KiB..256MiB, found \"300MiB\"" },
	{ "ring: { size: 16MiB }\nlimits: { max_message_bytes: 8MiB }\n",
	  "2:30: limits.max_message_bytes: expected at most ring.size/4 = 4MiB, found \"8MiB\"" },
	{ "ring: { size: 16MiB }\n",
	  "1:15: ring.size: expected at least 4 x limits.max_message_bytes = 32MiB, found "
	  "\"16MiB\"" },
	{ "limits: { max_sentinels: 0 }\n",
	  "1:26: limits.max_sentinels: expected an integer in 1..10000, found \"0\"" },
	{ "limits: { max_sentinels: 10001 }\n",
	  "1:26: limits.max_sentinels: expected an integer in 1..10000, found \"10001\"" },
	{ "limits: { max_sentinels: -5 }\n",
	  "1:26: limits.max_sentinels: expected an integer in 1..10000, found \"-5\"" },
	{ "limits: { max_proctors: 100001 }\n",
	  "1:25: limits.max_proctors: expected an integer in 1..100000, found \"100001\"" },
	{ "limits: { proctor_queue_seconds: 601 }\n",
	  "1:34: limits.proctor_queue_seconds: expected an integer in 1..600, found \"601\"" },
	{ "buffer_seconds: 3601\n",
	  "1:17: buffer_seconds: expected an integer in 1..3600, found \"3601\"" },
	{ "buffer_seconds: 99999999999999999999\n",
	  "1:17: buffer_seconds: expected an integer in 1..3600, found \"99999999999999999999\"" },
	{ "timeouts: { register: 0 }\n",
	  "1:23: timeouts.register: expected a duration in 1ms..1d, found \"0\"" },
	{ "timeouts: { idle: 25h }\n",
	  "1:19: timeouts.idle: expected a duration in 1ms..1d, found \"25h\"" },
	{ "timeouts: { stage_heartbeat: 500ms }\n",
	  "1:30: timeouts.stage_heartbeat: expected a duration in 1s..1d, found \"500ms\"" },
	{ "timeouts: { idle: 99999999999999999999ms }\n",
	  "1:19: timeouts.idle: expected a duration in 1ms..1d, found \"99999999999999999999ms\"" },
	{ "timeouts: { register: -1s }\n",
	  "1:23: timeouts.register: expected a duration such as 5s (plain seconds or units ms s m "
	  "h d), found \"-1s\"" },
	{ "archive: { retention_days: -1 }\n",
	  "1:28: archive.retention_days: expected an integer in 0..36500, found \"-1\"" },
	{ "archive: { retention_days: 36501 }\n",
	  "1:28: archive.retention_days: expected an integer in 0..36500, found \"36501\"" },
	{ "archive: { max_bytes: 512KiB }\n",
	  "1:23: archive.max_bytes: expected 0 (unlimited) or a size in 1MiB..1048576TiB, found "
	  "\"512KiB\"" },
	{ "relay: { workers: 9 }\n",
	  "1:19: relay.workers: expected an integer in 0..8, found \"9\"" },
	{ "relay: { workers: -1 }\n",
	  "1:19: relay.workers: expected an integer in 0..8, found \"-1\"" },
	{ "relay: { workers: two }\n",
	  "1:19: relay.workers: expected an integer in 0..8, found \"two\"" },
	{ "archive: { min_free: 91% }\n",
	  "1:22: archive.min_free: expected a size in 0..1048576TiB or a percentage in 0..90%, "
	  "found \"91%\"" },
	{ "archive: { min_free: 1048577TiB }\n",
	  "1:22: archive.min_free: expected a size in 0..1048576TiB or a percentage in 0..90%, "
	  "found \"1048577TiB\"" },
	{ "archive: { min_free: lots }\n",
	  "1:22: archive.min_free: expected auto, a size such as 20GiB or a percentage of the "
	  "volume such as 5%, found \"lots\"" },
	{ "archive: { min_free: 2.125% }\n",
	  "1:22: archive.min_free: expected auto, a size such as 20GiB or a percentage of the "
	  "volume such as 5%, found \"2.125%\"" },
	{ "archive: { min_free: [5%] }\n",
	  "1:22: archive.min_free: expected auto, a size or a percentage, found a list" },
};

static const struct bad_file bad_listen[] = {
	{ "listen: { http: \"8080\" }\n",
	  "1:17: listen.http: expected HOST:PORT such as 0.0.0.0:8080 (IPv6 as [::1]:8080), found "
	  "\"8080\"" },
	{ "listen:\n  relay: 0.0.0.0:70000\n",
	  "2:10: listen.relay: expected a port in 0..65535, found \"0.0.0.0:70000\"" },
	{ "listen:\n  ingest: \"::1:8082\"\n",
	  "2:11: listen.ingest: expected HOST:PORT such as 0.0.0.0:8080 (IPv6 as [::1]:8080), "
	  "found \"::1:8082\"" },
	{ "listen:\n  ingest: 300.0.0.1:8082\n",
	  "2:11: listen.ingest: expected HOST:PORT such as 0.0.0.0:8080 (IPv6 as [::1]:8080), "
	  "found \"300.0.0.1:8082\"" },
};

static const struct bad_file bad_instance[] = {
	{ "instance: vigil prod\n",
	  "1:11: instance: expected 1..32 characters from [A-Za-z0-9_-], found \"vigil prod\"" },
	{ "instance: hall/a\n",
	  "1:11: instance: expected 1..32 characters from [A-Za-z0-9_-], found \"hall/a\"" },
	{ "instance: abcdefghijklmnopqrstuvwxyz0123456\n",
	  "1:11: instance: expected 1..32 characters from [A-Za-z0-9_-], found "
	  "\"abcdefghijklmnopqrstuvwxyz0123456\"" },
	{ "instance: ''\n",
	  "1:11: instance: expected 1..32 characters from [A-Za-z0-9_-], found \"\"" },
};

static const struct bad_file bad_tls[] = {
	{ "tls: { cert: /etc/c.pem }\n",
	  "1:14: tls.cert: expected tls.key as well (TLS needs both), found only tls.cert" },
	{ "tls:\n  cert: null\n  key: /etc/k.pem\n",
	  "3:8: tls.key: expected tls.cert as well (TLS needs both), found only tls.key" },
	{ "tls: { cert: \"\", key: /k }\n",
	  "1:14: tls.cert: expected a non-empty string, found \"\"" },
};

static const struct bad_file bad_tokens[] = {
	{ "auth:\n  tokens:\n    - { role: proctor, token: x }\n",
	  "3:7: auth.tokens[0]: expected a name, found none" },
	{ "auth:\n  tokens:\n    - name: a\n      token: x\n",
	  "3:7: auth.tokens[0]: expected a role, found none" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor, token: x }\n"
	  "    - { name: b, role: admin, token: y }\n",
	  "4:24: auth.tokens[1].role: expected sentinel, proctor, archivist or operator, found "
	  "\"admin\"" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor, token: x, token_file: /etc/x }\n",
	  "3:7: auth.tokens[0]: expected exactly one of token or token_file, found both" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor }\n",
	  "3:7: auth.tokens[0]: expected exactly one of token or token_file, found neither" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor, token: \"\" }\n",
	  "3:40: auth.tokens[0].token: expected a non-empty string, found \"\"" },
	{ "auth:\n  tokens:\n    - { name: \"\", role: proctor, token: x }\n",
	  "3:15: auth.tokens[0].name: expected a non-empty string, found \"\"" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor, token: x, expires: 2026-12-01 }\n",
	  "3:52: auth.tokens[0].expires: expected an ISO-8601 time such as 2026-12-01T00:00:00Z "
	  "(Z or +HH:MM offset), found \"2026-12-01\"" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor, token: x, expires: 2026-12-01T00:00:00 }\n",
	  "3:52: auth.tokens[0].expires: expected an ISO-8601 time such as 2026-12-01T00:00:00Z "
	  "(Z or +HH:MM offset), found \"2026-12-01T00:00:00\"" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor, token: x }\n"
	  "    - { name: a, role: operator, token: y }\n",
	  "4:15: auth.tokens[1].name: expected a unique name, found \"a\" again (first at "
	  "auth.tokens[0])" },
	{ "auth:\n  tokens:\n    - { name: a, role: proctor, token: x }\n"
	  "    - { name: b, role: operator, token: x }\n",
	  "4:41: auth.tokens[1].token: expected a secret of its own, found the one of "
	  "auth.tokens[0]" },
};

static const struct bad_file bad_documents[] = {
	{ "- instance: a\n", "1:1: -: expected a map at the top level, found a list" },
	{ "hello\n", "1:1: -: expected a map at the top level, found \"hello\"" },
	{ "instance: a\n---\ninstance: b\n",
	  "3:1: -: expected one YAML document, found a second one" },
	{ "instance: a\n--- ~\n", "2:5: -: expected one YAML document, found a second one" },
	{ "instance: a\n---\n[oops\n",
	  "4:1: -: syntax error: did not find expected ',' or ']' while parsing a flow sequence "
	  "at line 3" },
};

START_TEST(test_bad_syntax)
{
	load_bad(bad_syntax[_i].yaml, bad_syntax[_i].err);
}
END_TEST

START_TEST(test_bad_keys)
{
	load_bad(bad_keys[_i].yaml, bad_keys[_i].err);
}
END_TEST

START_TEST(test_bad_types)
{
	load_bad(bad_types[_i].yaml, bad_types[_i].err);
}
END_TEST

START_TEST(test_bad_ranges)
{
	load_bad(bad_ranges[_i].yaml, bad_ranges[_i].err);
}
END_TEST

START_TEST(test_bad_listen)
{
	load_bad(bad_listen[_i].yaml, bad_listen[_i].err);
}
END_TEST

START_TEST(test_bad_instance)
{
	load_bad(bad_instance[_i].yaml, bad_instance[_i].err);
}
END_TEST

START_TEST(test_bad_tls)
{
	load_bad(bad_tls[_i].yaml, bad_tls[_i].err);
}
END_TEST

START_TEST(test_bad_tokens)
{
	load_bad(bad_tokens[_i].yaml, bad_tokens[_i].err);
}
END_TEST

START_TEST(test_bad_documents)
{
	load_bad(bad_documents[_i].yaml, bad_documents[_i].err);
}
END_TEST

START_TEST(test_token_file)
{
	char yaml[2 * PATH_MAX], path[PATH_MAX];
	struct cfg *cfg;

	snprintf(path, sizeof(path), "%s", write_file("sentinel.token", "  s3cret-token \t\r\n\n"));
	snprintf(yaml, sizeof(yaml),
		 "auth:\n  tokens:\n    - { name: hall-a, role: sentinel, token_file: %s }\n"
		 "    - { name: p, role: proctor, token: inline }\n",
		 path);
	cfg = load_ok(yaml);
	ck_assert_uint_eq(cfg->n_tokens, 2);
	/* Leading blanks belong to the secret; only the trailing ones are dropped. */
	ck_assert_str_eq(cfg->tokens[0].token, "  s3cret-token");
	ck_assert_str_eq(cfg->tokens[0].token_file, path);
	ck_assert_int_eq(cfg->tokens[0].role, CFG_ROLE_SENTINEL);
	ck_assert_ptr_null(cfg->tokens[1].token_file);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_token_file_errors)
{
	static const char head[] =
		"auth:\n  tokens:\n    - { name: a, role: sentinel, token_file: ";
	char yaml[2 * PATH_MAX], path[PATH_MAX], big[5000], expect[3 * PATH_MAX];

	snprintf(path, sizeof(path), "%s/missing.token", dir);
	snprintf(yaml, sizeof(yaml), "%s%s }\n", head, path);
	snprintf(expect, sizeof(expect),
		 "3:46: auth.tokens[0].token_file: cannot read token file %s: No such file or "
		 "directory",
		 path);
	load_bad(yaml, expect);

	snprintf(yaml, sizeof(yaml), "%s%s }\n", head, dir);
	snprintf(expect, sizeof(expect),
		 "3:46: auth.tokens[0].token_file: cannot read token file %s: Is a directory", dir);
	load_bad(yaml, expect);

	snprintf(path, sizeof(path), "%s", write_file("empty.token", " \n\n"));
	snprintf(yaml, sizeof(yaml), "%s%s }\n", head, path);
	snprintf(expect, sizeof(expect),
		 "3:46: auth.tokens[0].token_file: expected a token in %s, found an empty file",
		 path);
	load_bad(yaml, expect);

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(path, sizeof(path), "%s", write_file("big.token", big));
	snprintf(yaml, sizeof(yaml), "%s%s }\n", head, path);
	snprintf(expect, sizeof(expect),
		 "3:46: auth.tokens[0].token_file: token file %s is larger than 4096 bytes", path);
	load_bad(yaml, expect);

	/* A newline in the path still gives one line. */
	snprintf(yaml, sizeof(yaml), "%s\"%s/a\\nb\" }\n", head, dir);
	snprintf(expect, sizeof(expect),
		 "3:46: auth.tokens[0].token_file: cannot read token file %s/a?b: No such file or "
		 "directory",
		 dir);
	load_bad(yaml, expect);

	/* The same secret inline and in a file. */
	snprintf(path, sizeof(path), "%s", write_file("dup.token", "same\n"));
	snprintf(yaml, sizeof(yaml),
		 "auth:\n  tokens:\n    - { name: a, role: proctor, token: same }\n"
		 "    - { name: b, role: sentinel, token_file: %s }\n",
		 path);
	load_bad(yaml, "4:46: auth.tokens[1].token_file: expected a secret of its own, found the "
		       "one of auth.tokens[0]");

	/* Exactly 4 KiB is fine. */
	big[4096] = '\0';
	snprintf(path, sizeof(path), "%s", write_file("max.token", big));
	snprintf(yaml, sizeof(yaml), "%s%s }\n", head, path);
	cfg_free(load_ok(yaml));
}
END_TEST

START_TEST(test_json)
{
	struct cfg *cfg = load_ok(full_block);
	json_t *j, *tokens, *t;
	char *text;

	j = cfg_to_json(cfg, true);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "instance")), "hall_A-2");
	ck_assert_str_eq(json_string_value(json_object_get(j, "run_dir")), "run");
	ck_assert_str_eq(json_string_value(json_object_get(j, "data_dir")), "./data");
	ck_assert_str_eq(json_string_value(json_object_get(j, "log_level")), "debug");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "listen"), "ingest")),
			 "127.0.0.1:0");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "listen"), "relay")),
			 "[::1]:9081");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "listen"), "http")),
			 "localhost:9080");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "tls"), "cert")),
			 "/etc/vigil/cert.pem");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "buffer_seconds")), 45);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "ring"), "size")),
			 (json_int_t)GIB);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "limits"),
							    "max_message_bytes")),
			 1024);
	ck_assert_int_eq(json_integer_value(
				 json_object_get(json_object_get(j, "limits"), "max_sentinels")),
			 10000);
	ck_assert_int_eq(json_integer_value(
				 json_object_get(json_object_get(j, "timeouts"), "register")),
			 1500);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "timeouts"),
							    "stage_heartbeat")),
			 86400000);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "auth"), "sentinel")),
			 "none");
	ck_assert_int_eq(json_integer_value(
				 json_object_get(json_object_get(j, "archive"), "max_bytes")),
			 0);
	ck_assert_int_eq(json_integer_value(
				 json_object_get(json_object_get(j, "relay"), "workers")),
			 3);
	tokens = json_object_get(json_object_get(j, "auth"), "tokens");
	ck_assert_uint_eq(json_array_size(tokens), 2);
	t = json_array_get(tokens, 0);
	ck_assert_str_eq(json_string_value(json_object_get(t, "name")), "p1");
	ck_assert_str_eq(json_string_value(json_object_get(t, "role")), "proctor");
	ck_assert_str_eq(json_string_value(json_object_get(t, "token")), "***");
	ck_assert(json_is_null(json_object_get(t, "token_file")));
	ck_assert_str_eq(json_string_value(json_object_get(t, "expires")), "2026-12-01T00:00:00Z");
	t = json_array_get(tokens, 1);
	ck_assert_str_eq(json_string_value(json_object_get(t, "token")), "***");
	ck_assert(json_is_null(json_object_get(t, "expires")));
	text = json_dumps(j, 0);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_null(strstr(text, "s3cret"));
	free(text);
	json_decref(j);

	j = cfg_to_json(cfg, false);
	tokens = json_object_get(json_object_get(j, "auth"), "tokens");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tokens, 0), "token")),
			 "s3cret");
	json_decref(j);
	cfg_free(cfg);

	/* Defaults: TLS off shows as null, sentinel auth as "required". */
	ck_assert_int_eq(cfg_load(NULL, &cfg, NULL, 0), 0);
	j = cfg_to_json(cfg, true);
	ck_assert(json_is_null(json_object_get(json_object_get(j, "tls"), "cert")));
	ck_assert(json_is_null(json_object_get(json_object_get(j, "tls"), "key")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "auth"), "sentinel")),
			 "required");
	ck_assert_uint_eq(json_array_size(json_object_get(json_object_get(j, "auth"), "tokens")),
			  0);
	json_decref(j);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_json_token_file)
{
	char yaml[2 * PATH_MAX], *text;
	const char *path = write_file("p.token", "file-secret\n");
	struct cfg *cfg;
	json_t *j, *t;

	snprintf(yaml, sizeof(yaml),
		 "auth:\n  tokens:\n    - { name: p, role: proctor, "
		 "token_file: %s }\n",
		 path);
	cfg = load_ok(yaml);
	j = cfg_to_json(cfg, true);
	t = json_array_get(json_object_get(json_object_get(j, "auth"), "tokens"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(t, "token_file")), path);
	ck_assert_str_eq(json_string_value(json_object_get(t, "token")), "***");
	text = json_dumps(j, 0);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_null(strstr(text, "file-secret"));
	free(text);
	json_decref(j);
	cfg_free(cfg);
}
END_TEST

/* test_cfg_over.c: live updates over the file, in the same program. */
void cfg_over_tcases(Suite *s);

static void
add_loop(Suite *s, const char *name, const TTest *test, size_t n)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, setup_base, teardown_base);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test, 0, (int)n);
	suite_add_tcase(s, tc);
}

static void
add_one(Suite *s, const char *name, const TTest *test)
{
	add_loop(s, name, test, 1);
}

static Suite *
cfg_suite(void)
{
	Suite *s = suite_create("cfg");

	add_one(s, "defaults", test_defaults);
	add_one(s, "open_errors", test_open_errors);
	add_one(s, "err_buffer", test_err_buffer);
	add_one(s, "example", test_example);
	add_one(s, "expiry_notes", test_expiry_notes);
	add_one(s, "floor", test_floor);
	add_one(s, "styles", test_styles);
	add_one(s, "parse_size", test_parse_size);
	add_one(s, "parse_duration", test_parse_duration);
	add_one(s, "parse_time", test_parse_time);
	add_one(s, "parse_listen", test_parse_listen);
	add_one(s, "roles", test_roles);
	add_loop(s, "bad_syntax", test_bad_syntax, N(bad_syntax));
	add_loop(s, "bad_keys", test_bad_keys, N(bad_keys));
	add_loop(s, "bad_types", test_bad_types, N(bad_types));
	add_loop(s, "bad_ranges", test_bad_ranges, N(bad_ranges));
	add_loop(s, "bad_listen", test_bad_listen, N(bad_listen));
	add_loop(s, "bad_instance", test_bad_instance, N(bad_instance));
	add_loop(s, "bad_tls", test_bad_tls, N(bad_tls));
	add_loop(s, "bad_tokens", test_bad_tokens, N(bad_tokens));
	add_loop(s, "bad_documents", test_bad_documents, N(bad_documents));
	add_one(s, "token_file", test_token_file);
	add_one(s, "token_file_errors", test_token_file_errors);
	add_one(s, "json", test_json);
	add_one(s, "json_token_file", test_json_token_file);
	cfg_over_tcases(s);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(cfg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
