/* test_tok: the token store: roles and their hierarchy, expiry, revocation,
 * unknown and duplicate secrets, loading from a configuration. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

static struct tok_store *store;

static void
setup(void)
{
	store = tok_store_new();
	ck_assert_ptr_nonnull(store);
	ck_assert_int_eq(tok_store_add(store, "hall-a", CFG_ROLE_SENTINEL, "s3cret-sentinel", 0),
			 0);
	ck_assert_int_eq(tok_store_add(store, "alice", CFG_ROLE_PROCTOR, "s3cret-proctor", 0), 0);
	ck_assert_int_eq(tok_store_add(store, "bob", CFG_ROLE_ARCHIVIST, "s3cret-archivist", 0), 0);
	ck_assert_int_eq(tok_store_add(store, "root", CFG_ROLE_OPERATOR, "s3cret-operator", 0), 0);
}

static void
teardown(void)
{
	tok_store_free(store);
	store = NULL;
}

static int
check(const char *secret, enum cfg_role need, int64_t now)
{
	return tok_check(store, secret, strlen(secret), tok_mask_for(need), now, NULL);
}

START_TEST(test_masks)
{
	ck_assert_uint_eq(tok_mask_for(CFG_ROLE_SENTINEL),
			  TOK_ROLE(CFG_ROLE_SENTINEL) | TOK_ROLE(CFG_ROLE_OPERATOR));
	ck_assert_uint_eq(tok_mask_for(CFG_ROLE_PROCTOR), TOK_ROLE(CFG_ROLE_PROCTOR) |
								  TOK_ROLE(CFG_ROLE_ARCHIVIST) |
								  TOK_ROLE(CFG_ROLE_OPERATOR));
	ck_assert_uint_eq(tok_mask_for(CFG_ROLE_ARCHIVIST),
			  TOK_ROLE(CFG_ROLE_ARCHIVIST) | TOK_ROLE(CFG_ROLE_OPERATOR));
	ck_assert_uint_eq(tok_mask_for(CFG_ROLE_OPERATOR), TOK_ROLE(CFG_ROLE_OPERATOR));
	ck_assert_uint_eq(tok_mask_for(CFG_ROLE_COUNT), 0);
}
END_TEST

START_TEST(test_roles)
{
	const struct tok_info *info = NULL;

	/* Each role, against what each role may do. */
	ck_assert_int_eq(check("s3cret-sentinel", CFG_ROLE_SENTINEL, 100), 0);
	ck_assert_int_eq(check("s3cret-sentinel", CFG_ROLE_PROCTOR, 100), -EPERM);
	ck_assert_int_eq(check("s3cret-sentinel", CFG_ROLE_ARCHIVIST, 100), -EPERM);
	ck_assert_int_eq(check("s3cret-sentinel", CFG_ROLE_OPERATOR, 100), -EPERM);

	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_SENTINEL, 100), -EPERM);
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_PROCTOR, 100), 0);
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_ARCHIVIST, 100), -EPERM);
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_OPERATOR, 100), -EPERM);

	ck_assert_int_eq(check("s3cret-archivist", CFG_ROLE_SENTINEL, 100), -EPERM);
	ck_assert_int_eq(check("s3cret-archivist", CFG_ROLE_PROCTOR, 100), 0);
	ck_assert_int_eq(check("s3cret-archivist", CFG_ROLE_ARCHIVIST, 100), 0);
	ck_assert_int_eq(check("s3cret-archivist", CFG_ROLE_OPERATOR, 100), -EPERM);

	ck_assert_int_eq(check("s3cret-operator", CFG_ROLE_SENTINEL, 100), 0);
	ck_assert_int_eq(check("s3cret-operator", CFG_ROLE_PROCTOR, 100), 0);
	ck_assert_int_eq(check("s3cret-operator", CFG_ROLE_ARCHIVIST, 100), 0);
	ck_assert_int_eq(check("s3cret-operator", CFG_ROLE_OPERATOR, 100), 0);

	/* A plain mask works too, and info names the entry. */
	ck_assert_int_eq(tok_check(store, "s3cret-archivist", 16, TOK_ROLE(CFG_ROLE_ARCHIVIST), 0,
				   &info),
			 0);
	ck_assert_ptr_nonnull(info);
	ck_assert_str_eq(info->name, "bob");
	ck_assert_int_eq(info->role, CFG_ROLE_ARCHIVIST);
	ck_assert_int_eq(info->expires, 0);
	ck_assert(!info->revoked);
}
END_TEST

