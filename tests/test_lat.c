/* test_lat: the latency histogram: bucket bounds, quantiles, the packed form. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lat.h"
#include "mp.h"

/* Every value lands in the bucket whose bounds hold it, and the bounds grow. */
START_TEST(test_bucket_bounds)
{
	for (unsigned k = 0; k + 1 < LAT_BUCKETS; k++)
		ck_assert_int_lt(lat_bucket_low(k), lat_bucket_low(k + 1));
	for (int64_t v = 0; v < 200000; v += v < 64 ? 1 : 7) {
		struct lat l;
		unsigned k;

		memset(&l, 0, sizeof(l));
		lat_add(&l, v);
		for (k = 0; k < LAT_BUCKETS && l.count[k] == 0; k++)
			;
		ck_assert_uint_lt(k, LAT_BUCKETS);
		ck_assert_int_le(lat_bucket_low(k), v);
		ck_assert_int_gt(lat_bucket_low(k + 1), v);
		/* about 6% wide above 16 us */
		if (v >= 16)
			ck_assert_int_le((lat_bucket_low(k + 1) - lat_bucket_low(k)) * 8,
					 lat_bucket_low(k));
	}
}
END_TEST

START_TEST(test_quantiles)
{
	struct lat l;

	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(lat_pct(&l, 0.5), 0);
	/* 98 samples of 5 us, one of 1000, one of 50000 */
	for (int i = 0; i < 98; i++)
		lat_add(&l, 5);
	lat_add(&l, 1000);
	lat_add(&l, 50000);
	ck_assert_uint_eq(l.n, 100);
	ck_assert_int_eq(l.max_us, 50000);
	ck_assert_int_eq(lat_pct(&l, 0.50), 6); /* exact buckets below 16 us */
	ck_assert_int_eq(lat_pct(&l, 0.98), 6);
	ck_assert_int_ge(lat_pct(&l, 0.99), 1000);
	ck_assert_int_le(lat_pct(&l, 0.99), 1000 * 9 / 8);
	ck_assert_int_ge(lat_pct(&l, 1.0), 50000);
	ck_assert_int_le(lat_pct(&l, 1.0), 50000 * 9 / 8);
	/* negative clock steps count as 0, huge values in the last bucket */
	lat_add(&l, -3);
	lat_add(&l, INT64_MAX);
	ck_assert_uint_eq(l.count[0], 1);
	ck_assert_uint_eq(l.count[LAT_BUCKETS - 1], 1);
}
END_TEST

/* [[low, count], ...] of the buckets in use, in order. */
START_TEST(test_pack)
{
	struct lat l;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked u;
	const msgpack_object *arr;

	memset(&l, 0, sizeof(l));
	lat_add(&l, 3);
	lat_add(&l, 3);
	lat_add(&l, 100);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	lat_pack(&l, &pk, "hist");
	msgpack_unpacked_init(&u);
	ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
	ck_assert_int_eq(mp_get_array(&u.data, "hist", &arr), 0);
	ck_assert_uint_eq(arr->via.array.size, 2);
	ck_assert_int_eq(arr->via.array.ptr[0].via.array.ptr[0].via.i64, 3);
	ck_assert_int_eq(arr->via.array.ptr[0].via.array.ptr[1].via.i64, 2);
	ck_assert_int_le(arr->via.array.ptr[1].via.array.ptr[0].via.i64, 100);
	ck_assert_int_gt(arr->via.array.ptr[1].via.array.ptr[0].via.i64, 90);
	ck_assert_int_eq(arr->via.array.ptr[1].via.array.ptr[1].via.i64, 1);
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

static Suite *
lat_suite(void)
{
	Suite *s = suite_create("lat");
	TCase *tc = tcase_create("lat");

	tcase_add_test(tc, test_bucket_bounds);
	tcase_add_test(tc, test_quantiles);
	tcase_add_test(tc, test_pack);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(lat_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
