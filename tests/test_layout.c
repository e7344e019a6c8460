/* test_layout: common/layout.c, the archive's format on disk as both archive
 * and httpd read it: directory names, the walk over an index's complete lines
 * (invalid and non-ascending lines passed over, a torn tail left), reading an
 * index from an offset, the fast reading of index lines against jansson's,
 * session.json and sentinel.json texts and their
 * parsers, .deleted-sessions. Names and single index lines are also covered by
 * test_archive. Each test gets a fresh temporary directory. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"

static char tdir[64];
static int tfd = -1;

static void
setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/test_layout.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	tfd = open(tdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(tfd, 0);
}

static void
teardown(void)
{
	char cmd[128];

	close(tfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void
put(const char *name, const char *text)
{
	int fd = openat(tfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t len = strlen(text);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
}

/* An index line of sequence seq, appended to buf. */
static void
line(char *buf, size_t size, int64_t seq)
{
	struct layout_entry e = { .sequence = seq,
				  .start_ms = 1000 * seq,
				  .duration_ms = 1000,
				  .bytes = 10 + (uint64_t)seq,
				  .keyframe = true };
	char l[LAYOUT_LINE_MAX];

	memset(e.sha256, 'a', 64);
	ck_assert_int_gt(layout_entry_format(&e, l, sizeof(l)), 0);
	ck_assert_uint_lt(strlen(buf) + strlen(l), size);
	strcat(buf, l);
}

START_TEST(test_dir_and_file_names)
{
	uint8_t id[16];
	int64_t seq = -1;

	ck_assert(layout_id_name("0b6c0000-0000-4000-8000-00000000000a", id));
	ck_assert_uint_eq(id[15], 0x0a);
	ck_assert(!layout_id_name("0B6C0000-0000-4000-8000-00000000000A", NULL));
	ck_assert(!layout_id_name(".deleting-0b6c0000-0000-4000-8000-00000000000a", NULL));
	ck_assert(!layout_id_name("0b6c0000-0000-4000-8000-00000000000a.tmp", NULL));
	ck_assert(!layout_id_name("", NULL));
	ck_assert(!layout_id_name("0b6c0000-0000-4000-8000-00000000000", NULL));
	ck_assert(!layout_id_name("0b6c0000-0000-4000-8000+00000000000a", NULL));
	ck_assert(!layout_id_name("0b6c0000-0000-4000-8000-00000000000g", NULL));
	for (int i = 0; i < 1000; i++) {
		char text[ID_STR_LEN];
		uint8_t want[16];

		id_new(text);
		ck_assert_int_eq(id_parse(text, want), 0);
		ck_assert(layout_id_name(text, id));
		ck_assert_int_eq(memcmp(id, want, 16), 0);
	}
	ck_assert(layout_seg_file("000042.m4s", &seq));
	ck_assert_int_eq(seq, 42);
	ck_assert(layout_seg_file("1000000.m4s", &seq));
	ck_assert_int_eq(seq, 1000000);
	ck_assert(!layout_seg_file("42.m4s", &seq));
	ck_assert(!layout_seg_file("000042.m4s.tmp", &seq));
	ck_assert(!layout_seg_file("99999999999999999999.m4s", &seq));
}
END_TEST