/* A refused token the store knows is named (the audit log's auth.failed
 * says whose it was); an unknown one leaves info as it was. */
START_TEST(test_refusal_names_a_known_token)
{
	const struct tok_info *info = (const struct tok_info *)&info;

	ck_assert_int_eq(tok_check(store, "s3cret-proctor", 14, tok_mask_for(CFG_ROLE_OPERATOR), 0,
				   &info),
			 -EPERM);
	ck_assert_ptr_ne(info, (const struct tok_info *)&info);
	ck_assert_str_eq(info->name, "alice");
	ck_assert_int_eq(info->role, CFG_ROLE_PROCTOR);
	info = (const struct tok_info *)&info;
	ck_assert_int_eq(tok_revoke(store, "s3cret-proctor", 14), 0);
	ck_assert_int_eq(tok_check(store, "s3cret-proctor", 14, tok_mask_for(CFG_ROLE_PROCTOR), 0,
				   &info),
			 -EKEYREVOKED);
	ck_assert_str_eq(info->name, "alice");
	info = (const struct tok_info *)&info;
	ck_assert_int_eq(tok_check(store, "nope", 4, ~0u, 0, &info), -EACCES);
	ck_assert_ptr_eq(info, (const struct tok_info *)&info);
}
END_TEST

START_TEST(test_unknown)
{
	ck_assert_int_eq(check("nope", CFG_ROLE_SENTINEL, 0), -EACCES);
	ck_assert_int_eq(check("", CFG_ROLE_SENTINEL, 0), -EACCES);
	/* A prefix or an extension of a secret is another secret. */
	ck_assert_int_eq(check("s3cret-operato", CFG_ROLE_SENTINEL, 0), -EACCES);
	ck_assert_int_eq(check("s3cret-operatorx", CFG_ROLE_SENTINEL, 0), -EACCES);
	/* len is what counts, not a NUL. */
	ck_assert_int_eq(tok_check(store, "s3cret-operatorXYZ", 15, tok_mask_for(CFG_ROLE_OPERATOR),
				   0, NULL),
			 0);
	ck_assert_int_eq(tok_check(store, NULL, 0, ~0u, 0, NULL), -EACCES);

	struct tok_store *empty = tok_store_new();

	ck_assert_ptr_nonnull(empty);
	ck_assert_int_eq(tok_check(empty, "s3cret-operator", 15, ~0u, 0, NULL), -EACCES);
	tok_store_free(empty);
}
END_TEST

START_TEST(test_expiry_boundary)
{
	const struct tok_info *info = NULL;

	ck_assert_int_eq(tok_store_add(store, "temp", CFG_ROLE_PROCTOR, "short-lived", 1000), 0);
	ck_assert_int_eq(tok_check(store, "short-lived", 11, tok_mask_for(CFG_ROLE_PROCTOR), 999,
				   &info),
			 0);
	ck_assert_int_eq(info->expires, 1000);
	ck_assert_int_eq(check("short-lived", CFG_ROLE_PROCTOR, 1000), -EKEYEXPIRED);
	ck_assert_int_eq(check("short-lived", CFG_ROLE_PROCTOR, 1001), -EKEYEXPIRED);
	/* Expiry comes before the role. */
	ck_assert_int_eq(check("short-lived", CFG_ROLE_OPERATOR, 1000), -EKEYEXPIRED);
	/* 0 is never. */
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_PROCTOR, INT64_MAX), 0);
}
END_TEST

