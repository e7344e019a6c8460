/* test_mp4split: the top-level box splitter on real muxer output (the fixtures
 * of tests/data/fmp4) fed in pieces of every size, where a media segment's
 * samples begin (mp4split_in_segment), and the errors: impossible box sizes,
 * units over the limit, and the reset that follows. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "mp4split.h"

#define MAX_UNITS 8

/* --- fixtures ------------------------------------------------------------ */

/* The three fixture files, and the stream a muxer would write: their concatenation. */
static struct blob fx[3], stream;

static void
setup(void)
{
	static const char *const names[] = { "init.mp4", "seg0.m4s", "seg1.m4s" };

	stream.len = 0;
	for (int i = 0; i < 3; i++) {
		fx[i] = fixture_load(names[i]);
		stream.len += fx[i].len;
	}
	stream.data = malloc(stream.len);
	ck_assert_ptr_nonnull(stream.data);
	for (size_t i = 0, at = 0; i < 3; at += fx[i].len, i++)
		memcpy(stream.data + at, fx[i].data, fx[i].len);
}

static void
teardown(void)
{
	for (int i = 0; i < 3; i++)
		free(fx[i].data);
	free(stream.data);
}

/* What the callback was given: copies of the units, in order. */
struct got {
	size_t n;
	bool is_init[MAX_UNITS];
	struct blob unit[MAX_UNITS];
	struct mp4split *sp; /* to ask mp4split_in_segment() from the callback */
	bool in_segment_in_cb;
};

static void
collect(void *ctx, bool is_init, const uint8_t *data, size_t len)
{
	struct got *g = ctx;

	ck_assert_uint_lt(g->n, MAX_UNITS);
	g->is_init[g->n] = is_init;
	g->unit[g->n].data = malloc(len);
	ck_assert_ptr_nonnull(g->unit[g->n].data);
	memcpy(g->unit[g->n].data, data, len);
	g->unit[g->n].len = len;
	g->n++;
	if (g->sp != NULL && mp4split_in_segment(g->sp))
		g->in_segment_in_cb = true;
}

static void
got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->unit[i].data);
	memset(g, 0, sizeof(*g));
}

/* The init and the two segments, byte for byte, after units[0..n). */
static void
assert_fixture_units(const struct got *g, size_t first)
{
	ck_assert_uint_eq(g->n, first + 3);
	for (size_t i = 0; i < 3; i++) {
		const struct blob *u = &g->unit[first + i];

		ck_assert_msg(g->is_init[first + i] == (i == 0), "unit %zu: is_init %d", i,
			      g->is_init[first + i]);
		ck_assert_uint_eq(u->len, fx[i].len);
		ck_assert_msg(memcmp(u->data, fx[i].data, u->len) == 0, "unit %zu differs", i);
	}
}

/* Feeds data in pieces of size step; the first error, or 0. */
static int
feed_pieces(struct mp4split *sp, const uint8_t *data, size_t len, size_t step, struct got *g)
{
	for (size_t at = 0; at < len; at += step) {
		int r = mp4split_feed(sp, data + at, len - at < step ? len - at : step, collect, g);

		if (r < 0)
			return r;
	}
	return 0;
}

/* A box header of size and type; largesize when size is 1. */
static size_t
put_header(uint8_t *p, uint32_t size, const char *type, uint64_t largesize)
{
	p[0] = (uint8_t)(size >> 24);
	p[1] = (uint8_t)(size >> 16);
	p[2] = (uint8_t)(size >> 8);
	p[3] = (uint8_t)size;
	memcpy(p + 4, type, 4);
	if (size != 1)
		return 8;
	for (int i = 0; i < 8; i++)
		p[8 + i] = (uint8_t)(largesize >> (56 - 8 * i));
	return 16;
}

