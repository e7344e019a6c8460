/* test_alog: archive/alog.c, the audit log's writer (docs/audit.md): the
 * line and its hash, the chain across batches and restarts, acks only after
 * the write, a record sent twice written once, a gap held back until the
 * missing one comes, a torn tail cut at start, a log shorter than head
 * continued after head (never re-using its seq), a malformed record skipped,
 * archive's own records (alog_put) answered with their batch's outcome and
 * found by id after a restart.
 * Each test gets a fresh temporary directory. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "alog.h"

#define B64 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" /* a hash */

static char tdir[64];

static void
setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/test_alog.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tdir);
	ck_assert_int_eq(system(cmd), 0);
}

struct acks {
	char src[48];
	uint64_t n;
	int count;
	void *own; /* the last alog_put answered, and how */
	int own_status;
};

static void
on_own(void *ctx, void *own, int status)
{
	struct acks *a = ctx;

	a->own = own;
	a->own_status = status;
	a->count++;
}

static void
on_ack(void *ctx, const char *to, const char *src, uint64_t n)
{
	struct acks *a = ctx;

	ck_assert_str_eq(to, "relay");
	snprintf(a->src, sizeof(a->src), "%s", src);
	a->n = n;
	a->count++;
}

/* Waits for the writer's next acks (up to 5 s); 0 when there were none. */
static int
wait_acks(struct alog *al, struct acks *a)
{
	struct pollfd p = { .fd = alog_fd(al), .events = POLLIN };
	int before = a->count;

	if (poll(&p, 1, 5000) > 0)
		alog_take_acks(al, on_ack, on_own, a);
	return a->count - before;
}

static void
push(struct alog *al, const char *src, uint64_t n, uint64_t base, const char *action)
{
	char text[256];

	snprintf(text, sizeof(text),
		 "{\"time\":1796000000000,\"actor\":\"p1\",\"role\":\"proctor\",\"remote\":"
		 "\"127.0.0.1\",\"action\":\"%s\",\"id\":\"%s.%llu\"}",
		 action, src, (unsigned long long)n);
	alog_push(al, "relay", src, n, base, text, strlen(text));
}

/* The day file's lines, parsed. */
static json_t *
lines(void)
{
	char cmd[256], *buf = NULL;
	size_t cap = 0;
	json_t *arr = json_array();
	FILE *f;

	snprintf(cmd, sizeof(cmd), "cat %s/audit-*.jsonl 2>/dev/null", tdir);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	while (getline(&buf, &cap, f) > 0) {
		json_t *j = json_loads(buf, 0, NULL);

		ck_assert_msg(j != NULL, "a line that is not JSON: %s", buf);
		json_array_append_new(arr, j);
	}
	free(buf);
	pclose(f);
	return arr;
}

static int64_t
seq_of(json_t *arr, size_t i)
{
	return json_integer_value(json_object_get(json_array_get(arr, i), "seq"));
}

START_TEST(test_line_and_hash)
{
	const char *text = "{\"time\":5,\"actor\":null,\"role\":null,\"remote\":\"x\","
			   "\"action\":\"delete\",\"sentinelId\":\"s\",\"id\":\"a.b.1\"}";
	char hash[65], hex[65], prev[65];
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t len;
	int err = 0;
	char *line;

	memset(prev, 'a', 64);
	prev[64] = '\0';
	line = alog_line(7, prev, text, strlen(text), hash, &len, &err);
	ck_assert_ptr_nonnull(line);
	ck_assert_int_eq(line[len - 1], '\n');
	ck_assert_msg(strncmp(line,
			      "{\"seq\":7,\"time\":5,\"actor\":null,\"role\":null,"
			      "\"remote\":\"x\",\"action\":\"delete\",\"sentinelId\":\"s\","
			      "\"id\":\"a.b.1\",\"prev\":\"aaaa",
			      93) == 0,
		      "%s", line);
	/* the hash is of the line up to ,"hash": and a closing brace */
	{
		char *cut = strstr(line, ",\"hash\":\"");
		char body[512];
		size_t n = (size_t)(cut - line);

		memcpy(body, line, n);
		body[n] = '}';
		SHA256((unsigned char *)body, n + 1, md);
		for (int i = 0; i < 32; i++)
			sprintf(hex + 2 * i, "%02x", md[i]);
		ck_assert_str_eq(hex, hash);
		ck_assert_int_eq(strncmp(cut + 9, hash, 64), 0);
	}
	free(line);
	/* a record without an id, with a seq of its own, or not JSON: refused */
	ck_assert_ptr_null(
		alog_line(1, prev, "{\"time\":1,\"action\":\"x\"}", 24, hash, &len, &err));
	ck_assert_int_eq(err, -EINVAL);
	ck_assert_ptr_null(alog_line(1, prev,
				     "{\"seq\":1,\"time\":1,\"action\":\"x\",\"id\":\"i\"}", 42,
				     hash, &len, &err));
	ck_assert_ptr_null(alog_line(1, prev, "[1", 2, hash, &len, &err));
}
END_TEST