START_TEST(test_index_walk)
{
	char buf[4096] = "";
	struct layout_index_iter it;
	struct layout_entry e;
	const char *l;
	size_t len;
	int64_t seen[8];
	int n = 0, bad = 0, r;

	line(buf, sizeof(buf), 0);
	line(buf, sizeof(buf), 1);
	strcat(buf, "{\"sequence\":2,\"what\":true}\n"); /* not an entry */
	line(buf, sizeof(buf), 1);                       /* not ascending */
	line(buf, sizeof(buf), 3);
	strcat(buf, "\n"); /* empty */
	line(buf, sizeof(buf), 5);
	strcat(buf, "{\"sequence\":6,\"star"); /* torn */
	layout_index_begin(&it, buf, strlen(buf), -1);
	while ((r = layout_index_next(&it, &e, &l, &len)) != 0) {
		if (r < 0) {
			bad++;
			continue;
		}
		ck_assert_int_eq(l[len], '\n');
		seen[n++] = e.sequence;
	}
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(bad, 3);
	ck_assert_int_eq(seen[0], 0);
	ck_assert_int_eq(seen[1], 1);
	ck_assert_int_eq(seen[2], 3);
	ck_assert_int_eq(seen[3], 5);
	ck_assert_int_eq(it.last_seq, 5);
	ck_assert_str_eq(it.p, "{\"sequence\":6,\"star");
	/* The next call still finds nothing: the tail is not a line yet. */
	ck_assert_int_eq(layout_index_next(&it, &e, NULL, NULL), 0);
	/* Going on from an entry: what does not ascend from it is passed over. */
	layout_index_begin(&it, buf, strlen(buf), 3);
	n = 0;
	while ((r = layout_index_next(&it, &e, NULL, NULL)) != 0)
		n += r > 0;
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(e.sequence, 5);
}
END_TEST

START_TEST(test_index_read_from_offset)
{
	char idx[4096] = "", *buf;
	size_t len, first;
	int fd;

	line(idx, sizeof(idx), 0);
	first = strlen(idx);
	line(idx, sizeof(idx), 1);
	put(LAYOUT_INDEX, idx);
	fd = openat(tfd, LAYOUT_INDEX, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(layout_index_read(fd, 0, &buf, &len), 0);
	ck_assert_uint_eq(len, strlen(idx));
	ck_assert_str_eq(buf, idx);
	free(buf);
	ck_assert_int_eq(layout_index_read(fd, first, &buf, &len), 0);
	ck_assert_str_eq(buf, idx + first);
	free(buf);
	ck_assert_int_eq(layout_index_read(fd, 1u << 20, &buf, &len), 0); /* past the end */
	ck_assert_uint_eq(len, 0);
	free(buf);
	close(fd);
	fd = openat(tfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_eq(layout_index_read(fd, 0, &buf, &len), -EINVAL);
	close(fd);
}
END_TEST

/* The fast reading of archive's own spelling agrees with jansson's on that
 * spelling, on edge values, and on many small corruptions of it. */
static void
same_reading(const char *line, size_t len)
{
	struct layout_entry a, b;
	int ra = layout_entry_parse(line, len, &a), rb = layout_entry_parse_json(line, len, &b);

	ck_assert_msg(ra == rb, "%d vs %d for %.*s", ra, rb, (int)len, line);
	if (ra < 0)
		return;
	ck_assert_int_eq(a.sequence, b.sequence);
	ck_assert_int_eq(a.start_ms, b.start_ms);
	ck_assert_uint_eq(a.duration_ms, b.duration_ms);
	ck_assert_uint_eq(a.bytes, b.bytes);
	ck_assert_int_eq(a.keyframe, b.keyframe);
	ck_assert_uint_eq(a.init, b.init);
	ck_assert_str_eq(a.sha256, b.sha256);
}

START_TEST(test_entry_fast_reading_agrees_with_jansson)
{
	static const char *const edges[] = {
		"0",
		"1",
		"-1",
		"-0",
		"00",
		"01",
		"4294967295",
		"4294967296",
		"999999999999999999",
		"9223372036854775807",
		"9223372036854775808",
		"-9223372036854775808",
		"1.0",
		"1e3",
		"true",
		"\"1\"",
		"",
	};
	static const char alphabet[] = "0123456789-+ .,:\"{}aAefltrun\\\x01\xc3";
	static const char *const fields[] = { "sequence", "startTime", "duration", "bytes",
					      "init" };
	char line[LAYOUT_LINE_MAX * 2], base[LAYOUT_LINE_MAX];
	struct layout_entry e = { .sequence = 123456,
				  .start_ms = 1763900000000,
				  .duration_ms = 1000,
				  .bytes = 98765,
				  .keyframe = true,
				  .init = 3 };
	uint64_t x = 0x9e3779b97f4a7c15u;
	int n;

	memset(e.sha256, 'f', 64);
	n = layout_entry_format(&e, base, sizeof(base)) - 1; /* without the '\n' */
	same_reading(base, (size_t)n);
	e.keyframe = false;
	e.start_ms = -5;
	n = layout_entry_format(&e, base, sizeof(base)) - 1;
	same_reading(base, (size_t)n);
	/* Each field at each edge value, in archive's spelling otherwise. */
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
		for (size_t v = 0; v < sizeof(edges) / sizeof(edges[0]); v++) {
			snprintf(line, sizeof(line),
				 "{\"sequence\":%s,\"startTime\":%s,\"duration\":%s,\"bytes\":%s,"
				 "\"keyframe\":true,\"init\":%s,\"sha256\":\"%064d\"}",
				 f == 0 ? edges[v] : "7", f == 1 ? edges[v] : "7",
				 f == 2 ? edges[v] : "7", f == 3 ? edges[v] : "7",
				 f == 4 ? edges[v] : "7", 0);
			same_reading(line, strlen(line));
		}
	}
	/* Small corruptions: a byte replaced, dropped or added, up to three times. */
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)n;

		memcpy(line, base, len);
		for (int k = 0, edits = 1 + round % 3; k < edits; k++) {
			size_t at;
			char c;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			at = (size_t)(x % (len + 1));
			c = alphabet[(x >> 32) % (sizeof(alphabet) - 1)];
			switch ((x >> 48) % 3) {
			case 0:
				if (at < len)
					line[at] = c;
				break;
			case 1:
				if (at < len) {
					memmove(line + at, line + at + 1, len - at - 1);
					len--;
				}
				break;
			default:
				memmove(line + at + 1, line + at, len - at);
				line[at] = c;
				len++;
				break;
			}
		}
		same_reading(line, len);
	}
}
END_TEST

