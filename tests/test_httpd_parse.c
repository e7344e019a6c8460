/* test_httpd_parse: vigil-httpd's strict parsers: routes and ids (every
 * traversal form refused), and Range headers against RFC 9110's cases. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "range.h"
#include "route.h"

#define SID  "0b6c1f2e-8d3a-4c5b-9e7f-112233445566"
#define SESS "5f1e2d3c-4b5a-4697-8877-665544332211"
#define API  "/api/sentinels/" SID "/sessions/" SESS

START_TEST(test_routes_accepted)
{
	static const struct {
		const char *path;
		enum route_kind kind;
	} ok[] = {
		{ "/", ROUTE_STATIC },
		{ "/app.js", ROUTE_STATIC },
		{ "/assets/x-1_2.css", ROUTE_STATIC },
		{ "/health", ROUTE_HEALTH },
		{ "/metrics", ROUTE_METRICS },
		{ "/api/status", ROUTE_API_STATUS },
		{ "/api/metrics", ROUTE_API_METRICS },
		{ "/api/config", ROUTE_API_CONFIG },
		{ "/api/sentinels", ROUTE_SENTINELS },
		{ "/api/sessions", ROUTE_ALL_SESSIONS },
		{ "/api/audit", ROUTE_AUDIT },
		{ "/api/audit/verify", ROUTE_AUDIT_VERIFY },
		{ "/api/relay", ROUTE_API_RELAY },
		{ "/api/sentinels/" SID "/snapshot.jpg", ROUTE_SNAPSHOT },
		{ "/api/sentinels/" SID "/live.mjpeg", ROUTE_LIVE_MJPEG },
		{ "/api/sentinels/" SID "/sessions", ROUTE_SESSIONS },
		{ API, ROUTE_SESSION },
		{ API "/segments", ROUTE_SEGMENTS },
		{ API "/init.mp4", ROUTE_INIT },
		{ API "/segments/0.m4s", ROUTE_SEGMENT },
		{ API "/export.mp4", ROUTE_EXPORT },
		{ API "/playlist.m3u8", ROUTE_PLAYLIST },
		{ API "/manifest.json", ROUTE_MANIFEST },
		{ API "/thumbs", ROUTE_THUMBS },
		{ API "/thumbs/0.jpg", ROUTE_THUMB },
		{ API "/marks", ROUTE_MARKS },
	};
	struct route r;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(route_parse(ok[i].path, &r) == 0, "refused %s", ok[i].path);
		ck_assert_int_eq(r.kind, ok[i].kind);
	}
	ck_assert_int_eq(route_parse(API "/segments/123456789.m4s", &r), 0);
	ck_assert_int_eq(r.sequence, 123456789);
	ck_assert_int_eq(route_parse(API "/thumbs/360.jpg", &r), 0);
	ck_assert_int_eq(r.sequence, 360);
	ck_assert_int_eq(route_parse(API "/thumbs/360.m4s", &r), -ENOENT);
	ck_assert_int_eq(route_parse(API "/thumbs/.jpg", &r), -ENOENT);
	ck_assert_int_eq(route_parse(API "/segments/1.jpg", &r), -ENOENT);
	ck_assert_int_eq(route_parse(API "/segments/123456789.m4s", &r), 0);
	ck_assert_str_eq(r.sentinel, SID);
	ck_assert_str_eq(r.session, SESS);
	/* Upper-case ids are accepted and given in lower case (the disk's names). */
	ck_assert_int_eq(route_parse("/api/sentinels/0B6C1F2E-8D3A-4C5B-9E7F-112233445566/sessions",
				     &r),
			 0);
	ck_assert_str_eq(r.sentinel, SID);
	ck_assert_int_eq(route_parse("/", &r), 0);
	ck_assert_str_eq(r.file, "");
}
END_TEST

START_TEST(test_routes_bad_ids_are_400)
{
	static const char *const bad[] = {
		"/api/sentinels/not-a-uuid/sessions",
		"/api/sentinels/" SID "x/sessions",
		"/api/sentinels/not-a-uuid/live.mjpeg",
		"/api/sentinels/" SID "/sessions/123",
		API "/segments/01.m4s", /* not canonical */
		API "/segments/-1.m4s", /* negative */
		API "/segments/+1.m4s",
		API "/segments/1e3.m4s",
		API "/segments/9999999999999999999.m4s", /* overflows int64 */
		API "/segments/0x10.m4s",
		API "/thumbs/01.jpg",
		API "/thumbs/-1.jpg",
		API "/thumbs/1.5.jpg",
		API "/thumbs/99999999999999999999999999999999.jpg",
	};
	struct route r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(route_parse(bad[i], &r) == -EINVAL, "not 400: %s", bad[i]);
		ck_assert_ptr_nonnull(r.reason);
	}
}
END_TEST