START_TEST(test_revocation)
{
	const struct tok_info *info = NULL;

	ck_assert_int_eq(tok_check(store, "s3cret-proctor", 14, tok_mask_for(CFG_ROLE_PROCTOR), 0,
				   &info),
			 0);
	ck_assert_int_eq(tok_revoke(store, "s3cret-proctor", 14), 0);
	ck_assert(info->revoked); /* the same entry, seen through the earlier pointer */
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_PROCTOR, 0), -EKEYREVOKED);
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_OPERATOR, 0), -EKEYREVOKED);
	ck_assert_int_eq(tok_revoke(store, "s3cret-proctor", 14), 0); /* again */
	ck_assert_int_eq(tok_revoke(store, "unknown", 7), -ENOENT);
	ck_assert_int_eq(tok_revoke(store, "", 0), -ENOENT);
	/* The others are unaffected. */
	ck_assert_int_eq(check("s3cret-archivist", CFG_ROLE_PROCTOR, 0), 0);

	/* Revoked and expired: revoked wins. */
	ck_assert_int_eq(tok_store_add(store, "old", CFG_ROLE_PROCTOR, "old-token", 10), 0);
	ck_assert_int_eq(tok_revoke(store, "old-token", 9), 0);
	ck_assert_int_eq(check("old-token", CFG_ROLE_PROCTOR, 20), -EKEYREVOKED);
}
END_TEST

static void
digest_of(const char *secret, uint8_t out[TOK_DIGEST_LEN])
{
	ck_assert_int_eq(tok_digest(secret, strlen(secret), out), 0);
}

/* What vigild's "revoked" list does to a store: by digest, kept for entries
 * added later, lifted one by one or by a shorter list. */
START_TEST(test_revoke_by_digest)
{
	uint8_t a[TOK_DIGEST_LEN], b[TOK_DIGEST_LEN], later[TOK_DIGEST_LEN];
	uint8_t list[3 * TOK_DIGEST_LEN];
	const struct tok_info *info = NULL;
	const uint8_t *have;
	size_t n = 99;

	digest_of("s3cret-proctor", a);
	digest_of("s3cret-archivist", b);
	digest_of("added-later", later);
	ck_assert_ptr_null(tok_revoked(store, &n));
	ck_assert_uint_eq(n, 0);

	ck_assert_int_eq(tok_revoke_digest(store, a), 1);
	ck_assert_int_eq(tok_revoke_digest(store, a), 1); /* again: still once on the list */
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_PROCTOR, 0), -EKEYREVOKED);
	ck_assert(tok_digest_revoked(store, a));
	ck_assert(!tok_digest_revoked(store, b));
	have = tok_revoked(store, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_mem_eq(have, a, TOK_DIGEST_LEN);

	/* A digest no entry has yet: remembered, and refused once it is added. */
	ck_assert_int_eq(tok_revoke_digest(store, later), 0);
	ck_assert_int_eq(tok_store_add(store, "late", CFG_ROLE_PROCTOR, "added-later", 0), 0);
	ck_assert_int_eq(check("added-later", CFG_ROLE_PROCTOR, 0), -EKEYREVOKED);

	/* The lift: the token works again, the others stay revoked. */
	ck_assert_int_eq(tok_check(store, "s3cret-proctor", 14, ~0u, 0, &info), -EKEYREVOKED);
	ck_assert_int_eq(tok_lift_digest(store, a), 0);
	ck_assert_int_eq(tok_lift_digest(store, a), -ENOENT);
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_PROCTOR, 0), 0);
	ck_assert_int_eq(check("added-later", CFG_ROLE_PROCTOR, 0), -EKEYREVOKED);
	ck_assert(!tok_digest_revoked(store, a));

	/* The whole list at once: what is not on it is lifted. */
	memcpy(list, a, TOK_DIGEST_LEN);
	memcpy(list + TOK_DIGEST_LEN, b, TOK_DIGEST_LEN);
	ck_assert_int_eq(tok_set_revoked(store, list, 2), 2);
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_PROCTOR, 0), -EKEYREVOKED);
	ck_assert_int_eq(check("s3cret-archivist", CFG_ROLE_PROCTOR, 0), -EKEYREVOKED);
	ck_assert_int_eq(check("added-later", CFG_ROLE_PROCTOR, 0), 0);
	ck_assert_int_eq(tok_set_revoked(store, list + TOK_DIGEST_LEN, 1), 1);
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_PROCTOR, 0), 0);
	ck_assert_int_eq(check("s3cret-archivist", CFG_ROLE_PROCTOR, 0), -EKEYREVOKED);
	ck_assert_int_eq(tok_set_revoked(store, NULL, 0), 0);
	ck_assert_int_eq(check("s3cret-archivist", CFG_ROLE_PROCTOR, 0), 0);
	ck_assert_ptr_null(tok_revoked(store, &n));
	ck_assert_uint_eq(n, 0);

	/* tok_revoke by secret goes on the same list. */
	ck_assert_int_eq(tok_revoke(store, "s3cret-operator", 15), 0);
	have = tok_revoked(store, &n);
	ck_assert_uint_eq(n, 1);
	digest_of("s3cret-operator", list);
	ck_assert_mem_eq(have, list, TOK_DIGEST_LEN);
}
END_TEST

