/* test_log: the log line format, written by log_msg and read back by
 * log_line_parse (vigild reads its stages' lines with it); secrets in URLs
 * and key=value text redacted from every line (log_redact). */
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

static const char *
redact(const char *in)
{
	static char out[512];

	log_redact(in, strlen(in), out, sizeof(out));
	return out;
}

START_TEST(test_redact)
{
	static const char *const cases[][2] = {
		{ "GET /a/playlist.m3u8?token=s3cret HTTP/1.1",
		  "GET /a/playlist.m3u8?token=*** HTTP/1.1" },
		{ "/x?init=1&token=s3cret&y=2", "/x?init=1&token=***&y=2" },
		{ "/x?Token=a%2Fb#frag", "/x?Token=***#frag" },
		{ "ws://h:1/sentinel?access_token=abc", "ws://h:1/sentinel?access_token=***" },
		{ "ws://user:pa55@host:8080/sentinel", "ws://***@host:8080/sentinel" },
		{ "https://host/a@b", "https://host/a@b" },
		{ "to 'wss://h/s?token=q' failed", "to 'wss://h/s?token=***' failed" },
		{ "{\"type\":\"x\",\"token\":\"s3\\\"cret\"}",
		  "{\"type\":\"x\",\"token\":\"***\"}" },
		{ "\"token\" : \"abc\", next", "\"token\" : \"***\", next" },
		{ "Authorization: Bearer abc.def", "Authorization: Bearer ***" },
		/* nothing else changes, and a second pass changes nothing */
		{ "token=", "token=" },
		{ "?token=&a=1", "?token=&a=1" },
		{ "?token=***", "?token=***" },
		{ "3 tokens revoked; a token was revoked",
		  "3 tokens revoked; a token was revoked" },
		{ "auth.tokens[0].token: expected a non-empty string, found \"\"",
		  "auth.tokens[0].token: expected a non-empty string, found \"\"" },
		{ "", "" },
	};
	char small[8];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_str_eq(redact(cases[i][0]), cases[i][1]);
	/* cut to fit, the NUL kept, never a secret's beginning */
	ck_assert_uint_eq(log_redact("?token=abcdef", 13, small, sizeof(small)), 7);
	ck_assert_str_eq(small, "?token=");
	ck_assert_uint_eq(log_redact("abc", 3, small, 1), 0);
	ck_assert_str_eq(small, "");
}
END_TEST

/* log_msg's own lines go through it, whatever the call quoted. */
START_TEST(test_lines_redacted)
{
	char buf[4096];
	int pipefd[2];
	ssize_t n;

	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_int_ge(dup2(pipefd[1], STDERR_FILENO), 0);
	log_open("test");
	log_error(-ECONNREFUSED, "connect to %s failed", "ws://h:1/sentinel?token=proctor-secret");
	n = read(pipefd[0], buf, sizeof(buf) - 1);
	ck_assert_int_gt(n, 1);
	buf[n] = '\0';
	ck_assert_ptr_null(strstr(buf, "proctor-secret"));
	ck_assert_ptr_nonnull(strstr(buf, "connect to ws://h:1/sentinel?token=*** failed: "));
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
	tc = tcase_create("redact");
	tcase_add_test(tc, test_redact);
	tcase_add_test(tc, test_lines_redacted);
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