/* What lws hands over is decoded once: every traversal form arrives as one of
 * these, and none may name a route or a file outside the web root. */
START_TEST(test_traversal_forms_refused)
{
	static const char *const bad[] = {
		"/../etc/passwd",
		"/api/sentinels/../../etc/passwd",
		"/./health",
		"/api/sentinels/" SID "/sessions/" SESS "/..",
		"/%2e%2e/etc/passwd", /* double-encoded: a '%' after decoding */
		"/%252e%252e/etc/passwd",
		"/a\\..\\b",
		"//etc/passwd",
		"/api//sentinels",
		"/app.js\x01",
		"/caf\xc3\xa9",
	};
	struct route r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(route_parse(bad[i], &r) == -EINVAL, "not refused: %s", bad[i]);
	/* Encoded slashes become slashes: they must still fit a route's shape. */
	ck_assert_int_eq(route_parse("/api/sentinels/" SID "/sessions/" SESS "/segments/1.m4s/x",
				     &r),
			 -ENOENT);
	/* Hidden files and odd names are never static files. */
	ck_assert_int_eq(route_parse("/.env", &r), -ENOENT);
	ck_assert_int_eq(route_parse("/a/.git/config", &r), -ENOENT);
	ck_assert_int_eq(route_parse("/a b", &r), -ENOENT);
	ck_assert_int_eq(route_parse("/a:b", &r), -ENOENT);
	ck_assert_int_eq(route_parse("/health/", &r), -ENOENT);
	ck_assert_int_eq(route_parse("/api", &r), -ENOENT);
	ck_assert_int_eq(route_parse("/api/nothing", &r), -ENOENT);
	ck_assert_int_eq(route_parse("/api/audit/", &r), -ENOENT);
	ck_assert_int_eq(route_parse("/api/audit/x", &r), -ENOENT);
	ck_assert_int_eq(route_parse("/api/audit/verify/x", &r), -ENOENT);
	ck_assert_int_eq(route_parse("/api/audit/verify/", &r), -ENOENT);
	ck_assert_int_eq(route_parse(API "/segments/1.mp4", &r), -ENOENT);
	ck_assert_int_eq(route_parse("", &r), -EINVAL);
	ck_assert_int_eq(route_parse("health", &r), -EINVAL);
}
END_TEST

START_TEST(test_long_path_refused)
{
	char *p = malloc(ROUTE_PATH_MAX + 2);
	struct route r;

	memset(p, 'a', ROUTE_PATH_MAX + 1);
	p[0] = '/';
	p[ROUTE_PATH_MAX + 1] = '\0';
	ck_assert_int_eq(route_parse(p, &r), -EINVAL);
	p[ROUTE_PATH_MAX] = '\0';
	ck_assert_int_eq(route_parse(p, &r), 0);
	free(p);
}
END_TEST

START_TEST(test_methods)
{
	ck_assert_uint_eq(route_methods(ROUTE_SESSION), ROUTE_DELETE);
	ck_assert_uint_eq(route_methods(ROUTE_SEGMENT), ROUTE_GET | ROUTE_HEAD);
	ck_assert_str_eq(route_allow(ROUTE_SESSION), "DELETE");
	ck_assert_str_eq(route_allow(ROUTE_HEALTH), "GET, HEAD");
	ck_assert_uint_eq(route_methods(ROUTE_MARKS), ROUTE_GET | ROUTE_HEAD | ROUTE_POST);
	ck_assert_str_eq(route_allow(ROUTE_MARKS), "GET, HEAD, POST");
}
END_TEST

