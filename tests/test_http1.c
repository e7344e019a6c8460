/* test_http1: request heads as every listener reads them: fields, the
 * boundary with what follows (pipelining, WebSocket frames), byte-by-byte
 * arrival, and every refusal with its status. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

static struct http1 *
feed_all(const char *text, size_t *ret_used)
{
	struct http1 *h = http1_new();

	ck_assert_ptr_nonnull(h);
	*ret_used = http1_feed(h, (const uint8_t *)text, strlen(text));
	return h;
}

static int
refusal(const char *text)
{
	size_t used;
	struct http1 *h = feed_all(text, &used);
	int st = http1_state(h) == HTTP1_BAD ? http1_status(h) : 0;

	http1_free(h);
	return st;
}

START_TEST(test_fields)
{
	const char *req = "GET /a/b%20c?x=1&token=t%2Bk&e= HTTP/1.1\r\nHost: example\r\n"
			  "Connection: keep-alive, Upgrade\r\nX-Empty:\r\nX-Pad:  v  \r\n"
			  "upgrade: WebSocket\r\n\r\n";
	char buf[64];
	size_t used;
	struct http1 *h = feed_all(req, &used);

	ck_assert_int_eq(http1_state(h), HTTP1_DONE);
	ck_assert_uint_eq(used, strlen(req));
	ck_assert_str_eq(http1_method(h), "GET");
	ck_assert_str_eq(http1_target(h), "/a/b%20c?x=1&token=t%2Bk&e=");
	ck_assert_uint_eq(http1_version(h), 11);
	ck_assert_str_eq(http1_header(h, "HOST"), "example");
	ck_assert_str_eq(http1_header(h, "x-empty"), "");
	ck_assert_str_eq(http1_header(h, "x-pad"), "v");
	ck_assert_ptr_null(http1_header(h, "x-missing"));
	ck_assert(http1_header_has(h, "connection", "upgrade"));
	ck_assert(http1_header_has(h, "upgrade", "websocket"));
	ck_assert(!http1_header_has(h, "connection", "close"));
	ck_assert(http1_upgrade(h));
	ck_assert_int_eq(http1_path(h, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/a/b c");
	ck_assert(http1_arg(h, "token", buf, sizeof(buf)));
	ck_assert_str_eq(buf, "t+k");
	ck_assert(http1_arg(h, "e", buf, sizeof(buf)));
	ck_assert_str_eq(buf, "");
	ck_assert(!http1_arg(h, "y", buf, sizeof(buf)));
	http1_free(h);
}
END_TEST

START_TEST(test_pipelined_and_byte_by_byte)
{
	const char *two = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
	struct http1 *h = http1_new();
	size_t used = 0, n = strlen(two);

	/* One byte at a time: every byte is taken until the head ends. */
	for (size_t i = 0; i < n && http1_state(h) == HTTP1_MORE; i++) {
		ck_assert_uint_eq(http1_feed(h, (const uint8_t *)two + i, 1), 1);
		used = i + 1;
	}
	ck_assert_int_eq(http1_state(h), HTTP1_DONE);
	ck_assert_uint_eq(used, n / 2);
	ck_assert_str_eq(http1_target(h), "/1");
	ck_assert(http1_keep_alive(h));
	http1_reset(h);
	ck_assert_uint_eq(http1_feed(h, (const uint8_t *)two + used, n - used), n - used);
	ck_assert_int_eq(http1_state(h), HTTP1_DONE);
	ck_assert_str_eq(http1_target(h), "/2");
	http1_free(h);
}
END_TEST

/* A body read on request: whole, split anywhere, and followed by the next
 * request, which starts where http1_feed says; keep-alive once it is read. */