START_TEST(test_session_and_sentinel)
{
	struct layout_session s = { .sentinel = "0b6c0000-0000-4000-8000-000000000001",
				    .session = "5f1e0000-0000-4000-8000-000000000002",
				    .name = "hall-a-07",
				    .codec = "avc1.64001f",
				    .width = 1280,
				    .height = 720,
				    .timescale = 90000,
				    .start_ms = 1763900000000,
				    .end_ms = 1763900060000,
				    .inits = 2 },
			      got;
	struct layout_sentinel t = { .sentinel = "0b6c0000-0000-4000-8000-000000000001",
				     .name = "hall-a-07",
				     .updated_ms = 1763900000000 },
			       tgot;
	char *text = layout_session_text(&s);

	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, "{\"sentinelId\":\"0b6c0000-0000-4000-8000-000000000001\","
			       "\"sessionId\":\"5f1e0000-0000-4000-8000-000000000002\","
			       "\"name\":\"hall-a-07\",\"codec\":\"avc1.64001f\",\"width\":1280,"
			       "\"height\":720,\"timescale\":90000,\"startTime\":1763900000000,"
			       "\"endTime\":1763900060000,\"inits\":2}");
	put(LAYOUT_SESSION, text);
	free(text);
	ck_assert_int_eq(layout_session_read(tfd, &got), 0);
	ck_assert_str_eq(got.sentinel, s.sentinel);
	ck_assert_str_eq(got.session, s.session);
	ck_assert_str_eq(got.name, s.name);
	ck_assert_str_eq(got.codec, s.codec);
	ck_assert_uint_eq(got.width + got.height + got.timescale, 1280 + 720 + 90000);
	ck_assert_int_eq(got.start_ms, s.start_ms);
	ck_assert_int_eq(got.end_ms, s.end_ms);
	ck_assert_uint_eq(got.inits, 2);
	/* Only startTime is required; the rest defaults, endTime to null. */
	ck_assert_int_eq(layout_session_parse("{\"startTime\":5}", 15, &got), 0);
	ck_assert_int_eq(got.start_ms, 5);
	ck_assert_int_eq(got.end_ms, -1);
	ck_assert_str_eq(got.name, "");
	ck_assert_int_eq(layout_session_parse("{\"startTime\":null}", 18, &got), -EINVAL);
	ck_assert_int_eq(layout_session_parse("[]", 2, &got), -EINVAL);
	ck_assert_int_eq(layout_session_parse("{\"startTime\":1,\"startTime\":2}", 29, &got),
			 -EINVAL);

	text = layout_sentinel_text(&t);
	ck_assert_str_eq(text, "{\"sentinelId\":\"0b6c0000-0000-4000-8000-000000000001\","
			       "\"name\":\"hall-a-07\",\"updated\":1763900000000}");
	ck_assert_int_eq(layout_sentinel_read(tfd, &tgot), -ENOENT);
	put(LAYOUT_SENTINEL, text);
	free(text);
	ck_assert_int_eq(layout_sentinel_read(tfd, &tgot), 0);
	ck_assert_str_eq(tgot.sentinel, t.sentinel);
	ck_assert_str_eq(tgot.name, t.name);
	ck_assert_int_eq(tgot.updated_ms, t.updated_ms);
	ck_assert_int_eq(layout_sentinel_parse("{\"sentinelId\":\"x\"}", 18, &tgot), -EINVAL);
	/* Never through a symlink. */
	ck_assert_int_eq(unlinkat(tfd, LAYOUT_SENTINEL, 0), 0);
	ck_assert_int_eq(symlinkat(LAYOUT_SESSION, tfd, LAYOUT_SENTINEL), 0);
	ck_assert_int_eq(layout_sentinel_read(tfd, &tgot), -EINVAL);
}
END_TEST