/* live.mjpeg's ?fps=: plain decimals in thousandths, nothing else. */
START_TEST(test_milli)
{
	static const struct {
		const char *s;
		int64_t v;
	} ok[] = { { "1", 1000 },  { "5", 5000 },  { "0.5", 500 },    { "2.25", 2250 },
		   { "0.1", 100 }, { "0.001", 1 }, { "999", 999000 }, { "007", 7000 } };
	static const char *const bad[] = { "",   ".5", "1.",  "1e1",  "+1",     "-1",  "1,5",
					   "1 ", " 1", "0x1", "1000", "1.2345", "nan", "1..2" };
	int64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(route_parse_milli(ok[i].s, &v) == 0, "refused %s", ok[i].s);
		ck_assert_int_eq(v, ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(route_parse_milli(bad[i], &v) == -EINVAL, "took '%s'", bad[i]);
}
END_TEST

static enum range_result
rp(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
	struct range r = { 99, 99 };
	enum range_result res = range_parse(h, size, &r);

	*first = r.first;
	*last = r.last;
	return res;
}

START_TEST(test_range_rfc9110_cases)
{
	uint64_t f, l;

	/* RFC 9110 section 14.1.2's examples, on a 10000-byte representation. */
	ck_assert_int_eq(rp("bytes=0-499", 10000, &f, &l), RANGE_PARTIAL);
	ck_assert_uint_eq(f, 0);
	ck_assert_uint_eq(l, 499);
	ck_assert_int_eq(rp("bytes=500-999", 10000, &f, &l), RANGE_PARTIAL);
	ck_assert_uint_eq(f, 500);
	ck_assert_uint_eq(l, 999);
	ck_assert_int_eq(rp("bytes=-500", 10000, &f, &l), RANGE_PARTIAL); /* suffix */
	ck_assert_uint_eq(f, 9500);
	ck_assert_uint_eq(l, 9999);
	ck_assert_int_eq(rp("bytes=9500-", 10000, &f, &l), RANGE_PARTIAL); /* open-ended */
	ck_assert_uint_eq(f, 9500);
	ck_assert_uint_eq(l, 9999);
	ck_assert_int_eq(rp("bytes=0-0", 10000, &f, &l), RANGE_PARTIAL);
	ck_assert_uint_eq(l, 0);
	ck_assert_int_eq(rp("bytes=-1", 10000, &f, &l), RANGE_PARTIAL);
	ck_assert_uint_eq(f, 9999);
	/* A last-pos past the end is cut to the end; a suffix longer than the
	 * representation is all of it. */
	ck_assert_int_eq(rp("bytes=9000-20000", 10000, &f, &l), RANGE_PARTIAL);
	ck_assert_uint_eq(l, 9999);
	ck_assert_int_eq(rp("bytes=-20000", 10000, &f, &l), RANGE_PARTIAL);
	ck_assert_uint_eq(f, 0);
	ck_assert_uint_eq(l, 9999);
	/* Case-insensitive unit, whitespace around the list. */
	ck_assert_int_eq(rp("Bytes = 1-2 ", 10000, &f, &l), RANGE_PARTIAL);
	ck_assert_uint_eq(f, 1);
	ck_assert_uint_eq(l, 2);
}
END_TEST

START_TEST(test_range_unsatisfiable)
{
	uint64_t f, l;

	ck_assert_int_eq(rp("bytes=10000-", 10000, &f, &l), RANGE_UNSATISFIABLE);
	ck_assert_int_eq(rp("bytes=20000-30000", 10000, &f, &l), RANGE_UNSATISFIABLE);
	ck_assert_int_eq(rp("bytes=-0", 10000, &f, &l), RANGE_UNSATISFIABLE);
	ck_assert_int_eq(rp("bytes=0-", 0, &f, &l), RANGE_UNSATISFIABLE);
	ck_assert_int_eq(rp("bytes=10000-, 20000-", 10000, &f, &l), RANGE_UNSATISFIABLE);
}
END_TEST

START_TEST(test_range_ignored)
{
	uint64_t f, l;
	char many[512] = "bytes=";

	ck_assert_int_eq(rp(NULL, 10000, &f, &l), RANGE_WHOLE);
	/* Malformed: the header is ignored (RFC 9110 section 14.2). */
	static const char *const bad[] = {
		"bytes=500-100", "bytes=abc",   "bytes=1-2-3", "bytes=",
		"bytes",         "items=0-1",   "bytes=--1",   "bytes=+1-2",
		"bytes=1 -2",    "bytes=0x1-2", "bytes 0-1",   "bytes=99999999999999999999-",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(rp(bad[i], 10000, &f, &l) == RANGE_WHOLE, "not ignored: %s", bad[i]);
	/* Several ranges are answered with the whole body (never wrong bytes). */
	ck_assert_int_eq(rp("bytes=0-1,5-6", 10000, &f, &l), RANGE_WHOLE);
	ck_assert_int_eq(rp("bytes=0-1, 20000-", 10000, &f, &l), RANGE_WHOLE);
	/* And so are too many of them. */
	for (int i = 0; i < 40; i++)
		strcat(many, "0-1,");
	ck_assert_int_eq(rp(many, 10000, &f, &l), RANGE_WHOLE);
}
END_TEST

static Suite *
parse_suite(void)
{
	Suite *s = suite_create("httpd_parse");
	TCase *tc;

	tc = tcase_create("routes");
	tcase_add_test(tc, test_routes_accepted);
	tcase_add_test(tc, test_routes_bad_ids_are_400);
	tcase_add_test(tc, test_traversal_forms_refused);
	tcase_add_test(tc, test_long_path_refused);
	tcase_add_test(tc, test_methods);
	tcase_add_test(tc, test_milli);
	suite_add_tcase(s, tc);
	tc = tcase_create("range");
	tcase_add_test(tc, test_range_rfc9110_cases);
	tcase_add_test(tc, test_range_unsatisfiable);
	tcase_add_test(tc, test_range_ignored);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(parse_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
