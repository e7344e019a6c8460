/* test_aread: the audit log's reading side in httpd (httpd/aread_query.h,
 * httpd/aread_chain.h): GET /api/audit's query, a record's fields read in
 * place against jansson's reading of the same line (random mutations of real
 * records), the day files of a time range, and the chain check on small logs
 * written here. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "aread_chain.h"
#include "aread_query.h"

#define SID "0b6c1f2e-8d3a-4c5b-9e7f-112233445566"

/* ---- the query ---------------------------------------------------------- */

static int
parse(const char *query, struct aread_query *q, char *err)
{
	err[0] = '\0';
	return aread_query_parse(query, q, err, 256);
}

START_TEST(test_query_accepted)
{
	struct aread_query q;
	char err[256];

	ck_assert_int_eq(parse(NULL, &q, err), 0);
	ck_assert(!aread_query_filters(&q));
	ck_assert_int_eq(parse("", &q, err), 0);
	ck_assert_int_eq(parse("token=abc&x=1&&y", &q, err), 0); /* unknown: left alone */
	ck_assert(!aread_query_filters(&q));
	ck_assert_int_eq(parse("from=0&to=1796400000123&sentinelId=0B6C1F2E-8D3A-4C5B-9E7F-"
			       "112233445566&actor=hall%20a+b&action=live.view,export&limit=5",
			       &q, err),
			 0);
	ck_assert(q.has_from && q.has_to && q.has_sentinel && q.has_actor);
	ck_assert_int_eq(q.from, 0);
	ck_assert_int_eq(q.to, 1796400000123LL);
	ck_assert_str_eq(q.sentinel, SID);
	ck_assert_str_eq(q.actor, "hall a+b"); /* '+' is a plus, as every route reads it */
	ck_assert_int_eq(q.n_actions, 2);
	ck_assert_str_eq(q.actions[0], "live.view");
	ck_assert_str_eq(q.actions[1], "export");
	ck_assert_int_eq(q.limit, 5);
	ck_assert_int_eq(parse("from=5&to=5", &q, err), 0); /* one instant */
	ck_assert_int_eq(parse("actor=%C3%A9l%C3%A8ve", &q, err), 0);
	ck_assert_str_eq(q.actor, "\xc3\xa9l\xc3\xa8ve");
	ck_assert_int_eq(parse("fromx=1&xfrom=2", &q, err), 0);
	ck_assert(!q.has_from);
}
END_TEST

START_TEST(test_query_refused)
{
	static const struct {
		const char *query, *error;
	} bad[] = {
		{ "from=-1", "from must be unix milliseconds (a non-negative integer)" },
		{ "to=1.5", "to must be unix milliseconds (a non-negative integer)" },
		{ "from=01", "from must be unix milliseconds (a non-negative integer)" },
		{ "from=1e3", "from must be unix milliseconds (a non-negative integer)" },
		{ "to=9999999999999999999",
		  "to must be unix milliseconds (a non-negative integer)" },
		{ "from=6&to=5", "from is after to" },
		{ "from=", "from is empty" },
		{ "from", "from is empty" },
		{ "actor=", "actor is empty" },
		{ "sentinelId=", "sentinelId is empty" },
		{ "action=", "action is empty" },
		{ "limit=", "limit is empty" },
		{ "sentinelId=abc", "sentinelId is not a UUID" },
		{ "sentinelId=" SID "0", "sentinelId is not a UUID" },
		{ "actor=%zz", "actor has a bad percent-encoding or a control byte" },
		{ "actor=%4", "actor has a bad percent-encoding or a control byte" },
		{ "actor=a%00b", "actor has a bad percent-encoding or a control byte" },
		{ "actor=a%0Ab", "actor has a bad percent-encoding or a control byte" },
		{ "action=live.view,", "action must be a comma-separated list of action names "
				       "of 1 to 64 bytes" },
		{ "action=a,,b", "action must be a comma-separated list of action names of 1 "
				 "to 64 bytes" },
		{ "action=a%20b", "action must be action names (letters, digits, '.', '_', '-') "
				  "separated by commas" },
		{ "action=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "action lists more than 16 names" },
		{ "limit=0", "limit must be a positive integer" },
		{ "limit=-3", "limit must be a positive integer" },
		{ "action=x&action=y", "action is given twice (action takes one comma-separated "
				       "list)" },
		{ "from=1&from=1", "from is given twice (action takes one comma-separated list)" },
	};
	struct aread_query q;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(bad[i].query, &q, err) == -EINVAL, "accepted %s", bad[i].query);
		ck_assert_msg(strcmp(err, bad[i].error) == 0, "%s: %s", bad[i].query, err);
	}
}
END_TEST

