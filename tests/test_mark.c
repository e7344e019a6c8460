/* test_mark: common/mark.c, a mark as every stage spells it: kinds, the
 * note's checks (bytes, not characters; UTF-8; NUL), the JSON object and the
 * msgpack map both ways with every field refused when wrong, the line of
 * marks.jsonl, the file read back (complete lines only, bad lines passed
 * over, the end of the last complete line for the next append) and the sort
 * (by at, equal ones in file order). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mark.h"
#include "mp.h"

static struct mark
sample(int64_t at, const char *note)
{
	struct mark m = { .at = at, .kind = MARK_SUSPICIOUS };

	snprintf(m.id, sizeof(m.id), "0b6c1f2e-8d3a-4c5b-9e7f-%012lld", (long long)at % 1000000);
	snprintf(m.sentinel, sizeof(m.sentinel), "11111111-2222-4333-8444-555555555555");
	snprintf(m.session, sizeof(m.session), "66666666-7777-4888-9999-aaaaaaaaaaaa");
	snprintf(m.by, sizeof(m.by), "desk \"1\"");
	snprintf(m.note, sizeof(m.note), "%s", note);
	return m;
}

START_TEST(test_kinds_and_notes)
{
	enum mark_kind k;
	char big[600];

	ck_assert_int_eq(mark_kind_parse("note", 4, &k), 0);
	ck_assert_int_eq(k, MARK_NOTE);
	ck_assert_int_eq(mark_kind_parse("incident", 8, &k), 0);
	ck_assert_int_eq(k, MARK_INCIDENT);
	ck_assert_int_eq(mark_kind_parse("Note", 4, &k), -EINVAL);
	ck_assert_int_eq(mark_kind_parse("notes", 5, &k), -EINVAL);
	ck_assert_int_eq(mark_kind_parse("not", 3, &k), -EINVAL);
	ck_assert_str_eq(mark_kind_name(MARK_SUSPICIOUS), "suspicious");
	memset(big, 'x', sizeof(big));
	ck_assert_ptr_null(mark_note_problem(big, 500));
	ck_assert_ptr_null(mark_note_problem("", 0));
	ck_assert_ptr_nonnull(mark_note_problem(big, 501));
	/* bytes count: 250 two-byte characters are 500, one more is over */
	for (int i = 0; i < 251; i++)
		memcpy(big + 2 * i, "\xc3\xa9", 2);
	ck_assert_ptr_null(mark_note_problem(big, 500));
	ck_assert_ptr_nonnull(mark_note_problem(big, 502));
	ck_assert_ptr_nonnull(mark_note_problem("a\0b", 3));
	ck_assert_ptr_nonnull(mark_note_problem("\xff", 1));
	ck_assert_ptr_nonnull(mark_note_problem("\xc3", 1));         /* cut */
	ck_assert_ptr_nonnull(mark_note_problem("\xed\xa0\x80", 3)); /* a surrogate */
	ck_assert_ptr_null(mark_note_problem("\xf0\x9f\x98\x80 \"\n,", 8));
}
END_TEST

