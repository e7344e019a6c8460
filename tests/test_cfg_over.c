/* test_cfg_over: live updates over the file (common/cfg_over.c), part of the
 * cfg test program: merged values, every refusal with its exact
 * "config.update: KEY: ..." line, the tokens list replaced whole, which keys
 * are live, and values written as YAML (vigilctl config set). Each test writes
 * its file into a fresh mkdtemp() directory that its teardown removes.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MIB  (1024ULL * 1024)

/* test_cfg.c's suite calls it. */
void cfg_over_tcases(Suite *s);

static char over_dir[256];
static char over_path[PATH_MAX];

static int
over_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
over_setup(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(over_dir, sizeof(over_dir), "%s/test_cfg_over.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(over_dir));
}

static void
over_teardown(void)
{
	nftw(over_dir, over_remove, 8, FTW_DEPTH | FTW_PHYS);
}

static const char *
over_file(const char *text)
{
	FILE *f;

	snprintf(over_path, sizeof(over_path), "%s/vigil.yaml", over_dir);
	f = fopen(over_path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	return over_path;
}

static json_t *
json(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

	ck_assert_msg(j != NULL, "bad test JSON %s: %s", text, e.text);
	return j;
}

static struct cfg *
over_ok(const char *file, const char *update)
{
	json_t *u = update ? json(update) : NULL;
	struct cfg *cfg = NULL;
	char err[CFG_ERR_MAX] = "stale";
	int r;

	r = cfg_load_over(over_file(file), u, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "cfg_load_over: %d: %s", r, err);
	ck_assert_str_eq(err, "");
	json_decref(u);
	return cfg;
}

START_TEST(test_over_merges)
{
	const char *file = "limits: { max_proctors: 10, max_sentinels: 7 }\n"
			   "timeouts: { idle: 10s }\nlog_level: warn\n";
	struct cfg *cfg;

	cfg = over_ok(file,
		      "{\"limits\": {\"max_proctors\": 800}, \"timeouts\": {\"idle\": \"45s\"},"
		      " \"log_level\": \"debug\", \"archive\": {\"retention_days\": \"7\","
		      " \"max_bytes\": \"1GiB\", \"min_free\": \"2.5%\"}, \"auth\": {\"sentinel\":"
		      " \"none\"}}");
	ck_assert_int_eq(cfg->max_proctors, 800);
	ck_assert_int_eq(cfg->archive_min_free.kind, CFG_FLOOR_PERCENT);
	ck_assert_uint_eq(cfg->archive_min_free.hundredths, 250);
	ck_assert_int_eq(cfg->timeout_idle_ms, 45000);
	ck_assert_str_eq(cfg->log_level, "debug");
	ck_assert_int_eq(cfg->retention_days, 7);
	ck_assert_uint_eq(cfg->archive_max_bytes, 1024 * MIB);
	ck_assert(!cfg->sentinel_auth);
	/* The file's other values, and the defaults, stay. */
	ck_assert_int_eq(cfg->max_sentinels, 7);
	ck_assert_int_eq(cfg->timeout_register_ms, 5000);
	ck_assert_str_eq(cfg->path, over_path);
	cfg_free(cfg);

	/* No update, an empty one, an empty map: the file alone. */
	cfg = over_ok(file, NULL);
	ck_assert_int_eq(cfg->max_proctors, 10);
	cfg_free(cfg);
	cfg = over_ok(file, "{}");
	ck_assert_str_eq(cfg->log_level, "warn");
	cfg_free(cfg);
	cfg = over_ok(file, "{\"limits\": {}, \"timeouts\": null}");
	ck_assert_int_eq(cfg->timeout_idle_ms, 10000);
	cfg_free(cfg);

	/* A JSON number is read as its digits: 800.0 is 800. */
	cfg = over_ok(file, "{\"limits\": {\"max_proctors\": 800.0}}");
	ck_assert_int_eq(cfg->max_proctors, 800);
	cfg_free(cfg);
}
END_TEST

struct over_bad {
	const char *update;
	const char *err;
};

/* Against ring 16MiB and max_message_bytes 2MiB. */
static const struct over_bad over_bad[] = {
	{ "{\"limits\": {\"max_proctors\": \"lots\"}}",
	  "config.update: limits.max_proctors: expected an integer in 1..100000, found \"lots\"" },
	{ "{\"limits\": {\"max_proctors\": 0}}",
	  "config.update: limits.max_proctors: expected an integer in 1..100000, found \"0\"" },
	{ "{\"limits\": {\"max_proctors\": 1.5}}",
	  "config.update: limits.max_proctors: expected an integer in 1..100000, found \"1.5\"" },
	{ "{\"limits\": {\"max_proctors\": true}}",
	  "config.update: limits.max_proctors: expected an integer in 1..100000, found \"true\"" },
	{ "{\"timeouts\": {\"idle\": [1]}}",
	  "config.update: timeouts.idle: expected a duration, found a list" },
	{ "{\"timeouts\": {\"idle\": \"soon\"}}",
	  "config.update: timeouts.idle: expected a duration such as 5s (plain seconds or units "
	  "ms s m h d), found \"soon\"" },
	{ "{\"limits\": {\"max_proctor\": 3}}",
	  "config.update: limits.max_proctor: unknown key (expected max_sentinels, max_proctors, "
	  "max_message_bytes, proctor_queue_seconds, max_connections_per_ip or max_handshakes); "
	  "did you mean limits.max_proctors?" },
	{ "{\"colour\": \"blue\"}",
	  "config.update: colour: unknown key (expected instance, run_dir, data_dir, log_level, "
	  "listen, tls, trusted_proxies, buffer_seconds, ring, limits, timeouts, auth, archive, "
	  "audit or relay)" },
	{ "{\"limits\": 5}", "config.update: limits: expected a map, found \"5\"" },
	{ "{\"log_level\": \"verbose\"}",
	  "config.update: log_level: expected error, warn, info or debug, found \"verbose\"" },
	{ "{\"archive\": {\"max_bytes\": \"512KiB\"}}",
	  "config.update: archive.max_bytes: expected 0 (unlimited) or a size in "
	  "1MiB..1048576TiB, found \"512KiB\"" },
	{ "{\"auth\": {\"tokens\": [{\"name\": \"a\", \"role\": \"proctor\", \"token\": \"***\"}]}}",
	  "config.update: auth.tokens[0].token: expected the secret itself, found the redacted "
	  "\"***\"" },
	{ "{\"auth\": {\"tokens\": [{\"name\": \"a\", \"role\": \"proctor\"}]}}",
	  "config.update: auth.tokens[0]: expected exactly one of token or token_file, found "
	  "neither" },
	{ "{\"auth\": {\"tokens\": {\"name\": \"a\"}}}",
	  "config.update: auth.tokens: expected a list of tokens, found a map" },
	{ "{\"auth\": {\"tokens\": [{\"name\": \"a\", \"role\": \"boss\", \"token\": \"x\"}]}}",
	  "config.update: auth.tokens[0].role: expected sentinel, proctor, archivist or operator, "
	  "found \"boss\"" },
	/* The rules between keys, blaming the key the update named. */
	{ "{\"limits\": {\"max_message_bytes\": \"8MiB\"}}",
	  "config.update: limits.max_message_bytes: expected at most ring.size/4 = 4MiB, found "
	  "\"8MiB\"" },
	{ "{\"ring\": {\"size\": \"4MiB\"}}",
	  "config.update: ring.size: expected at least 4 x limits.max_message_bytes = 8MiB, "
	  "found \"4MiB\"" },
	{ "{\"tls\": {\"cert\": \"/etc/c.pem\"}}",
	  "config.update: tls.cert: expected tls.key as well (TLS needs both), found only "
	  "tls.cert" },
	{ "{\"instance\": \"a\\u0000b\"}",
	  "config.update: instance: expected text without NUL bytes" },
	{ "[1, 2]", "config.update: -: expected a map of keys as in the file" },
	{ "{\"limits\": {\"a\": {\"b\": {\"c\": {\"d\": {\"e\": {\"f\": {\"g\": {\"h\": {\"i\": {\"j\":"
	  " {\"k\": {\"l\": {\"m\": {\"n\": {\"o\": {\"p\": 1}}}}}}}}}}}}}}}}}",
	  "config.update: -: expected at most 16 levels of maps and lists (or out of memory)" },
};

START_TEST(test_over_refused)
{
	json_t *u = json(over_bad[_i].update);
	struct cfg *cfg = (struct cfg *)&cfg; /* must stay untouched */
	char err[CFG_ERR_MAX];
	int r;

	r = cfg_load_over(over_file("ring: { size: 16MiB }\nlimits: { max_message_bytes: 2MiB }\n"),
			  u, &cfg, err, sizeof(err));
	ck_assert_msg(r == -EINVAL, "%d (%s) for %s", r, err, over_bad[_i].update);
	ck_assert_ptr_eq(cfg, (struct cfg *)&cfg);
	ck_assert_str_eq(err, over_bad[_i].err);
	json_decref(u);
}
END_TEST

START_TEST(test_over_file_errors_stay)
{
	json_t *u = json("{\"limits\": {\"max_proctors\": 5}}");
	struct cfg *cfg = (struct cfg *)&cfg;
	char err[CFG_ERR_MAX], want[CFG_ERR_MAX + PATH_MAX];

	/* A fault in the file is the file's line, as a reload gives it. */
	ck_assert_int_eq(cfg_load_over(over_file("limits: { max_sentinels: 0 }\n"), u, &cfg, err,
				       sizeof(err)),
			 -EINVAL);
	snprintf(want, sizeof(want),
		 "%s:1:26: limits.max_sentinels: expected an integer in 1..10000, found \"0\"",
		 over_path);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_eq(cfg, (struct cfg *)&cfg);
	json_decref(u);
}
END_TEST

START_TEST(test_over_tokens)
{
	const char *file = "auth:\n  tokens:\n"
			   "    - { name: a, role: proctor, token: first }\n"
			   "    - { name: b, role: operator, token: second }\n";
	char tf[PATH_MAX + 32], update[PATH_MAX + 200];
	struct cfg *cfg;
	FILE *f;

	/* The update's list is the list: no merge by name. */
	cfg = over_ok(file, "{\"auth\": {\"tokens\": [{\"name\": \"c\", \"role\": \"sentinel\", "
			    "\"token\": \"third\", \"expires\": \"2030-01-01T00:00:00Z\"}]}}");
	ck_assert_uint_eq(cfg->n_tokens, 1);
	ck_assert_str_eq(cfg->tokens[0].name, "c");
	ck_assert_str_eq(cfg->tokens[0].token, "third");
	ck_assert_int_eq(cfg->tokens[0].role, CFG_ROLE_SENTINEL);
	ck_assert_int_eq(cfg->tokens[0].expires, 1893456000);
	cfg_free(cfg);

	cfg = over_ok(file, "{\"auth\": {\"tokens\": []}}");
	ck_assert_uint_eq(cfg->n_tokens, 0);
	ck_assert_ptr_null(cfg->tokens);
	cfg_free(cfg);

	cfg = over_ok(file, "{\"auth\": {\"tokens\": null}}");
	ck_assert_uint_eq(cfg->n_tokens, 2);
	cfg_free(cfg);

	/* token_file is read as the file's would be. */
	snprintf(tf, sizeof(tf), "%s/op.token", over_dir);
	f = fopen(tf, "w");
	ck_assert_ptr_nonnull(f);
	fputs("from-a-file\n", f);
	fclose(f);
	snprintf(update, sizeof(update),
		 "{\"auth\": {\"tokens\": [{\"name\": \"f\", \"role\": \"operator\", "
		 "\"token_file\": \"%s\"}]}}",
		 tf);
	cfg = over_ok(file, update);
	ck_assert_str_eq(cfg->tokens[0].token, "from-a-file");
	ck_assert_str_eq(cfg->tokens[0].token_file, tf);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_over_live_keys)
{
	static const char *const live[] = {
		"log_level",
		"limits.max_sentinels",
		"limits.max_proctors",
		"limits.proctor_queue_seconds",
		"limits.max_connections_per_ip",
		"limits.max_handshakes",
		"timeouts.register",
		"timeouts.idle",
		"timeouts.stage_heartbeat",
		"auth.sentinel",
		"auth.tokens",
		"archive.retention_days",
		"archive.max_bytes",
		"archive.min_free",
		"trusted_proxies",
	};
	static const char *const not_live[] = {
		"instance",        "run_dir",        "data_dir",  "listen.ingest",
		"listen.relay",    "listen.http",    "tls.cert",  "tls.key",
		"buffer_seconds",  "ring.size",      "limits",    "limits.max_message_bytes",
		"limits.nope",     "nope",           "",          "auth.tokens.name",
		"log_level.debug", "timeouts.idle.", "timeouts.", "relay.workers",
	};

	for (size_t i = 0; i < N(live); i++)
		ck_assert_msg(cfg_key_live(live[i]), "%s", live[i]);
	for (size_t i = 0; i < N(not_live); i++)
		ck_assert_msg(!cfg_key_live(not_live[i]), "%s", not_live[i]);
}
END_TEST

START_TEST(test_over_split)
{
	json_t *u, *lk = json_array(), *ok = json_array(), *live = NULL, *want;
	char *text;

	u = json("{\"limits\": {\"max_proctors\": 800, \"max_message_bytes\": \"4MiB\"},"
		 " \"listen\": {\"http\": \"0.0.0.0:1\"}, \"timeouts\": {\"idle\": null},"
		 " \"log_level\": \"warn\", \"archive\": null, \"tls\": {}}");
	ck_assert_int_eq(cfg_over_split(u, (void **)&live, lk, ok), 0);
	want = json("[\"limits.max_proctors\", \"timeouts.idle\", \"log_level\","
		    " \"archive.retention_days\", \"archive.max_bytes\", \"archive.min_free\"]");
	text = json_dumps(lk, 0);
	ck_assert_msg(json_equal(lk, want), "%s", text);
	free(text);
	json_decref(want);
	want = json("[\"limits.max_message_bytes\", \"listen.http\"]");
	ck_assert(json_equal(ok, want));
	json_decref(want);
	want = json("{\"limits\": {\"max_proctors\": 800}, \"timeouts\": {\"idle\": null},"
		    " \"log_level\": \"warn\", \"archive\": {\"retention_days\": null,"
		    " \"max_bytes\": null, \"min_free\": null}}");
	text = json_dumps(live, 0);
	ck_assert_msg(json_equal(live, want), "%s", text);
	free(text);
	json_decref(want);
	json_decref(live);
	json_decref(u);

	/* What cfg_load_over refuses is not sorted. */
	live = (json_t *)&live;
	u = json("{\"limits\": {\"nope\": 1}}");
	ck_assert_int_eq(cfg_over_split(u, (void **)&live, lk, ok), -EINVAL);
	json_decref(u);
	u = json("{\"limits\": 3}");
	ck_assert_int_eq(cfg_over_split(u, (void **)&live, lk, ok), -EINVAL);
	json_decref(u);
	u = json("[]");
	ck_assert_int_eq(cfg_over_split(u, (void **)&live, lk, ok), -EINVAL);
	json_decref(u);
	ck_assert_ptr_eq(live, (json_t *)&live);
	json_decref(lk);
	json_decref(ok);
}
END_TEST

struct yaml_case {
	const char *text;
	const char *json; /* NULL: refused with err */
	const char *err;
};

static const struct yaml_case yaml_cases[] = {
	{ "800", "800", NULL },
	{ "-3", "-3", NULL },
	{ "45s", "\"45s\"", NULL },
	{ "'800'", "\"800\"", NULL },
	{ "\"null\"", "\"null\"", NULL },
	{ "", "null", NULL },
	{ "null", "null", NULL },
	{ "~", "null", NULL },
	{ "2026-12-01T00:00:00Z", "\"2026-12-01T00:00:00Z\"", NULL },
	{ "0.0.0.0:8080", "\"0.0.0.0:8080\"", NULL },
	{ "[{name: a, role: proctor, token: x}]",
	  "[{\"name\": \"a\", \"role\": \"proctor\", \"token\": \"x\"}]", NULL },
	{ "{idle: 45s, register: 2s}", "{\"idle\": \"45s\", \"register\": \"2s\"}", NULL },
	{ "[oops", NULL,
	  "value:2:1: -: syntax error: did not find expected ',' or ']' while parsing a flow "
	  "sequence at line 1" },
	{ "a\n---\nb\n", NULL, "value:3:1: -: expected one value, found a second document" },
	{ "{a: 1, a: 2}", NULL,
	  "value:1:1: -: expected a value of at most 16 levels and 10000 nodes, without a key "
	  "twice" },
	/* Aliases would multiply: 10^5 nodes from a few lines. */
	{ "- &a [x, x, x, x, x, x, x, x, x, x]\n- &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	  "- &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
	  "- &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
	  "- [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
	  NULL,
	  "value:1:1: -: expected a value of at most 16 levels and 10000 nodes, without a key "
	  "twice" },
};

START_TEST(test_yaml_value)
{
	const struct yaml_case *c = &yaml_cases[_i];
	char err[CFG_ERR_MAX] = "stale";
	json_t *got = cfg_yaml_value(c->text, err, sizeof(err)), *want;
	char *text;

	if (c->json == NULL) {
		ck_assert_msg(got == NULL, "%s accepted", c->text);
		ck_assert_str_eq(err, c->err);
		return;
	}
	ck_assert_msg(got != NULL, "%s: %s", c->text, err);
	ck_assert_str_eq(err, "");
	want = json(c->json);
	text = json_dumps(got, JSON_ENCODE_ANY);
	ck_assert_msg(json_equal(got, want), "%s gave %s", c->text, text);
	free(text);
	json_decref(want);
	json_decref(got);
}
END_TEST

static void
over_add(Suite *s, const char *name, const TTest *test, size_t n)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, over_setup, over_teardown);
	tcase_add_loop_test(tc, test, 0, (int)n);
	suite_add_tcase(s, tc);
}

void
cfg_over_tcases(Suite *s)
{
	over_add(s, "over_merges", test_over_merges, 1);
	over_add(s, "over_refused", test_over_refused, N(over_bad));
	over_add(s, "over_file_errors_stay", test_over_file_errors_stay, 1);
	over_add(s, "over_tokens", test_over_tokens, 1);
	over_add(s, "over_live_keys", test_over_live_keys, 1);
	over_add(s, "over_split", test_over_split, 1);
	over_add(s, "yaml_value", test_yaml_value, N(yaml_cases));
}