START_TEST(test_query_long_values)
{
	char query[9000], err[256];
	struct aread_query q;

	memcpy(query, "actor=", 6);
	memset(query + 6, 'a', AREAD_ACTOR_MAX);
	query[6 + AREAD_ACTOR_MAX] = '\0';
	ck_assert_int_eq(parse(query, &q, err), 0);
	ck_assert_int_eq(strlen(q.actor), AREAD_ACTOR_MAX);
	strcat(query, "a");
	ck_assert_int_eq(parse(query, &q, err), -EINVAL);
	ck_assert_str_eq(err, "actor is over 256 bytes");
	memset(query + 6, 'a', 8190); /* as long as a request-target can make it */
	query[8196] = '\0';
	ck_assert_int_eq(parse(query, &q, err), -EINVAL);
	ck_assert_str_eq(err, "actor is over 256 bytes");
	memcpy(query, "action=", 7);
	memset(query + 7, 'b', AREAD_ACTION_MAX + 1);
	query[7 + AREAD_ACTION_MAX + 1] = '\0';
	ck_assert_int_eq(parse(query, &q, err), -EINVAL);
	ck_assert_str_eq(err, "action must be a comma-separated list of action names of 1 to 64 "
			      "bytes");
}
END_TEST

/* ---- fields ------------------------------------------------------------- */

static const char *const sample[] = {
	"{\"seq\":42,\"time\":1796400000123,\"actor\":\"proctors\",\"role\":\"proctor\","
	"\"remote\":\"10.0.0.7\",\"action\":\"live.view\",\"sentinelId\":\"" SID "\","
	"\"sessionId\":\"5f1e2d3c-4b5a-4697-8877-665544332211\",\"from\":1796399990000,"
	"\"to\":1796400000120,\"id\":\"relay.8f3a.17\",\"prev\":\"00ff\",\"hash\":\"abcd\"}",
	"{\"seq\":7,\"time\":-1,\"actor\":null,\"role\":null,\"remote\":\"local\",\"action\":"
	"\"config.update\",\"config\":{\"limits\":{\"max_proctors\":[1,2,{\"a\":true}]},\"x\":"
	"false},\"id\":\"vigild.1.1\",\"prev\":\"p\",\"hash\":\"h\"}",
	"{\"seq\":8,\"time\":0,\"actor\":\"\xc3\xa9l\xc3\xa8ve \xf0\x9f\x98\x80\",\"action\":"
	"\"mark\",\"note\":\"a \\\"quoted\\\" \\u00e9 word\",\"seq\":9}",
	"{\"seq\":1.5,\"time\":1e3,\"actor\":\"\\u0000x\",\"action\":\"x\"}",
	" { \"seq\" : 3 , \"action\" : [ ] , \"actor\" : { } } \r",
};

static const char *const fkeys[] = { "seq", "time", "actor", "action", "config", "prev" };
#define NKEYS (sizeof(fkeys) / sizeof(fkeys[0]))

/* jansson alone, as the reference. */
static int
ref_fields(const char *line, size_t len, struct aread_val *v, json_t **hold)
{
	json_t *j = json_loadb(line, len, JSON_ALLOW_NUL, NULL);

	*hold = j;
	memset(v, 0, NKEYS * sizeof(*v));
	if (j == NULL || !json_is_object(j))
		return -EINVAL;
	for (size_t i = 0; i < NKEYS; i++) {
		json_t *x = json_object_get(j, fkeys[i]);

		if (x == NULL)
			continue;
		if (json_is_string(x))
			v[i] = (struct aread_val){ .type = AREAD_STRING,
						   .s = json_string_value(x),
						   .len = json_string_length(x) };
		else if (json_is_integer(x))
			v[i] = (struct aread_val){ .type = AREAD_INT, .i = json_integer_value(x) };
		else
			v[i] = (struct aread_val){ .type = AREAD_OTHER };
	}
	return 0;
}