START_TEST(test_deleted_sessions)
{
	uint8_t(*ids)[16];
	size_t n;

	ck_assert_int_eq(layout_deleted_read(tfd, &ids, &n), -ENOENT);
	put(LAYOUT_DELETED, "0b6c0000-0000-4000-8000-000000000001\n"
			    "not an id\n"
			    "0b6c0000-0000-4000-8000-000000000002\n"
			    "0b6c0000-0000-4000-8000-000000000003"); /* torn: not there */
	ck_assert_int_eq(layout_deleted_read(tfd, &ids, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(ids[0][15], 1);
	ck_assert_uint_eq(ids[1][15], 2);
	free(ids);
	put(LAYOUT_DELETED, "");
	ck_assert_int_eq(layout_deleted_read(tfd, &ids, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(ids);
}
END_TEST

START_TEST(test_deleted_sessions_tail_of_a_long_file)
{
	size_t lines = LAYOUT_DELETED_READ / ID_STR_LEN + 100, n;
	char *text = malloc(lines * ID_STR_LEN + 1);
	uint8_t(*ids)[16];

	ck_assert_ptr_nonnull(text);
	for (size_t i = 0; i < lines; i++)
		snprintf(text + i * ID_STR_LEN, ID_STR_LEN + 1, "0b6c0000-0000-4000-8000-%012zx\n",
			 i);
	put(LAYOUT_DELETED, text);
	free(text);
	ck_assert_int_eq(layout_deleted_read(tfd, &ids, &n), 0);
	/* The newest ones, each whole. */
	ck_assert_uint_eq(n, LAYOUT_DELETED_READ / ID_STR_LEN);
	ck_assert_uint_eq(ids[n - 1][15], (lines - 1) & 0xff);
	ck_assert_uint_eq(ids[n - 1][14], ((lines - 1) >> 8) & 0xff);
	free(ids);
}
END_TEST

static Suite *
layout_suite(void)
{
	Suite *s = suite_create("layout");
	struct {
		const char *name;
		const TTest *fn;
	} cases[] = {
		{ "names", test_dir_and_file_names },
		{ "index_walk", test_index_walk },
		{ "index_read", test_index_read_from_offset },
		{ "entry_fast", test_entry_fast_reading_agrees_with_jansson },
		{ "session_sentinel", test_session_and_sentinel },
		{ "deleted", test_deleted_sessions },
		{ "deleted_tail", test_deleted_sessions_tail_of_a_long_file },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);

		tcase_add_checked_fixture(tc, setup, teardown);
		tcase_add_test(tc, cases[i].fn);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(layout_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