/* The size of a segment's first box, its moof. */
static size_t
moof_len(const uint8_t *p)
{
	ck_assert_int_eq(memcmp(p + 4, "moof", 4), 0);
	return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

/* --- tests --------------------------------------------------------------- */

START_TEST(test_pieces)
{
	/* Every piece size from one byte to the whole stream in one call. */
	for (size_t step = 1; step <= stream.len; step++) {
		struct mp4split *sp = mp4split_new(1 << 20);
		struct got g = { 0 };

		ck_assert_ptr_nonnull(sp);
		ck_assert_int_eq(feed_pieces(sp, stream.data, stream.len, step, &g), 0);
		assert_fixture_units(&g, 0);
		got_free(&g);
		mp4split_free(sp);
	}
}
END_TEST

START_TEST(test_extras_and_restart)
{
	/* styp and free before a moof belong to its segment; a new ftyp starts over
	 * and drops the segment left unfinished before it. */
	uint8_t extras[16];
	size_t n = put_header(extras, 8, "styp", 0);
	struct mp4split *sp = mp4split_new(1 << 20);
	struct got g = { 0 };

	n += put_header(extras + n, 8, "free", 0);
	ck_assert_ptr_nonnull(sp);
	ck_assert_int_eq(mp4split_feed(sp, fx[0].data, fx[0].len, collect, &g), 0);
	ck_assert_int_eq(mp4split_feed(sp, extras, n, collect, &g), 0);
	ck_assert_int_eq(mp4split_feed(sp, fx[1].data, fx[1].len, collect, &g), 0);
	ck_assert_uint_eq(g.n, 2);
	ck_assert_uint_eq(g.unit[1].len, n + fx[1].len);
	ck_assert_int_eq(memcmp(g.unit[1].data, extras, n), 0);
	ck_assert_int_eq(memcmp(g.unit[1].data + n, fx[1].data, fx[1].len), 0);
	got_free(&g);

	/* a moof without its mdat, then the muxer restarts (at a box boundary) */
	ck_assert_int_eq(mp4split_feed(sp, fx[1].data, moof_len(fx[1].data), collect, &g), 0);
	ck_assert(mp4split_in_segment(sp));
	ck_assert_int_eq(feed_pieces(sp, stream.data, stream.len, 100, &g), 0);
	assert_fixture_units(&g, 0);
	got_free(&g);
	mp4split_free(sp);
}
END_TEST

START_TEST(test_in_segment)
{
	/* Byte by byte: true exactly from the end of each moof to the end of its mdat. */
	struct mp4split *sp = mp4split_new(1 << 20);
	struct got g = { 0 };
	size_t seg_start[2] = { fx[0].len, fx[0].len + fx[1].len };
	size_t moof_end[2];

	ck_assert_ptr_nonnull(sp);
	g.sp = sp;
	for (int i = 0; i < 2; i++)
		moof_end[i] = seg_start[i] + moof_len(stream.data + seg_start[i]);
	for (size_t fed = 0; fed < stream.len; fed++) {
		bool want = (fed >= moof_end[0] && fed < seg_start[1]) || fed >= moof_end[1];

		ck_assert_msg(mp4split_in_segment(sp) == want, "after %zu bytes: %d", fed,
			      mp4split_in_segment(sp));
		ck_assert_int_eq(mp4split_feed(sp, stream.data + fed, 1, collect, &g), 0);
	}
	ck_assert(!mp4split_in_segment(sp));
	ck_assert(!g.in_segment_in_cb); /* the segment is complete when handed over */
	assert_fixture_units(&g, 0);
	got_free(&g);
	mp4split_free(sp);
}
END_TEST

START_TEST(test_bad_sizes)
{
	/* size 0 (to the end), 2..7 (inside the header), largesize below 16 */
	static const struct {
		uint32_t size;
		uint64_t largesize;
	} bad[] = { { 0, 0 }, { 2, 0 }, { 7, 0 }, { 1, 0 }, { 1, 15 }, { 1, UINT64_MAX } };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int where = 0; where < 2; where++) {
			/* at the start of the stream, and after the init */
			struct mp4split *sp = mp4split_new(1 << 20);
			struct got g = { 0 };
			uint8_t hdr[16];
			size_t n = put_header(hdr, bad[i].size, where ? "moof" : "ftyp",
					      bad[i].largesize);

			ck_assert_ptr_nonnull(sp);
			if (where)
				ck_assert_int_eq(feed_pieces(sp, fx[0].data, fx[0].len, 7, &g), 0);
			ck_assert_msg(feed_pieces(sp, hdr, n, 1, &g) == -EBADMSG,
				      "size %u largesize %llu", bad[i].size,
				      (unsigned long long)bad[i].largesize);
			ck_assert_uint_eq(g.n, (size_t)where);
			ck_assert(!mp4split_in_segment(sp));
			/* reset: a new stream from its ftyp splits as usual */
			ck_assert_int_eq(feed_pieces(sp, stream.data, stream.len, 333, &g), 0);
			assert_fixture_units(&g, (size_t)where);
			got_free(&g);
			mp4split_free(sp);
		}
	}
}
END_TEST

