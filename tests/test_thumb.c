/* test_thumb: which segment a thumbnail slot shows (httpd/thumb_pick.c): the
 * number of slots, the join point nearest to a slot's time within its run of
 * segments (never across a gap), slots inside gaps and past the end, runs
 * without a keyframe, and the gaps listed. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "thumb.h"

#define T0 1700000000000LL

/* n segments of 1 s from T0 + at_ms, keyframes where key(i) says. */
static size_t
run(struct ar_seg *v, size_t at, int64_t at_ms, size_t n, int every_key)
{
	for (size_t i = 0; i < n; i++)
		v[at + i] =
			(struct ar_seg){ .sequence = (int64_t)(at + i),
					 .start_ms = T0 + at_ms + 1000 * (int64_t)i,
					 .duration_ms = 1000,
					 .keyframe = every_key > 0 && i % (size_t)every_key == 0 };
	return at + n;
}

static size_t
pick(const struct ar_seg *v, size_t n, int64_t slot)
{
	size_t k = 12345;

	ck_assert_int_eq(thumb_pick(v, n, slot, &k, NULL), 0);
	return k;
}

START_TEST(test_count_and_range)
{
	struct ar_seg v[40] = { { 0 } };
	size_t k = 7, n;

	ck_assert_int_eq(thumb_count(v, 0), 0);
	ck_assert_int_eq(thumb_pick(v, 0, 0, &k, NULL), -ERANGE);
	n = run(v, 0, 0, 20, 1); /* exactly 20 s: slots at 0 and 10 s */
	ck_assert_int_eq(thumb_count(v, n), 2);
	ck_assert_int_eq(thumb_pick(v, n, 2, &k, NULL), -ERANGE);
	ck_assert_int_eq(thumb_pick(v, n, -1, &k, NULL), -ERANGE);
	ck_assert_uint_eq(k, 7); /* untouched */
	n = run(v, 0, 0, 21, 1);
	ck_assert_int_eq(thumb_count(v, n), 3);
	ck_assert_int_eq(thumb_at(v, 2), T0 + 20000);
	ck_assert_uint_eq(pick(v, n, 0), 0);
	ck_assert_uint_eq(pick(v, n, 1), 10);
	ck_assert_uint_eq(pick(v, n, 2), 20);
}
END_TEST

START_TEST(test_nearest_join_point)
{
	struct ar_seg v[40] = { { 0 } };
	size_t n = run(v, 0, 0, 30, 7); /* keyframes at 0, 7, 14, 21, 28 s */

	ck_assert_uint_eq(pick(v, n, 1), 7);  /* 10 s: 7 s is 3 away, 14 s 4 */
	ck_assert_uint_eq(pick(v, n, 2), 21); /* 20 s: 21 s is nearer than 14 s */
	/* Equally near: the one before (what a player shows first). */
	n = run(v, 0, 0, 30, 4); /* 0, 4, 8, 12 ... */
	ck_assert_uint_eq(pick(v, n, 1), 8);
}
END_TEST

START_TEST(test_gaps)
{
	struct ar_seg v[40] = { { 0 } };
	struct thumb_gap g[4] = { { 0 } };
	size_t k = 99, n;

	/* 0..10 s, then from 15 s: 10 s is in the gap; a crack under
	 * THUMB_GAP_MS is no gap. */
	n = run(v, 0, 0, 10, 1);
	n = run(v, n, 15000, 10, 1);
	ck_assert_int_eq(thumb_count(v, n), 3);
	ck_assert_int_eq(thumb_pick(v, n, 1, &k, &g[0]), -ENOENT);
	ck_assert_int_eq(g[0].from_ms, T0 + 10000);
	ck_assert_int_eq(g[0].to_ms, T0 + 15000);
	ck_assert_uint_eq(k, 99);
	ck_assert_uint_eq(pick(v, n, 2), 15); /* 20 s: the segment from 20 s */
	ck_assert_uint_eq(thumb_gaps(v, n, g, 4), 1);
	n = run(v, 0, 0, 10, 1);
	n = run(v, n, 11999, 10, 1); /* a crack of 1.999 s */
	ck_assert_uint_eq(pick(v, n, 1), 9);
	ck_assert_uint_eq(thumb_gaps(v, n, g, 4), 0);
	/* Three gaps, room for two: all three counted. */
	n = run(v, 0, 0, 5, 1);
	n = run(v, n, 10000, 5, 1);
	n = run(v, n, 20000, 5, 1);
	n = run(v, n, 30000, 5, 1);
	ck_assert_uint_eq(thumb_gaps(v, n, g, 2), 3);
	ck_assert_int_eq(g[1].from_ms, T0 + 15000);
	ck_assert_int_eq(g[1].to_ms, T0 + 20000);
}
END_TEST

START_TEST(test_never_across_a_gap)
{
	struct ar_seg v[40] = { { 0 } };
	size_t k, n;

	/* 10 s falls in segment 10 of a run whose only keyframe is at 0 s; the
	 * keyframe at 15 s, after a gap, is nearer but not taken. */
	n = run(v, 0, 0, 12, 100);
	n = run(v, n, 15000, 10, 1);
	ck_assert_uint_eq(pick(v, n, 1), 0);
	/* A run without any keyframe has no picture. */
	n = run(v, 0, 0, 12, 0);
	n = run(v, n, 15000, 10, 1);
	ck_assert_int_eq(thumb_pick(v, n, 1, &k, NULL), -ENODATA);
	ck_assert_uint_eq(pick(v, n, 2), 17); /* 20 s: in the next run */
}
END_TEST

static Suite *
thumb_suite(void)
{
	Suite *s = suite_create("thumb");
	TCase *tc = tcase_create("pick");

	tcase_add_test(tc, test_count_and_range);
	tcase_add_test(tc, test_nearest_join_point);
	tcase_add_test(tc, test_gaps);
	tcase_add_test(tc, test_never_across_a_gap);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(thumb_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