static void
same_fields(const char *line, size_t len)
{
	struct aread_val a[NKEYS], b[NKEYS];
	json_t *ha, *hb;
	int ra = aread_fields(line, len, fkeys, NKEYS, a, &ha);
	int rb = ref_fields(line, len, b, &hb);

	ck_assert_msg(ra == rb, "%d vs jansson's %d on [%.*s]", ra, rb, (int)len, line);
	for (size_t i = 0; ra == 0 && i < NKEYS; i++) {
		ck_assert_msg(a[i].type == b[i].type, "%s: type %d vs %d on [%.*s]", fkeys[i],
			      a[i].type, b[i].type, (int)len, line);
		if (a[i].type == AREAD_INT)
			ck_assert_int_eq(a[i].i, b[i].i);
		if (a[i].type == AREAD_STRING)
			ck_assert(a[i].len == b[i].len && memcmp(a[i].s, b[i].s, a[i].len) == 0);
	}
	json_decref(ha);
	json_decref(hb);
}

START_TEST(test_fields_samples)
{
	struct aread_val v[NKEYS];
	json_t *hold;

	for (size_t i = 0; i < sizeof(sample) / sizeof(sample[0]); i++)
		same_fields(sample[i], strlen(sample[i]));
	/* The writer's spelling is read in place: nothing held. */
	ck_assert_int_eq(aread_fields(sample[0], strlen(sample[0]), fkeys, NKEYS, v, &hold), 0);
	ck_assert_ptr_null(hold);
	ck_assert_int_eq(v[0].i, 42);
	ck_assert(v[2].len == 8 && memcmp(v[2].s, "proctors", 8) == 0);
	ck_assert_int_eq(v[4].type, AREAD_ABSENT);
	/* A repeated key: the last one. */
	ck_assert_int_eq(aread_fields(sample[2], strlen(sample[2]), fkeys, NKEYS, v, &hold), 0);
	ck_assert_int_eq(v[0].i, 9);
	json_decref(hold);
	static const char *const notjson[] = {
		"",
		"{",
		"[]",
		"{\"a\":1}x",
		"{\"a\":01}",
		"{\"a\":-}",
		"{\"a\":tru}",
		"{'a':1}",
		"{\"a\":\"\x01\"}",
		"{\"a\":\"\xc0\x80\"}",
		"{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\" 1}",
		"{\"a\":1,}",
		"{\"a\":[1,]}",
		"{\"a\":99999999999999999999}",
		"\"x\"",
	};
	for (size_t i = 0; i < sizeof(notjson) / sizeof(notjson[0]); i++) {
		ck_assert_msg(aread_fields(notjson[i], strlen(notjson[i]), fkeys, NKEYS, v,
					   &hold) == -EINVAL,
			      "read as JSON: %s", notjson[i]);
		json_decref(hold);
	}
}
END_TEST

/* Real records with bytes changed, dropped and repeated: reading in place
 * never says other than jansson. */
START_TEST(test_fields_mutations)
{
	static const char alphabet[] = "{}[]\",:\\ 0123456789-.eEtrufalsn\x01\xc3\xa9\xff\r";
	char buf[1024];
	unsigned seed = 17;

	for (int round = 0; round < 200000; round++) {
		const char *s = sample[rand_r(&seed) % (sizeof(sample) / sizeof(sample[0]))];
		size_t len = strlen(s), k = 1 + rand_r(&seed) % 3;

		memcpy(buf, s, len);
		for (size_t m = 0; m < k; m++) {
			size_t at = (size_t)rand_r(&seed) % len;
			char c = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];

			switch (rand_r(&seed) % 3) {
			case 0:
				buf[at] = c;
				break;
			case 1:
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
				break;
			default:
				if (len + 1 < sizeof(buf)) {
					memmove(buf + at + 1, buf + at, len - at);
					buf[at] = c;
					len++;
				}
			}
			if (len < 2)
				break;
		}
		same_fields(buf, len);
	}
}
END_TEST

