/* test_jpeg_clock: the timestamps ingest gives legacy JPEG frames
 * (ingest/jpeg_clock.h): even spreading, the first batch, whole-second
 * timestamps, missing timestamps, clock jumps, stuck clocks, frame rate
 * changes and hostile values. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "jpeg_clock.h"

#define MS 1000000ll
#define T0 1696969420000ll /* the seed's timestamp, in ms */

/* Feeds batches and checks what must hold whatever the input: each batch
 * starts where the previous ended, no frame lasts less than 1 ms. */
struct run {
	struct jpeg_clock c;
	int64_t end_ns;
	struct jpeg_span last;
};

static void
run_init(struct run *r, int64_t sent_ms, int64_t rx_ms)
{
	jpeg_clock_init(&r->c, sent_ms, rx_ms);
	r->end_ns = 0;
}

static int64_t
run_batch(struct run *r, int64_t sent_ms, int64_t rx_ms, uint32_t n)
{
	jpeg_clock_batch(&r->c, sent_ms, rx_ms, n, &r->last);
	ck_assert_int_eq(r->last.pts_ns, r->end_ns);
	ck_assert_int_ge(r->last.dur_ns, JPEG_CLOCK_FRAME_MIN_NS);
	r->end_ns += r->last.dur_ns * (int64_t)(n ? n : 1);
	return r->last.dur_ns;
}

/* The next batch dt ms later, sent and received at once. */
static int64_t
step(struct run *r, int64_t *t, int64_t dt, uint32_t n)
{
	*t += dt;
	return run_batch(r, *t, *t, n);
}

/* Timestamps one second apart, two frames each: 500 ms frames end to end,
 * the first batch covering the second since the register. */
START_TEST(test_steady_batches)
{
	struct run r;

	run_init(&r, T0, T0 + 40);
	for (int k = 1; k <= 3600; k++) {
		ck_assert_int_eq(run_batch(&r, T0 + k * 1000ll, T0 + 40 + k, 2), 500 * MS);
		ck_assert(!r.last.jumped);
	}
	ck_assert_int_eq(r.end_ns, 3600000 * MS);
	ck_assert_int_eq(jpeg_clock_origin_ms(&r.c), T0);
	ck_assert_uint_eq(r.c.jumps, 0);
}
END_TEST

/* The first batch covers the time since the register when that is a
 * plausible interval, else a second. */