START_TEST(test_chain_dups_and_gaps)
{
	struct alog *al;
	struct acks a = { 0 };
	json_t *arr;

	ck_assert_int_eq(alog_open(tdir, 365, &al), 0);
	push(al, "relay.1", 1, 1, "live.view");
	push(al, "relay.1", 2, 1, "live.view");
	ck_assert_int_ge(wait_acks(al, &a), 1);
	while (a.n < 2)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	ck_assert_str_eq(a.src, "relay.1");
	/* sent again (the ack was lost): acknowledged, not written again */
	push(al, "relay.1", 2, 1, "live.view");
	ck_assert_int_eq(wait_acks(al, &a), 1);
	ck_assert_uint_eq(a.n, 2);
	/* 4 before 3 (the bus dropped 3): held back, acknowledged up to 2 */
	push(al, "relay.1", 4, 3, "live.view");
	ck_assert_int_eq(wait_acks(al, &a), 1);
	ck_assert_uint_eq(a.n, 2);
	push(al, "relay.1", 3, 3, "live.view");
	push(al, "relay.1", 4, 3, "live.view");
	while (a.n < 4)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	alog_close(al);
	arr = lines();
	ck_assert_uint_eq(json_array_size(arr), 4);
	for (size_t i = 0; i < 4; i++) {
		ck_assert_int_eq(seq_of(arr, i), (int64_t)i + 1);
		if (i > 0)
			ck_assert_str_eq(
				json_string_value(json_object_get(json_array_get(arr, i), "prev")),
				json_string_value(
					json_object_get(json_array_get(arr, i - 1), "hash")));
	}
	json_decref(arr);
}
END_TEST

static void
append(const char *name, const char *text)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

START_TEST(test_restart_torn_tail_and_head)
{
	struct alog *al;
	struct acks a = { 0 };
	char cmd[256];
	json_t *arr;

	ck_assert_int_eq(alog_open(tdir, 365, &al), 0);
	push(al, "relay.1", 1, 1, "a");
	while (a.n < 1)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	alog_close(al);
	/* a crash in the middle of a line that was never acknowledged */
	snprintf(cmd, sizeof(cmd),
		 "cd %s && for f in audit-*.jsonl; do printf '{\"seq\":2,\"ti' >> $f; done", tdir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(alog_open(tdir, 365, &al), 0);
	/* the new writer remembers relay.1's 1: sent again, not written again */
	push(al, "relay.1", 1, 1, "a");
	push(al, "relay.2", 1, 1, "b");
	while (a.n < 1 || strcmp(a.src, "relay.2") != 0)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	alog_close(al);
	arr = lines();
	ck_assert_uint_eq(json_array_size(arr), 2);
	ck_assert_int_eq(seq_of(arr, 1), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 1), "action")), "b");
	json_decref(arr);

	/* head says 9: records were removed from the end. The writer goes on
	 * after head, so the gap shows instead of being papered over. */
	snprintf(cmd, sizeof(cmd), "%s/head", tdir);
	unlink(cmd);
	append("head", "{\"seq\":9,\"hash\":\"" B64 "\"}\n");
	ck_assert_int_eq(alog_open(tdir, 365, &al), 0);
	push(al, "relay.3", 1, 1, "c");
	a.n = 0;
	while (a.n < 1 || strcmp(a.src, "relay.3") != 0)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	alog_close(al);
	arr = lines();
	ck_assert_uint_eq(json_array_size(arr), 3);
	ck_assert_int_eq(seq_of(arr, 2), 10);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 2), "prev")), B64);
	json_decref(arr);
}
END_TEST

START_TEST(test_base_and_malformed)
{
	struct alog *al;
	struct acks a = { 0 };
	struct alog_figures f;
	const char *bad = "{\"time\":1,\"action\":\"x\"}"; /* no id */
	json_t *arr;

	ck_assert_int_eq(alog_open(tdir, 365, &al), 0);
	/* a sender whose records below 40 a writer before this one acknowledged */
	push(al, "vigild.9", 40, 40, "stage.set");
	while (a.n < 40)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	alog_push(al, "relay", "vigild.9", 41, 41, bad, strlen(bad));
	push(al, "vigild.9", 42, 41, "shutdown");
	while (a.n < 42)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	alog_figures(al, &f);
	ck_assert_uint_eq(f.refused, 1);
	ck_assert_uint_eq(f.seq, 2);
	ck_assert(f.ok);
	alog_close(al);
	arr = lines();
	ck_assert_uint_eq(json_array_size(arr), 2);
	json_decref(arr);
}
END_TEST