START_TEST(test_match)
{
	struct aread_query q;
	char err[256];
	const char *l = sample[0];
	size_t n = strlen(l);

	ck_assert_int_eq(parse("", &q, err), 0);
	ck_assert(aread_match(&q, "not json", 8)); /* no filter: every line */
	ck_assert_int_eq(parse("action=export", &q, err), 0);
	ck_assert(!aread_match(&q, "not json", 8));
	ck_assert(!aread_match(&q, l, n));
	ck_assert_int_eq(parse("action=export,live.view", &q, err), 0);
	ck_assert(aread_match(&q, l, n));
	ck_assert_int_eq(parse("action=live", &q, err), 0);
	ck_assert(!aread_match(&q, l, n)); /* exact, not a prefix */
	ck_assert_int_eq(parse("from=1796400000123&to=1796400000123", &q, err), 0);
	ck_assert(aread_match(&q, l, n)); /* both ends included */
	ck_assert_int_eq(parse("from=1796400000124", &q, err), 0);
	ck_assert(!aread_match(&q, l, n));
	ck_assert_int_eq(parse("to=1796400000122", &q, err), 0);
	ck_assert(!aread_match(&q, l, n));
	ck_assert_int_eq(parse("sentinelId=" SID, &q, err), 0);
	ck_assert(aread_match(&q, l, n));
	ck_assert_int_eq(parse("sentinelId=0B6C1F2E-8D3A-4C5B-9E7F-112233445566", &q, err), 0);
	ck_assert(aread_match(&q, l, n));
	ck_assert_int_eq(parse("sentinelId=0b6c1f2e-8d3a-4c5b-9e7f-112233445567", &q, err), 0);
	ck_assert(!aread_match(&q, l, n));
	ck_assert_int_eq(parse("actor=proctors&action=live.view&from=1", &q, err), 0);
	ck_assert(aread_match(&q, l, n));
	ck_assert_int_eq(parse("actor=Proctors", &q, err), 0);
	ck_assert(!aread_match(&q, l, n)); /* exact */
	ck_assert_int_eq(parse("actor=%C3%A9", &q, err), 0);
	ck_assert(aread_match(&q, "{\"actor\":\"\\u00e9\"}", 18)); /* escaped: jansson reads it */
	ck_assert_int_eq(parse("from=0", &q, err), 0);
	ck_assert(!aread_match(&q, "{\"time\":\"1\"}", 12)); /* a time that is not an integer */
}
END_TEST

/* ---- day files ---------------------------------------------------------- */

START_TEST(test_days)
{
	struct aread_query q;
	char name[64], err[256];

	ck_assert_int_eq(aread_day_of_name("audit-1970-01-01.jsonl"), 0);
	ck_assert_int_eq(aread_day_of_name("audit-2026-12-01.jsonl"), 20788);
	ck_assert_int_eq(aread_day_of_name("audit-2024-02-29.jsonl"), 19782);
	static const char *const bad[] = {
		"audit-2023-02-29.jsonl",
		"audit-2026-13-01.jsonl",
		"audit-2026-04-31.jsonl",
		"audit-1969-12-31.jsonl",
		"audit-2026-1-01.jsonl",
		"audit-2026-01-01.json",
		"audit-2026-01-01.jsonl~",
		"head",
		"base",
		"audit-2026-01-0a.jsonl",
		"xudit-2026-01-01.jsonl",
		"audit-2026-00-10.jsonl",
		"audit-2026-01-00.jsonl",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(aread_day_of_name(bad[i]) == -1, "a day: %s", bad[i]);
	for (int64_t d = 0; d < 200000; d += 7) {
		aread_day_name(d, name, sizeof(name));
		ck_assert_int_eq(aread_day_of_name(name), d);
	}
	aread_day_name(20788, name, sizeof(name));
	ck_assert_str_eq(name, "audit-2026-12-01.jsonl");
	/* 2026-12-01T00:00:00.005Z to the same day's noon: the day before and after too. */
	ck_assert_int_eq(parse("from=1796083200005&to=1796126400000", &q, err), 0);
	ck_assert(!aread_day_wanted(&q, 20786));
	ck_assert(aread_day_wanted(&q, 20787));
	ck_assert(aread_day_wanted(&q, 20788));
	ck_assert(aread_day_wanted(&q, 20789));
	ck_assert(!aread_day_wanted(&q, 20790));
	ck_assert_int_eq(parse("action=x", &q, err), 0);
	ck_assert(aread_day_wanted(&q, 0) && aread_day_wanted(&q, 99999));
}
END_TEST

/* ---- the chain ---------------------------------------------------------- */

static char tmpdir[64];
static int dirfd_;
static char prev_[65];
static int64_t seq_;

static void
chain_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-aread-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirfd_, 0);
	memset(prev_, '0', 64);
	prev_[64] = '\0';
	seq_ = 0;
}