START_TEST(test_body_on_request)
{
	const char *req = "POST /m HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n"
			  "{\"note\":\"a\"}GET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t n = strlen(req), head_end = strstr(req, "{") - req;

	for (size_t split = head_end - 1; split <= head_end + 12; split++) {
		struct http1 *h = http1_new();
		size_t used, len, more;
		const char *body;

		used = http1_feed(h, (const uint8_t *)req, split);
		if (http1_state(h) == HTTP1_MORE) {
			ck_assert_uint_eq(used, split);
			used += http1_feed(h, (const uint8_t *)req + used, n - used);
		}
		ck_assert_int_eq(http1_state(h), HTTP1_DONE);
		ck_assert_str_eq(http1_method(h), "POST");
		ck_assert(!http1_keep_alive(h)); /* a body not read yet */
		ck_assert_int_eq(http1_body_begin(h, 11), -EFBIG);
		ck_assert_int_eq(http1_body_begin(h, 12), 0);
		ck_assert(!http1_body_complete(h));
		/* The rest byte by byte up to the body's end, then all of it. */
		while (!http1_body_complete(h) && used < n) {
			more = http1_feed(h, (const uint8_t *)req + used, 1);
			ck_assert_uint_le(more, 1);
			used += more;
			ck_assert_int_eq(http1_state(h), HTTP1_DONE);
		}
		ck_assert(http1_body_complete(h));
		body = http1_body(h, &len);
		ck_assert_uint_eq(len, 12);
		ck_assert(memcmp(body, "{\"note\":\"a\"}", 12) == 0);
		ck_assert(http1_keep_alive(h));
		http1_reset(h);
		ck_assert_uint_eq(http1_feed(h, (const uint8_t *)req + used, n - used), n - used);
		ck_assert_int_eq(http1_state(h), HTTP1_DONE);
		ck_assert_str_eq(http1_target(h), "/2");
		ck_assert_int_eq(http1_body_begin(h, 100), 0); /* none announced: empty */
		ck_assert(http1_body_complete(h));
		http1_free(h);
	}
}
END_TEST

START_TEST(test_upgrade_boundary)
{
	const char *req = "GET /sentinel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
			  "Upgrade: websocket\r\n\r\n\x81\x85";
	size_t used;
	struct http1 *h = feed_all(req, &used);

	ck_assert_int_eq(http1_state(h), HTTP1_DONE);
	ck_assert_uint_eq(used, strlen(req) - 2); /* the frame bytes are not HTTP */
	http1_free(h);
}
END_TEST

START_TEST(test_keep_alive_rules)
{
	static const struct {
		const char *req;
		bool keep;
	} cases[] = {
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", true },
		{ "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false },
		{ "GET / HTTP/1.0\r\n\r\n", false },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true },
		{ "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t used;
		struct http1 *h = feed_all(cases[i].req, &used);

		ck_assert_int_eq(http1_state(h), HTTP1_DONE);
		ck_assert_msg(http1_keep_alive(h) == cases[i].keep, "%s", cases[i].req);
		http1_free(h);
	}
}
END_TEST

START_TEST(test_refusals)
{
	char *big;
	size_t n = 20000;

	ck_assert_int_eq(refusal("GET GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
	ck_assert_int_eq(refusal("/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
	ck_assert_int_eq(refusal("\x01\x02\x03 garbage\r\n\r\n"), 400);
	ck_assert_int_eq(refusal("GET / HTTP/1.1\r\n\r\n"), 400); /* no Host */
	ck_assert_int_eq(refusal("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
	ck_assert_int_eq(refusal("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
			 400);
	ck_assert_int_eq(refusal("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
			 501);
	ck_assert_int_eq(refusal("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n"),
			 400);
	ck_assert_int_eq(refusal("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"),
			 413);
	big = malloc(n + 64);
	memset(big, 'a', n + 64);
	memcpy(big, "GET /", 5);
	strcpy(big + n, " HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(refusal(big), 414);
	strcpy(big, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + strlen(big), 'b', n - 40);
	strcpy(big + n, "\r\n\r\n");
	ck_assert_int_eq(refusal(big), 431);
	free(big);
	big = calloc(1, 200 * 16 + 64);
	strcpy(big, "GET / HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 200; i++)
		sprintf(big + strlen(big), "X-%03d: v\r\n", i);
	strcat(big, "\r\n");
	ck_assert_int_eq(refusal(big), 431); /* over HTTP1_FIELDS_N fields */
	free(big);
}
END_TEST

START_TEST(test_nul_in_path)
{
	char buf[64];
	size_t used;
	struct http1 *h = feed_all("GET /x%00.jpg HTTP/1.1\r\nHost: x\r\n\r\n", &used);

	ck_assert_int_eq(http1_state(h), HTTP1_DONE);
	ck_assert_int_eq(http1_path(h, buf, sizeof(buf)), -EINVAL);
	http1_free(h);
}
END_TEST

START_TEST(test_error_answer)
{
	char *ans;
	size_t len;

	ck_assert_int_eq(http1_error_answer(431, "X-A: b\r\n", "too \"big\"", &ans, &len), 0);
	ck_assert_uint_eq(len, strlen(ans));
	ck_assert(strncmp(ans, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46) == 0);
	ck_assert_ptr_nonnull(strstr(ans, "Connection: close\r\nX-A: b\r\n\r\n"));
	ck_assert_ptr_nonnull(strstr(ans, "\r\n\r\n{\"error\":\"too \\\"big\\\"\"}"));
	ck_assert_ptr_nonnull(strstr(ans, "Content-Length: 23\r\n"));
	free(ans);
}
END_TEST

static Suite *
http1_suite(void)
{
	Suite *s = suite_create("http1");
	TCase *tc = tcase_create("heads");

	tcase_add_test(tc, test_fields);
	tcase_add_test(tc, test_pipelined_and_byte_by_byte);
	tcase_add_test(tc, test_upgrade_boundary);
	tcase_add_test(tc, test_body_on_request);
	tcase_add_test(tc, test_keep_alive_rules);
	tcase_add_test(tc, test_nul_in_path);
	suite_add_tcase(s, tc);
	tc = tcase_create("refusals");
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_error_answer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(http1_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