START_TEST(test_over_max)
{
	/* A limit between the init (891 bytes) and the segments (3598, 3883). */
	size_t max = fx[0].len + 100;
	uint8_t hdr[16];

	ck_assert_uint_lt(max, fx[1].len);
	/* Small pieces, and the whole stream in one feed (the unit arrives complete). */
	for (size_t k = 0; k <= 512; k++) {
		size_t step = k < 512 ? k + 1 : stream.len;
		struct mp4split *sp = mp4split_new(max);
		struct got g = { 0 };

		ck_assert_ptr_nonnull(sp);
		ck_assert_int_eq(feed_pieces(sp, stream.data, stream.len, step, &g), -EMSGSIZE);
		ck_assert_uint_eq(g.n, 1);
		ck_assert(g.is_init[0]);
		got_free(&g);
		mp4split_free(sp);
	}

	/* A header that announces more than max fails before its body arrives. */
	for (int large = 0; large < 2; large++) {
		struct mp4split *sp = mp4split_new(max);
		struct got g = { 0 };
		size_t n = large ? put_header(hdr, 1, "mdat", (uint64_t)1 << 40)
				 : put_header(hdr, 0xfffffff0u, "mdat", 0);

		ck_assert_ptr_nonnull(sp);
		ck_assert_int_eq(mp4split_feed(sp, hdr, n, collect, &g), -EMSGSIZE);
		ck_assert_uint_eq(g.n, 0);
		/* reset */
		ck_assert_int_eq(feed_pieces(sp, fx[0].data, fx[0].len, 10, &g), 0);
		ck_assert_uint_eq(g.n, 1);
		got_free(&g);
		mp4split_free(sp);
	}

	/* A unit of exactly max is accepted. */
	{
		struct mp4split *sp = mp4split_new(fx[1].len);
		struct got g = { 0 };

		ck_assert_ptr_nonnull(sp);
		ck_assert_int_eq(feed_pieces(sp, fx[0].data, fx[0].len, 1, &g), 0);
		ck_assert_int_eq(feed_pieces(sp, fx[1].data, fx[1].len, 1, &g), 0);
		ck_assert_uint_eq(g.n, 2);
		ck_assert_uint_eq(g.unit[1].len, fx[1].len);
		got_free(&g);
		mp4split_free(sp);
	}
}
END_TEST

START_TEST(test_free_null)
{
	mp4split_free(NULL);
}
END_TEST

static void
add(Suite *s, const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *
mp4split_suite(void)
{
	Suite *s = suite_create("mp4split");

	add(s, "pieces", test_pieces);
	add(s, "extras_and_restart", test_extras_and_restart);
	add(s, "in_segment", test_in_segment);
	add(s, "bad_sizes", test_bad_sizes);
	add(s, "over_max", test_over_max);
	add(s, "free_null", test_free_null);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(mp4split_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
