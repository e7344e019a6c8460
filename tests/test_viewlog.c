/* test_viewlog: relay/viewlog.c, the views' state file (docs/audit.md "What
 * each stage records"): a view's lines from begin to done and the file gone
 * after; what a killed process left (open views ended at the last alive
 * time, never before their start; ended ones at their end; done ones not at
 * all; a torn line passed over) recorded once with time = to; the file kept
 * small by its compaction and still right after it; views the outbox
 * refused (full) kept and sent again; no file at all without a directory;
 * httpd's journal, whose records all say "via".
 * The outbox is a real common/audit.c whose sends are captured; acks are
 * handed to it as the bus would. Each test gets a fresh directory. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>

#include "audit.h"
#include "mp.h"
#include "viewlog.h"

#define SID "6f1c1a4e-0b5e-4d7e-9f00-000000000001"
#define SES "6f1c1a4e-0b5e-4d7e-9f00-0000000000aa"

static char tdir[64], path[128];

/* What the outbox sent: each record's text, and the sender's src. */
static json_t *sent[4096];
static size_t n_sent;
static char src[64];

static void
setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/test_viewlog.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	snprintf(path, sizeof(path), "%s/audit/relay-0.views", tdir);
	n_sent = 0;
}

static void
teardown(void)
{
	char cmd[128];

	for (size_t i = 0; i < n_sent; i++)
		json_decref(sent[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tdir);
	ck_assert_int_eq(system(cmd), 0);
}

static int
capture(void *ctx, const void *body, size_t len)
{
	msgpack_unpacked unp;
	const char *text;
	size_t n;

	msgpack_unpacked_init(&unp);
	ck_assert_int_eq(mp_unpack(&unp, body, len, NULL), 0);
	ck_assert_int_eq(mp_get_strbuf(&unp.data, "src", src, sizeof(src)), 0);
	ck_assert_int_eq(mp_get_str(&unp.data, "record", &text, &n), 0);
	ck_assert_uint_lt(n_sent, 4096);
	sent[n_sent] = json_loadb(text, n, 0, NULL);
	ck_assert_ptr_nonnull(sent[n_sent]);
	n_sent++;
	msgpack_unpacked_destroy(&unp);
	return 0;
}

/* The writer's audit.ack for every record up to n. */
static void
ack(struct audit *a, uint64_t n)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct bus_msg msg = { .type = "audit.ack" };

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "src", src);
	mp_pack_kv_int(&pk, "n", (int64_t)n);
	msgpack_unpacked_init(&msg.unp);
	ck_assert_int_eq(mp_unpack(&msg.unp, sb.data, sb.size, NULL), 0);
	msg.body = &msg.unp.data;
	ck_assert(audit_on_msg(a, &msg));
	msgpack_unpacked_destroy(&msg.unp);
	msgpack_sbuffer_destroy(&sb);
}