static void
chain_teardown(void)
{
	char cmd[128];

	close(dirfd_);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

/* The next record's line, as the writer makes it (no newline). */
static void
record(char *out, size_t size)
{
	char body[512];
	unsigned char md[32];
	unsigned mdlen;
	int n;

	seq_++;
	n = snprintf(body, sizeof(body),
		     "{\"seq\":%lld,\"time\":%lld,\"actor\":\"ops\",\"role\":\"operator\","
		     "\"remote\":\"local\",\"action\":\"stage.set\",\"stage\":\"relay\","
		     "\"id\":\"t.1.%lld\",\"prev\":\"%s\"}",
		     (long long)seq_, 1796400000000LL + seq_, (long long)seq_, prev_);
	ck_assert(EVP_Digest(body, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1);
	for (int i = 0; i < 32; i++)
		snprintf(prev_ + 2 * i, 3, "%02x", md[i]);
	body[n - 1] = '\0';
	snprintf(out, size, "%s,\"hash\":\"%s\"}", body, prev_);
}

static void
put(const char *file, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
	f = fopen(path, "a");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void
put_records(const char *file, int n)
{
	char line[700];

	for (int i = 0; i < n; i++) {
		record(line, sizeof(line));
		put(file, line);
		put(file, "\n");
	}
}

START_TEST(test_chain_empty)
{
	struct aread_verdict v;

	ck_assert_int_eq(aread_chain_check(-1, &v), 0);
	ck_assert(v.ok);
	ck_assert_int_eq(v.records, 0);
	ck_assert_int_eq(aread_chain_check(dirfd_, &v), 0);
	ck_assert(v.ok && v.records == 0 && v.first_bad == -1 && v.head == -1 && v.base == -1);
}
END_TEST

START_TEST(test_chain_good_with_empty_lines_and_other_files)
{
	struct aread_verdict v;
	char head[200];

	put_records("audit-2026-12-01.jsonl", 3);
	put("audit-2026-12-01.jsonl", "\n"); /* an empty line is no record (the doc's script) */
	put_records("audit-2026-12-02.jsonl", 2);
	put("notes.txt", "not a day file\n");
	put("audit-2026-12-02.jsonl.bak", "{}\n");
	snprintf(head, sizeof(head), "{\"seq\":5,\"hash\":\"%s\"}", prev_);
	put("head", head);
	ck_assert_int_eq(aread_chain_check(dirfd_, &v), 0);
	ck_assert_msg(v.ok, "%s", v.reason);
	ck_assert_int_eq(v.records, 5);
	ck_assert_int_eq(v.head, 5);
}
END_TEST

START_TEST(test_chain_cut_last_line)
{
	struct aread_verdict v;
	char line[700];

	put_records("audit-2026-12-01.jsonl", 2);
	record(line, sizeof(line));
	put("audit-2026-12-01.jsonl", line); /* whole, but no newline */
	ck_assert_int_eq(aread_chain_check(dirfd_, &v), 0);
	ck_assert(!v.ok);
	ck_assert_int_eq(v.first_bad, 3);
	ck_assert_int_eq(v.records, 2);
	ck_assert_str_eq(v.reason, "the last line has no newline (cut short)");
	ck_assert_str_eq(v.file, "audit-2026-12-01.jsonl");
	ck_assert_int_eq(v.line, 3);
}
END_TEST

/* The writer appends the line's end while the check waits for it. */
START_TEST(test_chain_line_being_written)
{
	struct aread_verdict v;
	char line[700], path[128];
	size_t half;
	pid_t pid;
	FILE *f;

	put_records("audit-2026-12-01.jsonl", 2);
	record(line, sizeof(line));
	half = strlen(line) / 2;
	snprintf(path, sizeof(path), "%s/audit-2026-12-01.jsonl", tmpdir);
	f = fopen(path, "a");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(line, 1, half, f), half);
	fclose(f);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		usleep(20 * 1000);
		f = fopen(path, "a");
		fprintf(f, "%s\n", line + half);
		fclose(f);
		_exit(0);
	}
	ck_assert_int_eq(aread_chain_check(dirfd_, &v), 0);
	waitpid(pid, NULL, 0);
	ck_assert_msg(v.ok, "%s", v.reason);
	ck_assert_int_eq(v.records, 3);
}
END_TEST

START_TEST(test_chain_head_and_base)
{
	struct aread_verdict v;

	put_records("audit-2026-12-01.jsonl", 2);
	put("head", "{\"seq\":4,\"hash\":\"x\"}");
	ck_assert_int_eq(aread_chain_check(dirfd_, &v), 0);
	ck_assert(!v.ok);
	ck_assert_int_eq(v.first_bad, 3);
	ck_assert_str_eq(v.reason, "the log ends at record 2 but head says 4 was written");
	ck_assert_str_eq(v.file, "");
	unlinkat(dirfd_, "head", 0);
	put("head", "{\"seq\":\"4\"}");
	ck_assert_int_eq(aread_chain_check(dirfd_, &v), 0);
	ck_assert(!v.ok);
	ck_assert_int_eq(v.first_bad, -1);
	ck_assert_str_eq(v.reason, "head is not {\"seq\":N,\"hash\":\"...\"}");
	unlinkat(dirfd_, "head", 0);
	put("base", "[]");
	ck_assert_int_eq(aread_chain_check(dirfd_, &v), 0);
	ck_assert(!v.ok);
	ck_assert_str_eq(v.reason, "base is not {\"seq\":N,\"hash\":\"...\"}");
}
END_TEST

START_TEST(test_chain_from_base)
{
	struct aread_verdict v;
	char base[200];

	put_records("audit-2026-12-01.jsonl", 3);
	snprintf(base, sizeof(base), "{\"seq\":3,\"hash\":\"%s\"}", prev_);
	put_records("audit-2026-12-02.jsonl", 2);
	unlinkat(dirfd_, "audit-2026-12-01.jsonl", 0);
	put("base", base);
	ck_assert_int_eq(aread_chain_check(dirfd_, &v), 0);
	ck_assert_msg(v.ok, "%s", v.reason);
	ck_assert_int_eq(v.records, 2);
	ck_assert_int_eq(v.base, 3);
}
END_TEST

START_TEST(test_chain_long_line)
{
	struct aread_verdict v;
	char *big = malloc(AREAD_LINE_MAX + 10);

	put_records("audit-2026-12-01.jsonl", 1);
	memset(big, 'x', AREAD_LINE_MAX + 5);
	big[AREAD_LINE_MAX + 5] = '\0';
	put("audit-2026-12-01.jsonl", big);
	put("audit-2026-12-01.jsonl", "\n");
	ck_assert_int_eq(aread_chain_check(dirfd_, &v), 0);
	ck_assert(!v.ok);
	ck_assert_int_eq(v.first_bad, 2);
	ck_assert_int_eq(v.line, 2);
	ck_assert_str_eq(v.reason, "the line is over 1 MiB");
	free(big);
}
END_TEST

static Suite *
aread_suite(void)
{
	Suite *s = suite_create("aread");
	TCase *tc;

	tc = tcase_create("query");
	tcase_add_test(tc, test_query_accepted);
	tcase_add_test(tc, test_query_refused);
	tcase_add_test(tc, test_query_long_values);
	suite_add_tcase(s, tc);
	tc = tcase_create("fields");
	tcase_add_test(tc, test_fields_samples);
	tcase_add_test(tc, test_fields_mutations);
	tcase_add_test(tc, test_match);
	suite_add_tcase(s, tc);
	tc = tcase_create("days");
	tcase_add_test(tc, test_days);
	suite_add_tcase(s, tc);
	tc = tcase_create("chain");
	tcase_add_checked_fixture(tc, chain_setup, chain_teardown);
	tcase_add_test(tc, test_chain_empty);
	tcase_add_test(tc, test_chain_good_with_empty_lines_and_other_files);
	tcase_add_test(tc, test_chain_cut_last_line);
	tcase_add_test(tc, test_chain_line_being_written);
	tcase_add_test(tc, test_chain_head_and_base);
	tcase_add_test(tc, test_chain_from_base);
	tcase_add_test(tc, test_chain_long_line);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(aread_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
