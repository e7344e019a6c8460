/* test_log: the log line format, written by log_msg and read back by
 * log_line_parse (vigild reads its stages' lines with it). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int
parse(const char *line, enum log_level *ret_level, int64_t *ret_ms)
{
	return log_line_parse(line, strlen(line), ret_level, ret_ms);
}

START_TEST(test_parse_levels_and_times)
{
	enum log_level level = LOG_LVL_DEBUG;
	int64_t ms = 0;

	ck_assert_int_eq(parse("2026-12-06T07:10:06.123Z ingest[1234] info: message", &level, &ms),
			 0);
	ck_assert_int_eq(level, LOG_LVL_INFO);
	ck_assert_int_eq(ms, 1796541006123LL);
	ck_assert_int_eq(parse("1999-12-31T23:59:59.999Z relay[1] error: x: y", &level, &ms), 0);
	ck_assert_int_eq(level, LOG_LVL_ERROR);
	ck_assert_int_eq(ms, 946684799999LL);
	ck_assert_int_eq(parse("2024-02-29T00:00:00.000Z httpd[77] warn: ", &level, &ms), 0);
	ck_assert_int_eq(level, LOG_LVL_WARN);
	ck_assert_int_eq(ms, 1709164800000LL);
	ck_assert_int_eq(parse("2024-02-29T00:00:00.000Z a[2] debug:", &level, &ms), 0);
	ck_assert_int_eq(level, LOG_LVL_DEBUG);
}
END_TEST

START_TEST(test_parse_refuses_other_lines)
{
	static const char *const bad[] = {
		"",
		"(gst-plugin-scanner:123): GStreamer-WARNING **: 07:10:06.123: bad plugin",
		"2026-12-06T07:10:06.123 ingest[1234] info: no Z",
		"2026-12-06T07:10:06Z ingest[1234] info: no milliseconds",
		"2026-13-06T07:10:06.123Z ingest[1234] info: month 13",
		"2026-12-06T07:10:06.123Z ingest info: no pid",
		"2026-12-06T07:10:06.123Z ingest[1234] notice: unknown level",
		"2026-12-06T07:10:06.123Z ingest[1234] info no colon",
		"2026-12-06T07:10:06.123Z",
	};
	enum log_level level = LOG_LVL_DEBUG;
	int64_t ms = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(bad[i], &level, &ms) == -EINVAL, "%s", bad[i]);
		ck_assert_int_eq(level, LOG_LVL_DEBUG);
		ck_assert_int_eq(ms, 42);
	}
	/* The length counts, not a NUL: a line cut short of its level is refused. */
	ck_assert_int_eq(log_line_parse("2026-12-06T07:10:06.123Z a[1] info: x", 32, &level, &ms),
			 -EINVAL);
}
END_TEST

/* What log_msg writes, log_line_parse reads: the level, and the time now. */
START_TEST(test_round_trip)
{
	char buf[4096];
	enum log_level level = LOG_LVL_DEBUG;
	int64_t ms = 0, before, after;
	struct timespec ts;
	int pipefd[2];
	ssize_t n;

	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_int_ge(dup2(pipefd[1], STDERR_FILENO), 0);
	log_open("test");
	clock_gettime(CLOCK_REALTIME, &ts);
	before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	log_warn(-ENOENT, "open(%s) failed", "x");
	clock_gettime(CLOCK_REALTIME, &ts);
	after = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	n = read(pipefd[0], buf, sizeof(buf));
	ck_assert_int_gt(n, 1);
	ck_assert_int_eq(buf[n - 1], '\n');
	ck_assert_int_eq(log_line_parse(buf, (size_t)n - 1, &level, &ms), 0);
	ck_assert_int_eq(level, LOG_LVL_WARN);
	ck_assert_int_ge(ms, before);
	ck_assert_int_le(ms, after);
	ck_assert_str_eq(log_level_name(level), "warn");
}
END_TEST

static Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_parse_levels_and_times);
	tcase_add_test(tc, test_parse_refuses_other_lines);
	suite_add_tcase(s, tc);
	tc = tcase_create("round_trip");
	tcase_add_test(tc, test_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