/* Today's day file as a link, which the writer never follows: its path. */
static void
unwritable_today(char *path, size_t size)
{
	char name[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(name, sizeof(name), "audit-%Y-%m-%d.jsonl", &tm);
	snprintf(path, size, "%s/%s", tdir, name);
	ck_assert_int_eq(symlink("/dev/full", path), 0);
}

/* A disk that refuses (here: the day file is a link, which the writer never
 * follows; ENOSPC takes the same path): nothing acknowledged, recording
 * stopped loudly, and the record written once the file can be. */
START_TEST(test_write_failure_then_recovery)
{
	struct alog *al;
	struct acks a = { 0 };
	struct alog_figures f;
	char path[160];
	json_t *arr;

	ck_assert_int_eq(alog_open(tdir, 365, &al), 0);
	unwritable_today(path, sizeof(path));
	push(al, "relay.1", 1, 1, "a");
	for (int i = 0; i < 500; i++) {
		alog_figures(al, &f);
		if (f.failures > 0)
			break;
		usleep(10000);
	}
	ck_assert_uint_ge(f.failures, 1);
	ck_assert(!f.ok);
	ck_assert_uint_eq(f.seq, 0);
	ck_assert_int_eq(a.count, 0);
	ck_assert_int_eq(unlink(path), 0);
	push(al, "relay.1", 1, 1, "a"); /* the sender sends it again */
	while (a.n < 1)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	alog_figures(al, &f);
	ck_assert(f.ok);
	ck_assert_uint_eq(f.seq, 1);
	alog_close(al);
	arr = lines();
	ck_assert_uint_eq(json_array_size(arr), 1);
	ck_assert_int_eq(seq_of(arr, 0), 1);
	json_decref(arr);
}
END_TEST

static void
put(struct alog *al, const char *id, void *own)
{
	char text[256];

	snprintf(text, sizeof(text),
		 "{\"time\":1796000000000,\"actor\":\"a1\",\"role\":\"archivist\",\"remote\":"
		 "\"127.0.0.1\",\"action\":\"delete\",\"id\":\"%s\"}",
		 id);
	ck_assert_int_eq(alog_put(al, text, strlen(text), own), 0);
}

/* A hard delete's record (docs/archive.md "Deletion"): answered once with
 * its batch's outcome, never written when that failed (and never again), in
 * the chain with the senders' records, and found by its id after a restart. */
START_TEST(test_own_records)
{
	struct alog *al;
	struct acks a = { 0 };
	char path[160];
	int tag1, tag2;
	json_t *arr;

	ck_assert_int_eq(alog_open(tdir, 365, &al), 0);
	unwritable_today(path, sizeof(path));
	put(al, "archive.0000000a.1", &tag1);
	while (a.own == NULL)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	ck_assert_ptr_eq(a.own, &tag1);
	ck_assert_int_lt(a.own_status, 0);
	ck_assert_int_eq(unlink(path), 0);
	push(al, "relay.1", 1, 1, "a");
	put(al, "archive.0000000a.2", &tag2);
	a.own = NULL;
	while (a.own == NULL || a.n < 1)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	ck_assert_ptr_eq(a.own, &tag2);
	ck_assert_int_eq(a.own_status, 0);
	alog_close(al);
	arr = lines();
	ck_assert_uint_eq(json_array_size(arr), 2); /* the failed one is not there */
	ck_assert_int_eq(seq_of(arr, 1), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 1), "id")),
			 "archive.0000000a.2");
	json_decref(arr);
	ck_assert_int_eq(alog_open(tdir, 365, &al), 0);
	ck_assert(alog_written(al, "archive.0000000a.2"));
	ck_assert(!alog_written(al, "archive.0000000a.3"));
	ck_assert(!alog_written(al, "archive.0000000b.1"));
	ck_assert(!alog_written(al, "archive.0000000a."));
	ck_assert(!alog_written(al, "nodot"));
	alog_close(al);
}
END_TEST

/* Whole day files older than retention_days go at start; base keeps the
 * last removed record, so the chain still starts somewhere checkable. */
START_TEST(test_retention)
{
	struct alog *al;
	struct acks a = { 0 };
	char cmd[512];
	json_t *arr;

	/* two old days of one record each, chained, then today's */
	ck_assert_int_eq(alog_open(tdir, 0, &al), 0);
	push(al, "relay.1", 1, 1, "a");
	push(al, "relay.1", 2, 1, "b");
	while (a.n < 2)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	alog_close(al);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && f=$(ls audit-*.jsonl) && head -1 $f > audit-2020-01-01.jsonl && "
		 "sed -n 2p $f > audit-2020-01-02.jsonl && rm $f",
		 tdir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(alog_open(tdir, 365, &al), 0);
	push(al, "relay.2", 1, 1, "c");
	a.n = 0;
	while (a.n < 1 || strcmp(a.src, "relay.2") != 0)
		ck_assert_int_ge(wait_acks(al, &a), 1);
	alog_close(al);
	arr = lines();
	ck_assert_uint_eq(json_array_size(arr), 1);
	ck_assert_int_eq(seq_of(arr, 0), 3);
	json_decref(arr);
	snprintf(cmd, sizeof(cmd),
		 "test ! -e %s/audit-2020-01-01.jsonl && grep -q '\"seq\":2' %s/base", tdir, tdir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *
alog_suite(void)
{
	Suite *s = suite_create("alog");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_line_and_hash);
	tcase_add_test(tc, test_chain_dups_and_gaps);
	tcase_add_test(tc, test_restart_torn_tail_and_head);
	tcase_add_test(tc, test_base_and_malformed);
	tcase_add_test(tc, test_write_failure_then_recovery);
	tcase_add_test(tc, test_retention);
	tcase_add_test(tc, test_own_records);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(alog_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