static char *
slurp(const char *p)
{
	static char buf[1 << 20];
	int fd = open(p, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	return buf;
}

static void
put(const char *text)
{
	char dir[96];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/audit", tdir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static json_int_t
int_of(json_t *rec, const char *key)
{
	ck_assert(json_is_integer(json_object_get(rec, key)));
	return json_integer_value(json_object_get(rec, key));
}

static const char *
str_of(json_t *rec, const char *key)
{
	const char *s = json_string_value(json_object_get(rec, key));

	ck_assert_ptr_nonnull(s);
	return s;
}

/* rec's keys are keys[0..n), in that order. */
static void
assert_keys(json_t *rec, const char *const *keys, size_t n)
{
	const char *key;
	json_t *val;
	size_t i = 0;

	json_object_foreach(rec, key, val)
	{
		ck_assert_uint_lt(i, n);
		ck_assert_str_eq(key, keys[i++]);
	}
	ck_assert_uint_eq(i, n);
}

static struct relay_viewlog *
open_log(struct audit *a, int64_t now)
{
	struct relay_viewlog *vl = NULL;
	char dir[96];

	snprintf(dir, sizeof(dir), "%s/audit", tdir);
	ck_assert_int_eq(relay_viewlog_open(dir, "relay-0.views", a, now, &vl), 0);
	return vl;
}

START_TEST(test_a_view_from_begin_to_done)
{
	struct audit *a = audit_new("relay", capture, NULL);
	struct relay_viewlog *vl = open_log(a, 1000);
	struct relay_viewlog_figures fig;
	struct relay_view *v;
	struct stat sb;
	const char *keys[] = { "time",       "actor",     "role", "remote", "action",
			       "sentinelId", "sessionId", "from", "to",     "id" };
	char *text;

	ck_assert_int_eq(stat(path, &sb), -1); /* no view yet: no file */
	v = relay_viewlog_begin(vl, "desk \"1\"", "proctor", "10.0.0.7", SID, SES, 2000);
	ck_assert_ptr_nonnull(v);
	relay_viewlog_tick(vl, 2500);
	relay_viewlog_tick(vl, 2900); /* less than a second since: no second alive line */
	relay_viewlog_end(vl, v, 3000);
	text = slurp(path);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, "{\"k\":1,\"actor\":\"desk \\\"1\\\"\",\"role\":\"proctor\","
			       "\"remote\":\"10.0.0.7\",\"sentinelId\":\"" SID
			       "\",\"sessionId\":\"" SES "\",\"from\":2000}\n"
			       "{\"alive\":2500}\n"
			       "{\"k\":1,\"to\":3000}\n");
	ck_assert_uint_eq(n_sent, 1);
	assert_keys(sent[0], keys, 10);
	ck_assert_int_eq(int_of(sent[0], "time"), 3000);
	ck_assert_int_eq(int_of(sent[0], "from"), 2000);
	ck_assert_int_eq(int_of(sent[0], "to"), 3000);
	ck_assert_str_eq(str_of(sent[0], "actor"), "desk \"1\"");
	ck_assert_str_eq(str_of(sent[0], "action"), "live.view");
	relay_viewlog_figures(vl, &fig);
	ck_assert_uint_eq(fig.open, 0);
	ck_assert_uint_eq(fig.waiting, 1);
	ack(a, 1);
	relay_viewlog_figures(vl, &fig);
	ck_assert_uint_eq(fig.waiting, 0);
	ck_assert_uint_eq(fig.writes, 4);
	ck_assert_int_eq(stat(path, &sb), -1); /* nothing live: the file is gone */
	/* a view ending before it began (a clock step back) ends as it began */
	v = relay_viewlog_begin(vl, "p", "proctor", "::1", SID, SES, 5000);
	relay_viewlog_end(vl, v, 4000);
	ck_assert_int_eq(int_of(sent[1], "to"), 5000);
	relay_viewlog_close(vl);
	ck_assert_int_eq(stat(path, &sb), 0); /* unconfirmed: kept for the next start */
	audit_free(a);
}
END_TEST

START_TEST(test_recovery)
{
	struct audit *a = audit_new("relay", capture, NULL), *a2;
	struct relay_viewlog *vl, *vl2;
	struct relay_viewlog_figures fig;
	struct stat sb;
	char *text;

	put("{\"k\":3,\"actor\":\"a\",\"role\":\"proctor\",\"remote\":\"1.2.3.4\","
	    "\"sentinelId\":\"" SID "\",\"sessionId\":\"" SES "\",\"from\":1000}\n"
	    "{\"k\":4,\"actor\":\"b\",\"role\":\"proctor\",\"remote\":\"1.2.3.4\","
	    "\"sentinelId\":\"" SID "\",\"sessionId\":\"" SES "\",\"from\":1500}\n"
	    "{\"alive\":2000}\n"
	    "{\"k\":5,\"actor\":\"c\",\"role\":\"proctor\",\"remote\":\"1.2.3.4\","
	    "\"sentinelId\":\"" SID "\",\"sessionId\":\"" SES "\",\"from\":2200}\n"
	    "{\"k\":4,\"to\":1800}\n"
	    "{\"k\":6,\"actor\":\"d\",\"role\":\"proctor\",\"remote\":\"1.2.3.4\","
	    "\"sentinelId\":\"" SID "\",\"sessionId\":\"" SES "\",\"from\":1600,\"to\":1700}\n"
	    "{\"k\":7,\"actor\":\"e\",\"role\":\"proctor\",\"remote\":\"1.2.3.4\","
	    "\"sentinelId\":\"" SID "\",\"sessionId\":\"" SES "\",\"from\":1600}\n"
	    "{\"k\":7,\"to\":1900}\n"
	    "{\"k\":7,\"done\":true}\n"
	    "{\"alive\":2600}\n"
	    "{\"k\":9,\"to\":1}\n"
	    "{\"k\":3,\"to\":27");
	vl = open_log(a, 9000);
	/* k 3 open (its end line torn), k 4 ended, k 5 open, k 6 ended, k 7 done */
	ck_assert_uint_eq(n_sent, 4);
	ck_assert_str_eq(str_of(sent[0], "actor"), "a");
	ck_assert_int_eq(int_of(sent[0], "to"), 2600);
	ck_assert_int_eq(int_of(sent[0], "time"), 2600);
	ck_assert_str_eq(str_of(sent[1], "actor"), "b");
	ck_assert_int_eq(int_of(sent[1], "to"), 1800);
	ck_assert_str_eq(str_of(sent[2], "actor"), "c");
	ck_assert_int_eq(int_of(sent[2], "from"), 2200);
	ck_assert_int_eq(int_of(sent[2], "to"), 2600);
	ck_assert_str_eq(str_of(sent[3], "actor"), "d");
	ck_assert_int_eq(int_of(sent[3], "to"), 1700);
	ck_assert_str_eq(str_of(sent[3], "remote"), "1.2.3.4");
	relay_viewlog_figures(vl, &fig);
	ck_assert_uint_eq(fig.recovered, 4);
	ck_assert_uint_eq(fig.waiting, 4);
	/* Rewritten: each as ended, before any record went. */
	text = slurp(path);
	ck_assert_ptr_nonnull(strstr(text, "\"from\":1000,\"to\":2600}\n"));
	ck_assert_ptr_null(strstr(text, "done"));
	ck_assert_ptr_null(strstr(text, "\"e\""));
	/* Killed again before any ack (its outbox gone with it): the next
	 * process sends the same four, with the same times. */
	audit_free(a);
	relay_viewlog_close(vl);
	ck_assert_int_eq(stat(path, &sb), 0);
	a2 = audit_new("relay", capture, NULL);
	vl2 = open_log(a2, 9500);
	ck_assert_uint_eq(n_sent, 8);
	for (int i = 0; i < 4; i++) {
		ck_assert_str_eq(str_of(sent[4 + i], "actor"), str_of(sent[i], "actor"));
		ck_assert_int_eq(int_of(sent[4 + i], "from"), int_of(sent[i], "from"));
		ck_assert_int_eq(int_of(sent[4 + i], "to"), int_of(sent[i], "to"));
	}
	/* The writer confirms two, then the rest: the file goes with the last. */
	ack(a2, 2);
	ck_assert_int_eq(stat(path, &sb), 0);
	ack(a2, 4);
	ck_assert_int_eq(stat(path, &sb), -1);
	relay_viewlog_close(vl2);
	audit_free(a2);
}
END_TEST

START_TEST(test_compaction)
{
	struct audit *a = audit_new("relay", capture, NULL), *a2;
	struct relay_viewlog *vl = open_log(a, 0), *vl2;
	struct relay_viewlog_figures fig;
	struct relay_view *keep, *v;
	struct stat sb;
	int64_t t = 1000;
	uint64_t n = 0;

	keep = relay_viewlog_begin(vl, "keeper", "proctor", "10.0.0.1", SID, SES, t);
	for (int i = 0; i < 2000; i++) {
		t += 10;
		v = relay_viewlog_begin(vl, "churn", "proctor", "10.0.0.2", SID, SES, t);
		relay_viewlog_end(vl, v, t + 5);
		ack(a, ++n);
		relay_viewlog_tick(vl, t + 5);
	}
	relay_viewlog_figures(vl, &fig);
	ck_assert_uint_ge(fig.compactions, 1);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_lt(sb.st_size, (64 << 10) + 1024);
	/* What a process killed now leaves: the keeper alone, to the last alive. */
	a2 = audit_new("relay", capture, NULL);
	vl2 = open_log(a2, t + 100);
	ck_assert_uint_eq(n_sent, 2001);
	ck_assert_str_eq(str_of(sent[2000], "actor"), "keeper");
	ck_assert_int_eq(int_of(sent[2000], "from"), 1000);
	ck_assert_int_ge(int_of(sent[2000], "to"), t - 1000);
	ck_assert_int_le(int_of(sent[2000], "to"), t + 5);
	audit_free(a2);
	relay_viewlog_close(vl2);
	(void)keep;
	audit_free(a);
	relay_viewlog_close(vl);
}
END_TEST

START_TEST(test_outbox_full)
{
	struct audit *a = audit_new("relay", capture, NULL);
	struct relay_viewlog *vl = open_log(a, 0);
	struct relay_viewlog_figures fig;
	struct audit_figures af;
	struct relay_view *v;
	static char actor[20001];
	struct stat sb;
	int rounds = 0;

	/* 20 KB records: the outbox (AUDIT_QUEUE_MAX_BYTES) takes about 200. */
	memset(actor, 'x', sizeof(actor) - 1);
	for (int i = 0; i < 300; i++) {
		v = relay_viewlog_begin(vl, actor, "proctor", "10.0.0.7", SID, SES, 1000 + i);
		relay_viewlog_end(vl, v, 2000 + i);
	}
	audit_figures(a, &af);
	ck_assert_uint_gt(af.dropped, 0);
	ck_assert_uint_lt(af.queued, 300);
	relay_viewlog_figures(vl, &fig);
	ck_assert_uint_eq(fig.waiting, 300); /* refused by the outbox, kept here */
	/* The writer takes what was queued; the rest go at the next retries. */
	while (fig.waiting > 0 && rounds++ < 10) {
		ack(a, 100000);
		relay_viewlog_tick(vl, 3000 + 1000 * rounds);
		relay_viewlog_figures(vl, &fig);
	}
	ck_assert_uint_eq(fig.waiting, 0);
	ck_assert_int_eq(stat(path, &sb), -1);
	relay_viewlog_close(vl);
	audit_free(a);
}
END_TEST

START_TEST(test_without_a_file)
{
	struct audit *a = audit_new("relay", capture, NULL);
	struct relay_viewlog *vl = NULL;
	struct relay_view *v;
	struct stat sb;
	char dir[96];

	ck_assert_int_eq(relay_viewlog_open(NULL, "relay-0.views", a, 0, &vl), 0);
	v = relay_viewlog_begin(vl, "p", "proctor", "10.0.0.7", SID, SES, 10);
	relay_viewlog_tick(vl, 2000);
	relay_viewlog_end(vl, v, 3000);
	ck_assert_uint_eq(n_sent, 1);
	ck_assert_int_eq(int_of(sent[0], "to"), 3000);
	ack(a, 1);
	relay_viewlog_close(vl);
	snprintf(dir, sizeof(dir), "%s/audit", tdir);
	ck_assert_int_eq(stat(dir, &sb), -1);
	audit_free(a);
}
END_TEST

START_TEST(test_unusable_file_is_kept)
{
	struct audit *a = audit_new("relay", capture, NULL);
	struct relay_viewlog *vl = (struct relay_viewlog *)&vl;
	char dir[96];

	snprintf(dir, sizeof(dir), "%s/audit", tdir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0); /* not a regular file */
	ck_assert_int_lt(relay_viewlog_open(dir, "relay-0.views", a, 0, &vl), 0);
	ck_assert_ptr_eq(vl, (struct relay_viewlog *)&vl); /* untouched */
	ck_assert_int_eq(access(path, F_OK), 0);
	audit_free(a);
}
END_TEST

/* httpd's journal (live.mjpeg): every record, a recovered one too, says
 * "via" after "to". */
START_TEST(test_via)
{
	struct audit *a = audit_new("httpd", capture, NULL);
	struct relay_viewlog *vl = NULL;
	struct relay_view *v;
	const char *keys[] = { "time",      "actor", "role", "remote", "action", "sentinelId",
			       "sessionId", "from",  "to",   "via",    "id" };
	char dir[96];

	put("{\"k\":3,\"actor\":\"a\",\"role\":\"proctor\",\"remote\":\"1.2.3.4\","
	    "\"sentinelId\":\"" SID "\",\"sessionId\":\"" SES "\",\"from\":1000}\n"
	    "{\"alive\":2000}\n");
	snprintf(dir, sizeof(dir), "%s/audit", tdir);
	ck_assert_int_eq(relay_viewlog_open_via(dir, "relay-0.views", "live.mjpeg", a, 9000, &vl),
			 0);
	v = relay_viewlog_begin(vl, "b", "proctor", "1.2.3.4", SID, SES, 9100);
	relay_viewlog_end(vl, v, 9200);
	ck_assert_uint_eq(n_sent, 2);
	assert_keys(sent[0], keys, 11);
	ck_assert_int_eq(int_of(sent[0], "to"), 2000);
	ck_assert_str_eq(str_of(sent[0], "via"), "live.mjpeg");
	ck_assert_str_eq(str_of(sent[1], "via"), "live.mjpeg");
	ck_assert_int_eq(int_of(sent[1], "to"), 9200);
	ack(a, 2);
	ck_assert_int_eq(access(path, F_OK), -1);
	relay_viewlog_close(vl);
	audit_free(a);
}
END_TEST

static TCase *
tcase(const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test);
	return tc;
}

static Suite *
viewlog_suite(void)
{
	Suite *s = suite_create("viewlog");

	suite_add_tcase(s, tcase("begin_to_done", test_a_view_from_begin_to_done));
	suite_add_tcase(s, tcase("recovery", test_recovery));
	suite_add_tcase(s, tcase("compaction", test_compaction));
	suite_add_tcase(s, tcase("outbox_full", test_outbox_full));
	suite_add_tcase(s, tcase("without_a_file", test_without_a_file));
	suite_add_tcase(s, tcase("unusable_file", test_unusable_file_is_kept));
	suite_add_tcase(s, tcase("via", test_via));
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(viewlog_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