START_TEST(test_json_and_mp_round_trip)
{
	struct mark m = sample(1700000000123, "he said \"look\",\nthen \xe2\x80\xa8 left");
	struct mark back;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked u;
	size_t len;
	char *line;
	json_t *j;

	j = mark_json(&m);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(mark_from_json(j, &back), 0);
	ck_assert_str_eq(back.id, m.id);
	ck_assert_str_eq(back.sentinel, m.sentinel);
	ck_assert_str_eq(back.session, m.session);
	ck_assert_int_eq(back.at, m.at);
	ck_assert_int_eq(back.kind, m.kind);
	ck_assert_str_eq(back.by, m.by);
	ck_assert_str_eq(back.note, m.note);
	json_decref(j);
	line = mark_line(&m, &len);
	ck_assert_ptr_nonnull(line);
	ck_assert_uint_eq(strlen(line), len);
	ck_assert_int_eq(line[len - 1], '\n');
	ck_assert_ptr_null(memchr(line, '\n', len - 1)); /* one line, whatever the note */
	ck_assert(strncmp(line, "{\"markId\":\"0b6c1f2e-", 20) == 0);
	free(line);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	mark_pack(&pk, &m);
	msgpack_unpacked_init(&u);
	ck_assert(msgpack_unpack_next(&u, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS);
	ck_assert_int_eq(mark_from_mp(&u.data, &back), 0);
	ck_assert_str_eq(back.note, m.note);
	ck_assert_int_eq(back.at, m.at);
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
	ck_assert_int_eq(mark_from_mp(NULL, &back), -EINVAL);
}
END_TEST

/* Each key wrong in turn: refused, and ret untouched. */
START_TEST(test_json_refusals)
{
	static const char *const bad[] = {
		"[]",
		"{}",
		"{\"markId\":\"x\",\"sentinelId\":\"11111111-2222-4333-8444-555555555555\","
		"\"sessionId\":\"66666666-7777-4888-9999-aaaaaaaaaaaa\",\"at\":1,\"by\":\"a\","
		"\"kind\":\"note\",\"note\":\"n\"}",
		"{\"markId\":\"0b6c1f2e-8d3a-4c5b-9e7f-112233445566\",\"sentinelId\":5,"
		"\"sessionId\":\"66666666-7777-4888-9999-aaaaaaaaaaaa\",\"at\":1,\"by\":\"a\","
		"\"kind\":\"note\",\"note\":\"n\"}",
		"{\"markId\":\"0b6c1f2e-8d3a-4c5b-9e7f-112233445566\","
		"\"sentinelId\":\"11111111-2222-4333-8444-555555555555\","
		"\"sessionId\":\"66666666-7777-4888-9999-aaaaaaaaaaaa\",\"at\":1.5,\"by\":\"a\","
		"\"kind\":\"note\",\"note\":\"n\"}",
		"{\"markId\":\"0b6c1f2e-8d3a-4c5b-9e7f-112233445566\","
		"\"sentinelId\":\"11111111-2222-4333-8444-555555555555\","
		"\"sessionId\":\"66666666-7777-4888-9999-aaaaaaaaaaaa\",\"at\":1,\"by\":null,"
		"\"kind\":\"note\",\"note\":\"n\"}",
		"{\"markId\":\"0b6c1f2e-8d3a-4c5b-9e7f-112233445566\","
		"\"sentinelId\":\"11111111-2222-4333-8444-555555555555\","
		"\"sessionId\":\"66666666-7777-4888-9999-aaaaaaaaaaaa\",\"at\":1,\"by\":\"a\","
		"\"kind\":\"alarm\",\"note\":\"n\"}",
		"{\"markId\":\"0b6c1f2e-8d3a-4c5b-9e7f-112233445566\","
		"\"sentinelId\":\"11111111-2222-4333-8444-555555555555\","
		"\"sessionId\":\"66666666-7777-4888-9999-aaaaaaaaaaaa\",\"at\":1,\"by\":\"a\","
		"\"kind\":\"note\",\"note\":[]}",
	};
	struct mark m = sample(5, "kept");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], 0, NULL);

		ck_assert_ptr_nonnull(j);
		ck_assert_msg(mark_from_json(j, &m) == -EINVAL, "taken: %s", bad[i]);
		ck_assert_str_eq(m.note, "kept");
		json_decref(j);
	}
}
END_TEST

static int
write_file(const char *text)
{
	char path[] = "/tmp/test_mark.XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	return fd;
}

START_TEST(test_file_read_and_sort)
{
	struct mark a = sample(300, "late"), b = sample(100, "first"), c = sample(300, "late too");
	char *la, *lb, *lc, text[8192];
	struct mark *v;
	uint64_t end;
	size_t len, n;
	int fd;

	la = mark_line(&a, &len);
	lb = mark_line(&b, &len);
	lc = mark_line(&c, &len);
	/* a, a line that is no mark, b, JSON that is no mark, c, a torn tail */
	snprintf(text, sizeof(text), "%snot json\n%s{\"markId\":1}\n%s{\"markId\":\"0b6c", la, lb,
		 lc);
	fd = write_file(text);
	ck_assert_int_eq(mark_file_read(fd, &v, &n, &end), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(end, strlen(text) - strlen("{\"markId\":\"0b6c"));
	ck_assert_str_eq(v[0].note, "late");
	ck_assert_str_eq(v[1].note, "first");
	ck_assert_str_eq(v[2].note, "late too");
	ck_assert_int_eq(mark_sort(v, n), 0);
	ck_assert_str_eq(v[0].note, "first");
	ck_assert_str_eq(v[1].note, "late"); /* equal at: file order */
	ck_assert_str_eq(v[2].note, "late too");
	free(v);
	close(fd);
	/* empty: no marks, end 0 */
	fd = write_file("");
	ck_assert_int_eq(mark_file_read(fd, &v, &n, &end), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(end, 0);
	free(v);
	close(fd);
	/* a directory is no marks file */
	fd = open("/tmp", O_RDONLY | O_DIRECTORY);
	ck_assert_int_eq(mark_file_read(fd, &v, &n, &end), -EINVAL);
	close(fd);
	free(la);
	free(lb);
	free(lc);
}
END_TEST

static Suite *
mark_suite(void)
{
	Suite *s = suite_create("mark");
	TCase *tc = tcase_create("mark");

	tcase_add_test(tc, test_kinds_and_notes);
	tcase_add_test(tc, test_json_and_mp_round_trip);
	tcase_add_test(tc, test_json_refusals);
	tcase_add_test(tc, test_file_read_and_sort);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(mark_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