START_TEST(test_digest_hex)
{
	uint8_t d[TOK_DIGEST_LEN], back[TOK_DIGEST_LEN];
	char hex[TOK_DIGEST_HEX + 1], upper[TOK_DIGEST_HEX + 1];

	digest_of("abc", d);
	tok_digest_hex(d, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ck_assert_int_eq(tok_digest_parse(hex, TOK_DIGEST_HEX, back), 0);
	ck_assert_mem_eq(back, d, TOK_DIGEST_LEN);
	for (size_t i = 0; i <= TOK_DIGEST_HEX; i++)
		upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
	memset(back, 0, sizeof(back));
	ck_assert_int_eq(tok_digest_parse(upper, TOK_DIGEST_HEX, back), 0);
	ck_assert_mem_eq(back, d, TOK_DIGEST_LEN);
	/* Wrong lengths and non-hex leave the output alone. */
	memset(back, 7, sizeof(back));
	ck_assert_int_eq(tok_digest_parse(hex, TOK_DIGEST_HEX - 1, back), -EINVAL);
	ck_assert_int_eq(tok_digest_parse(hex, TOK_DIGEST_HEX + 1, back), -EINVAL);
	hex[40] = 'g';
	ck_assert_int_eq(tok_digest_parse(hex, TOK_DIGEST_HEX, back), -EINVAL);
	ck_assert_uint_eq(back[0], 7);
	ck_assert_uint_eq(back[TOK_DIGEST_LEN - 1], 7);
}
END_TEST

START_TEST(test_add_errors)
{
	ck_assert_int_eq(tok_store_add(store, "again", CFG_ROLE_OPERATOR, "s3cret-proctor", 0),
			 -EEXIST);
	ck_assert_int_eq(tok_store_add(store, "empty", CFG_ROLE_OPERATOR, "", 0), -EINVAL);
	ck_assert_int_eq(tok_store_add(store, "null", CFG_ROLE_OPERATOR, NULL, 0), -EINVAL);
	ck_assert_int_eq(tok_store_add(store, "role", CFG_ROLE_COUNT, "other", 0), -EINVAL);
	/* The duplicate did not change the first entry's role. */
	ck_assert_int_eq(check("s3cret-proctor", CFG_ROLE_OPERATOR, 0), -EPERM);
	/* A nameless token is fine. */
	ck_assert_int_eq(tok_store_add(store, NULL, CFG_ROLE_PROCTOR, "anon", 0), 0);

	const struct tok_info *info = NULL;

	ck_assert_int_eq(tok_check(store, "anon", 4, ~0u, 0, &info), 0);
	ck_assert_str_eq(info->name, "");
}
END_TEST

START_TEST(test_many_entries_pointers_stay)
{
	const struct tok_info *first = NULL, *info = NULL;
	char secret[32];

	ck_assert_int_eq(tok_check(store, "s3cret-sentinel", 15, ~0u, 0, &first), 0);
	for (int i = 0; i < 500; i++) {
		snprintf(secret, sizeof(secret), "token-%d", i);
		ck_assert_int_eq(tok_store_add(store, secret, CFG_ROLE_SENTINEL, secret, 0), 0);
	}
	for (int i = 0; i < 500; i += 37) {
		snprintf(secret, sizeof(secret), "token-%d", i);
		ck_assert_int_eq(tok_check(store, secret, strlen(secret), ~0u, 0, &info), 0);
		ck_assert_str_eq(info->name, secret);
	}
	ck_assert_int_eq(tok_check(store, "s3cret-sentinel", 15, ~0u, 0, &info), 0);
	ck_assert_ptr_eq(info, first);
	ck_assert_str_eq(first->name, "hall-a");
}
END_TEST

START_TEST(test_load_from_cfg)
{
	struct cfg_token tokens[] = {
		{ .name = "cam", .role = CFG_ROLE_SENTINEL, .token = "t-cam" },
		{ .name = "prof", .role = CFG_ROLE_PROCTOR, .token = "t-prof", .expires = 500 },
		{ .name = "file",
		  .role = CFG_ROLE_OPERATOR,
		  .token = "t-file",
		  .token_file = "/etc/vigil/op.token" },
	};
	struct cfg cfg = { .tokens = tokens, .n_tokens = 3 };
	struct tok_store *s = tok_store_new();
	const struct tok_info *info = NULL;

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(tok_store_load(s, &cfg), 0);
	ck_assert_int_eq(tok_check(s, "t-cam", 5, tok_mask_for(CFG_ROLE_SENTINEL), 0, &info), 0);
	ck_assert_str_eq(info->name, "cam");
	ck_assert_int_eq(tok_check(s, "t-prof", 6, tok_mask_for(CFG_ROLE_PROCTOR), 499, &info), 0);
	ck_assert_int_eq(info->expires, 500);
	ck_assert_int_eq(tok_check(s, "t-prof", 6, tok_mask_for(CFG_ROLE_PROCTOR), 500, NULL),
			 -EKEYEXPIRED);
	ck_assert_int_eq(tok_check(s, "t-file", 6, tok_mask_for(CFG_ROLE_ARCHIVIST), 0, &info), 0);
	ck_assert_str_eq(info->name, "file");
	tok_store_free(s);
}
END_TEST

START_TEST(test_load_all_or_nothing)
{
	struct cfg_token tokens[] = {
		{ .name = "a", .role = CFG_ROLE_SENTINEL, .token = "t-a" },
		{ .name = "b", .role = CFG_ROLE_PROCTOR, .token = "t-b" },
		{ .name = "dup", .role = CFG_ROLE_OPERATOR, .token = "t-a" },
	};
	struct cfg cfg = { .tokens = tokens, .n_tokens = 3 };

	ck_assert_int_eq(tok_store_load(store, &cfg), -EEXIST);
	ck_assert_int_eq(tok_check(store, "t-a", 3, ~0u, 0, NULL), -EACCES);
	ck_assert_int_eq(tok_check(store, "t-b", 3, ~0u, 0, NULL), -EACCES);
	/* What was there before stays. */
	ck_assert_int_eq(check("s3cret-operator", CFG_ROLE_OPERATOR, 0), 0);

	cfg.n_tokens = 2;
	ck_assert_int_eq(tok_store_load(store, &cfg), 0);
	ck_assert_int_eq(tok_check(store, "t-b", 3, ~0u, 0, NULL), 0);

	struct cfg none = { 0 };

	ck_assert_int_eq(tok_store_load(store, &none), 0);
}
END_TEST

START_TEST(test_free_null)
{
	tok_store_free(NULL);
}
END_TEST

static TCase *
tcase(const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test);
	return tc;
}

static Suite *
tok_suite(void)
{
	Suite *s = suite_create("tok");

	suite_add_tcase(s, tcase("masks", test_masks));
	suite_add_tcase(s, tcase("roles", test_roles));
	suite_add_tcase(s, tcase("refusal_names", test_refusal_names_a_known_token));
	suite_add_tcase(s, tcase("unknown", test_unknown));
	suite_add_tcase(s, tcase("expiry", test_expiry_boundary));
	suite_add_tcase(s, tcase("revocation", test_revocation));
	suite_add_tcase(s, tcase("revoke_by_digest", test_revoke_by_digest));
	suite_add_tcase(s, tcase("digest_hex", test_digest_hex));
	suite_add_tcase(s, tcase("add_errors", test_add_errors));
	suite_add_tcase(s, tcase("many_entries", test_many_entries_pointers_stay));
	suite_add_tcase(s, tcase("load", test_load_from_cfg));
	suite_add_tcase(s, tcase("load_atomic", test_load_all_or_nothing));
	suite_add_tcase(s, tcase("free_null", test_free_null));
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(tok_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
