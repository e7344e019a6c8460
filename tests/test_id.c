/* test_id: UUID generation, validation and the parse/format round trip. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"

#define N_IDS 100

START_TEST(test_new_valid_distinct_v4)
{
	static char ids[N_IDS][ID_STR_LEN];

	for (int i = 0; i < N_IDS; i++) {
		id_new(ids[i]);
		ck_assert_uint_eq(strlen(ids[i]), ID_STR_LEN - 1);
		ck_assert_msg(id_valid(ids[i]), "invalid id %s", ids[i]);
		/* Version nibble 4, variant bits 10xx. */
		ck_assert_int_eq(ids[i][14], '4');
		ck_assert_ptr_nonnull(strchr("89ab", ids[i][19]));
		for (const char *p = ids[i]; *p != '\0'; p++)
			ck_assert_msg(strchr("0123456789abcdef-", *p) != NULL, "not lower case: %s",
				      ids[i]);
		for (int k = 0; k < i; k++)
			ck_assert_str_ne(ids[i], ids[k]);
	}
}
END_TEST

START_TEST(test_valid_cases)
{
	static const char *const good[] = {
		"123e4567-e89b-42d3-a456-426614174000",
		"123E4567-E89B-42D3-A456-426614174000", /* upper case */
		"AbCdEf01-2345-6789-aBcD-eF0123456789", /* mixed */
		"00000000-0000-0000-0000-000000000000", /* nil */
	};
	static const char *const bad[] = {
		"",
		"123e4567-e89b-42d3-a456-42661417400",   /* 35 chars */
		"123e4567-e89b-42d3-a456-4266141740000", /* 37 chars */
		"123e4567-e89b-42d3-a456-42661417400g",  /* bad hex */
		"123e4567-e89b-42d3-a456-4266141740 0",  /* space */
		"123e4567e-89b-42d3-a456-426614174000",  /* dash moved */
		"123e4567-e89b-42d3-a4564-26614174000",
		"123e4567-e89b42d3--a456-426614174000",
		"123e4567+e89b-42d3-a456-426614174000",
		"{123e4567-e89b-42d3-a456-426614174000}", /* braces */
		"{23e4567-e89b-42d3-a456-42661417400}",   /* braces, 36 chars */
		"123e4567e89b42d3a456426614174000",       /* no dashes */
		"urn:uuid:123e4567-e89b-42d3-a456-426614174000",
		" 123e4567-e89b-42d3-a456-426614174000",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(id_valid(good[i]), "refused %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!id_valid(bad[i]), "accepted %s", bad[i]);
	ck_assert(!id_valid(NULL));
}
END_TEST

START_TEST(test_parse_format_round_trip)
{
	static const uint8_t bytes[16] = { 0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x42, 0xd3,
					   0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00 };
	uint8_t u[16], keep[16];
	char s[ID_STR_LEN], again[ID_STR_LEN];

	ck_assert_int_eq(id_parse("123E4567-E89B-42D3-A456-426614174000", u), 0);
	ck_assert_mem_eq(u, bytes, 16);
	id_format(u, s);
	ck_assert_str_eq(s, "123e4567-e89b-42d3-a456-426614174000");

	for (int i = 0; i < 10; i++) {
		id_new(s);
		ck_assert_int_eq(id_parse(s, u), 0);
		id_format(u, again);
		ck_assert_str_eq(s, again);
		ck_assert(!id_is_nil(u));
	}

	memset(keep, 0xaa, sizeof(keep));
	memcpy(u, keep, sizeof(u));
	ck_assert_int_eq(id_parse("not-a-uuid", u), -EINVAL);
	ck_assert_mem_eq(u, keep, 16); /* untouched on failure */
}
END_TEST

START_TEST(test_nil)
{
	uint8_t u[16];

	ck_assert_int_eq(id_parse("00000000-0000-0000-0000-000000000000", u), 0);
	ck_assert(id_is_nil(u));
	u[15] = 1;
	ck_assert(!id_is_nil(u));
}
END_TEST

static Suite *
id_suite(void)
{
	Suite *s = suite_create("id");
	TCase *tc;

	tc = tcase_create("generate");
	tcase_add_test(tc, test_new_valid_distinct_v4);
	suite_add_tcase(s, tc);
	tc = tcase_create("validate");
	tcase_add_test(tc, test_valid_cases);
	suite_add_tcase(s, tc);
	tc = tcase_create("round_trip");
	tcase_add_test(tc, test_parse_format_round_trip);
	suite_add_tcase(s, tc);
	tc = tcase_create("nil");
	tcase_add_test(tc, test_nil);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(id_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