START_TEST(test_first_batch)
{
	static const struct {
		int64_t reg_ms; /* -1: no timestamp on the register */
		int64_t covers_ms;
	} cases[] = {
		{ T0 - 1000, 1000 }, { T0 - 2000, 2000 },   { T0 - 5000, 5000 },
		{ T0, 1000 },        { T0 + 3000, 1000 },   { T0 - 3600000, 1000 },
		{ -1, 1000 },        { T0 - 10000, 10000 }, { T0 - 10001, 1000 },
		{ T0 - 999, 1000 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;

		run_init(&r, cases[i].reg_ms, T0 + 7);
		run_batch(&r, T0, T0 + 7, 4);
		ck_assert_msg(r.last.dur_ns * 4 == cases[i].covers_ms * MS, "case %zu: %lld", i,
			      (long long)r.last.dur_ns);
		ck_assert_int_eq(jpeg_clock_origin_ms(&r.c), T0 - cases[i].covers_ms);
	}
}
END_TEST

/* A sentinel that sends every 1000 ms (with a few ms of jitter) stamps whole
 * seconds, so single intervals read 0, 1 or 2 s: frames stay near 500 ms
 * and the stream stays within a second of the sentinel's clock over an hour. */
START_TEST(test_whole_second_timestamps)
{
	struct run r;
	int64_t min = INT64_MAX, max = 0;

	srand(14);
	/* a phase just below the second, so that the jitter crosses it often */
	run_init(&r, T0, T0);
	for (int k = 1; k <= 3600; k++) {
		int64_t sent = T0 + 990 + k * 1000ll + rand() % 21 - 10;
		int64_t d = run_batch(&r, sent / 1000 * 1000, sent + 20, 2);

		min = d < min ? d : min;
		max = d > max ? d : max;
		/* the stream's end against the sentinel's true clock */
		ck_assert_int_lt(llabs(r.end_ns / MS - (sent - T0)), 1500);
	}
	ck_assert_int_ge(min, 425 * MS);
	ck_assert_int_le(max, 625 * MS);
	ck_assert_uint_eq(r.c.jumps, 0);
}
END_TEST

/* Batches without a timestamp take their arrival time, moved by the clock
 * difference seen last (here the sentinel's clock is an hour ahead). */
START_TEST(test_missing_timestamps)
{
	struct run r;
	const int64_t skew = 3600000;

	run_init(&r, T0 + skew, T0);
	for (int k = 1; k <= 100; k++) {
		int64_t rx = T0 + k * 1000ll;

		run_batch(&r, k % 3 == 0 ? rx + skew : -1, rx, 2);
		ck_assert_int_eq(r.last.dur_ns, 500 * MS);
	}
	ck_assert_uint_eq(r.c.jumps, 0);
	ck_assert_int_eq(jpeg_clock_origin_ms(&r.c), T0 + skew);
	/* never any timestamp: the server's clock */
	run_init(&r, -1, T0);
	for (int k = 1; k <= 10; k++)
		ck_assert_int_eq(run_batch(&r, -1, T0 + k * 1000ll, 4), 250 * MS);
	ck_assert_int_eq(jpeg_clock_origin_ms(&r.c), T0);
	/* the first batch 3 ms after the register still covers a second */
	run_init(&r, -1, T0);
	ck_assert_int_eq(run_batch(&r, -1, T0 + 3, 4), 250 * MS);
}
END_TEST

/* A clock stepped back or forward by an hour: the stream goes on at its
 * pace, with no hole and no frame of an hour; startTime never goes back. */
START_TEST(test_clock_jumps)
{
	struct run r;
	int64_t t = T0, start_before;

	run_init(&r, t, t);
	for (int k = 0; k < 20; k++)
		step(&r, &t, 1000, 2);
	start_before = jpeg_clock_origin_ms(&r.c) + r.end_ns / MS;
	t -= 3600000;
	for (int k = 0; k < 20; k++) {
		ck_assert_int_eq(step(&r, &t, 1000, 2), 500 * MS);
		ck_assert(r.last.jumped == (k == 0));
	}
	t += 7200000;
	for (int k = 0; k < 20; k++) {
		ck_assert_int_eq(step(&r, &t, 1000, 2), 500 * MS);
		ck_assert(r.last.jumped == (k == 0));
	}
	ck_assert_uint_eq(r.c.jumps, 2);
	ck_assert_int_eq(jpeg_clock_origin_ms(&r.c) + r.end_ns / MS, start_before + 40000);
	/* a pause of 10 s is honoured, one of 11 s is a jump */
	step(&r, &t, 10000, 2);
	ck_assert(!r.last.jumped);
	step(&r, &t, 11000, 2);
	ck_assert(r.last.jumped);
}
END_TEST

/* A stuck clock (every batch the same timestamp, a second apart on the
 * server's clock) goes over to the server's clock; batches really sent within
 * one second share it; neither makes a frame of 0. */
START_TEST(test_stuck_clock_and_duplicates)
{
	struct run r;

	run_init(&r, T0 - 1000, T0);
	run_batch(&r, T0, T0, 2);
	for (int k = 1; k <= 1000; k++) {
		run_batch(&r, T0, T0 + k * 1000ll, 2);
		/* the first two seconds could be batches within one second */
		if (k * 1000 <= JPEG_CLOCK_STUCK_MS)
			continue;
		ck_assert_int_ge(r.last.dur_ns, 375 * MS);
		ck_assert_int_le(r.last.dur_ns, 625 * MS);
	}
	ck_assert_uint_ge(r.c.stuck, 990);
	ck_assert_int_lt(llabs(r.end_ns / MS - 1001000), 1500);
	/* two batches in the same second after steady ones: both shorter, none 0 */
	run_init(&r, T0, T0);
	for (int k = 1; k <= 20; k++)
		run_batch(&r, T0 + k * 1000ll, T0 + k * 1000ll, 2);
	run_batch(&r, T0 + 20000, T0 + 20100, 2);
	ck_assert_int_ge(r.last.dur_ns, 250 * MS);
	ck_assert_int_lt(r.last.dur_ns, 500 * MS);
	/* a thousand batches within one second: short frames, never 0 */
	for (int k = 0; k < 1000; k++)
		run_batch(&r, T0 + 21000, T0 + 21000 + k, 2);
	ck_assert_uint_eq(r.c.stuck, 0);
}
END_TEST

/* The frame rate changes (server.fps.change): a batch per second still, with
 * five times the frames, which last a fifth at once. */
START_TEST(test_frame_rate_change)
{
	struct run r;
	int64_t t = T0;

	run_init(&r, t, t);
	for (int k = 0; k < 20; k++)
		ck_assert_int_eq(step(&r, &t, 1000, 2), 500 * MS);
	for (int k = 0; k < 20; k++)
		ck_assert_int_eq(step(&r, &t, 1000, 10), 100 * MS);
	/* a frame every 5 s: the estimate follows within the window, and the
	 * stream catches up with the sentinel's clock after it */
	for (int k = 0; k < 60; k++) {
		int64_t d = step(&r, &t, 5000, 1);

		ck_assert(!r.last.jumped);
		if (k >= 50)
			ck_assert_int_lt(llabs(d - 5000 * MS), 100 * MS);
	}
	ck_assert_int_lt(llabs(jpeg_clock_origin_ms(&r.c) + r.end_ns / MS - t), 500);
}
END_TEST

/* Values no sentinel sends (the UBSan build checks that nothing overflows). */
START_TEST(test_hostile_values)
{
	static const int64_t ts[] = { 0,
				      1,
				      -1,
				      -5000,
				      INT64_MIN,
				      INT64_MAX,
				      JPEG_CLOCK_TS_MAX_MS,
				      JPEG_CLOCK_TS_MAX_MS + 1,
				      T0,
				      INT64_MAX / 1000 };
	static const uint32_t ns[] = { 1, 1000, 2, 0, 999, 7 };
	struct run r;

	for (size_t a = 0; a < sizeof(ts) / sizeof(ts[0]); a++) {
		run_init(&r, ts[a], ts[(a + 3) % 10]);
		for (int k = 0; k < 200; k++) {
			int64_t sent = ts[(size_t)k * 7 % 10], rx = ts[(size_t)k * 3 % 10];

			run_batch(&r, sent, rx, ns[k % 6]);
			ck_assert_int_le(r.last.dur_ns, 2ll * JPEG_CLOCK_SPAN_MAX_MS * MS);
		}
	}
	/* a batch of 1000 frames in one second: 1 ms each */
	run_init(&r, T0, T0);
	ck_assert_int_eq(run_batch(&r, T0 + 1000, T0, 1000), 1 * MS);
}
END_TEST

static Suite *
jpeg_clock_suite(void)
{
	Suite *s = suite_create("jpeg_clock");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {
		{ "steady", test_steady_batches },
		{ "first", test_first_batch },
		{ "whole_seconds", test_whole_second_timestamps },
		{ "missing", test_missing_timestamps },
		{ "jumps", test_clock_jumps },
		{ "stuck", test_stuck_clock_and_duplicates },
		{ "rate", test_frame_rate_change },
		{ "hostile", test_hostile_values },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);

		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(jpeg_clock_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
