/* test_hlscap: playlist tokens: made and checked for their session only,
 * expiry against an injected clock, every changed byte refused, the parent
 * revoked, expired, removed or of a role that may not read, another key, the
 * key file (made once, 0600, read back the same, refused when wrong). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hlscap.h"

#define SENT  "0f0e0d0c-0b0a-4908-8706-050403020100"
#define SESS  "11111111-2222-4333-8444-555555555555"
#define SESS2 "11111111-2222-4333-8444-555555555556"
#define NOW   1800000000LL

static struct tok_store *store;
static struct hlscap *cap;
static uint8_t proctor[TOK_DIGEST_LEN];
static const uint8_t key[HLSCAP_KEY_LEN] = "0123456789abcdef0123456789abcde";

static void
setup(void)
{
	store = tok_store_new();
	ck_assert_ptr_nonnull(store);
	ck_assert_int_eq(tok_store_add(store, "alice", CFG_ROLE_PROCTOR, "proctor-secret", 0), 0);
	ck_assert_int_eq(tok_store_add(store, "cam", CFG_ROLE_SENTINEL, "sentinel-secret", 0), 0);
	ck_assert_int_eq(tok_store_add(store, "bob", CFG_ROLE_ARCHIVIST, "archivist-secret",
				       NOW + 100),
			 0);
	ck_assert_int_eq(tok_digest("proctor-secret", 14, proctor), 0);
	cap = hlscap_new(key);
	ck_assert_ptr_nonnull(cap);
}

static void
teardown(void)
{
	hlscap_free(cap);
	tok_store_free(store);
}

static void
make(const char *secret, const char *session, int64_t expires, char out[HLSCAP_TEXT_LEN + 1])
{
	uint8_t d[TOK_DIGEST_LEN];

	ck_assert_int_eq(tok_digest(secret, strlen(secret), d), 0);
	ck_assert_int_eq(hlscap_make(cap, d, SENT, session, expires, out), 0);
}

static int
check_at(const char *text, const char *sentinel, const char *session, int64_t now)
{
	return hlscap_check(cap, store, text, strlen(text), sentinel, session, now, NULL);
}

START_TEST(test_roundtrip)
{
	char t[HLSCAP_TEXT_LEN + 1];
	const struct tok_info *info = NULL;

	make("proctor-secret", SESS, NOW + 3600, t);
	ck_assert_uint_eq(strlen(t), HLSCAP_TEXT_LEN);
	ck_assert(hlscap_is(t, strlen(t)));
	/* URL-safe as it is: no escaping in a link. */
	ck_assert_uint_eq(strspn(t + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					"0123456789-_"),
			  HLSCAP_TEXT_LEN - 4);
	ck_assert_ptr_null(strstr(t, "proctor-secret"));
	ck_assert_int_eq(hlscap_check(cap, store, t, strlen(t), SENT, SESS, NOW, &info), 0);
	ck_assert_ptr_nonnull(info);
	ck_assert_str_eq(info->name, "alice");
	ck_assert_int_eq(info->role, CFG_ROLE_PROCTOR);
	/* The same inputs give the same token; another expiry another. */
	{
		char t2[HLSCAP_TEXT_LEN + 1];

		make("proctor-secret", SESS, NOW + 3600, t2);
		ck_assert_str_eq(t, t2);
		make("proctor-secret", SESS, NOW + 3601, t2);
		ck_assert_str_ne(t, t2);
	}
}
END_TEST

START_TEST(test_other_session)
{
	char t[HLSCAP_TEXT_LEN + 1];

	make("proctor-secret", SESS, NOW + 3600, t);
	ck_assert_int_eq(check_at(t, SENT, SESS2, NOW), -EBADMSG);
	ck_assert_int_eq(check_at(t, SESS, SENT, NOW), -EBADMSG);
	ck_assert_int_eq(check_at(t, SESS2, SESS, NOW), -EBADMSG);
	ck_assert_int_eq(check_at(t, SENT, "", NOW), -EBADMSG);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW), 0);
}
END_TEST

START_TEST(test_expiry)
{
	char t[HLSCAP_TEXT_LEN + 1];

	make("proctor-secret", SESS, NOW + 3600, t);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW + 3599), 0);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW + 3600), -EKEYEXPIRED);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW + 86400), -EKEYEXPIRED);
	/* Expired already when made. */
	make("proctor-secret", SESS, 0, t);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW), -EKEYEXPIRED);
	/* Past 2106: cut to the last second a u32 holds. */
	make("proctor-secret", SESS, INT64_MAX, t);
	ck_assert_int_eq(check_at(t, SENT, SESS, (int64_t)UINT32_MAX - 1), 0);
	ck_assert_int_eq(check_at(t, SENT, SESS, (int64_t)UINT32_MAX), -EKEYEXPIRED);
	ck_assert_int_eq(hlscap_make(cap, proctor, SENT, SESS, -1, t), -EINVAL);
}
END_TEST

/* The parent's own expiry ends its playlist tokens whatever theirs says. */
START_TEST(test_parent_expiry)
{
	char t[HLSCAP_TEXT_LEN + 1];
	const struct tok_info *info = NULL;

	make("archivist-secret", SESS, NOW + 3600, t);
	ck_assert_int_eq(hlscap_check(cap, store, t, strlen(t), SENT, SESS, NOW + 99, &info), 0);
	ck_assert_str_eq(info->name, "bob");
	ck_assert_int_eq(info->role, CFG_ROLE_ARCHIVIST);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW + 100), -EKEYEXPIRED);
}
END_TEST

/* Every character replaced by every other one of the alphabet (and a few
 * outside it), every length but the right one: never accepted. */
START_TEST(test_every_byte)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789-_+/=.%";
	char t[HLSCAP_TEXT_LEN + 1], f[HLSCAP_TEXT_LEN + 2];

	make("proctor-secret", SESS, NOW + 3600, t);
	for (size_t i = 0; i < HLSCAP_TEXT_LEN; i++) {
		for (const char *c = alphabet; *c != '\0'; c++) {
			if (*c == t[i])
				continue;
			memcpy(f, t, sizeof(t));
			f[i] = *c;
			ck_assert_msg(check_at(f, SENT, SESS, NOW) < 0, "byte %zu as %c accepted",
				      i, *c);
		}
	}
	for (size_t n = 0; n < HLSCAP_TEXT_LEN; n++)
		ck_assert_int_eq(hlscap_check(cap, store, t, n, SENT, SESS, NOW, NULL), -EBADMSG);
	memcpy(f, t, sizeof(t));
	f[HLSCAP_TEXT_LEN] = 'A';
	f[HLSCAP_TEXT_LEN + 1] = '\0';
	ck_assert_int_eq(check_at(f, SENT, SESS, NOW), -EBADMSG);
	ck_assert_int_eq(check_at("proctor-secret", SENT, SESS, NOW), -EBADMSG);
	ck_assert(!hlscap_is("proctor-secret", 14));
}
END_TEST

START_TEST(test_revoked_parent)
{
	char t[HLSCAP_TEXT_LEN + 1];

	make("proctor-secret", SESS, NOW + 3600, t);
	ck_assert_int_eq(tok_revoke(store, "proctor-secret", 14), 0);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW), -EKEYREVOKED);
	ck_assert_int_eq(tok_lift_digest(store, proctor), 0);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW), 0);
	/* By digest, as vigild's list comes to a stage. */
	ck_assert_int_eq(tok_set_revoked(store, proctor, 1), 1);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW), -EKEYREVOKED);
}
END_TEST

/* A reload makes a new store: a parent that is not in it any more ends its
 * tokens; one that is (or is added later) keeps them. */
START_TEST(test_removed_parent)
{
	char t[HLSCAP_TEXT_LEN + 1], t2[HLSCAP_TEXT_LEN + 1];
	struct tok_store *next = tok_store_new();

	make("proctor-secret", SESS, NOW + 3600, t);
	make("archivist-secret", SESS, NOW + 3600, t2);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW), 0);
	ck_assert_int_eq(tok_store_add(next, "bob", CFG_ROLE_ARCHIVIST, "archivist-secret", 0), 0);
	tok_store_free(store);
	store = next;
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW), -EBADMSG);
	ck_assert_int_eq(check_at(t2, SENT, SESS, NOW), 0);
	ck_assert_int_eq(tok_store_add(store, "alice-again", CFG_ROLE_PROCTOR, "proctor-secret", 0),
			 0);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW), 0);
}
END_TEST

/* A sentinel token may not read recordings: neither may its playlist tokens. */
START_TEST(test_parent_role)
{
	char t[HLSCAP_TEXT_LEN + 1];

	make("sentinel-secret", SESS, NOW + 3600, t);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW), -EPERM);
}
END_TEST

START_TEST(test_other_key)
{
	uint8_t other_key[HLSCAP_KEY_LEN] = { 1 };
	struct hlscap *other = hlscap_new(other_key);
	char t[HLSCAP_TEXT_LEN + 1];

	ck_assert_ptr_nonnull(other);
	ck_assert_int_eq(hlscap_make(other, proctor, SENT, SESS, NOW + 3600, t), 0);
	ck_assert_int_eq(check_at(t, SENT, SESS, NOW), -EBADMSG);
	ck_assert_int_eq(hlscap_check(other, store, t, strlen(t), SENT, SESS, NOW, NULL), 0);
	hlscap_free(other);
	other = hlscap_new_random();
	ck_assert_ptr_nonnull(other);
	ck_assert_int_eq(hlscap_check(other, store, t, strlen(t), SENT, SESS, NOW, NULL), -EBADMSG);
	hlscap_free(other);
	hlscap_free(NULL);
}
END_TEST

static int
tmpdir(char *path, size_t size)
{
	int fd;

	snprintf(path, size, "/tmp/test_hlscap.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(path));
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* Made once, 0600 whatever the umask, read back the same by a second opener
 * (httpd after a restart): its tokens pass there. */
START_TEST(test_key_file)
{
	char dir[64], t[HLSCAP_TEXT_LEN + 1];
	struct hlscap *a = NULL, *b = NULL;
	struct stat st;
	int dfd = tmpdir(dir, sizeof(dir));

	umask(0);
	ck_assert_int_eq(hlscap_open(dfd, &a), 0);
	ck_assert_int_eq(fstatat(dfd, HLSCAP_KEY_FILE, &st, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(st.st_size, HLSCAP_KEY_LEN);
	ck_assert_int_eq(hlscap_make(a, proctor, SENT, SESS, NOW + 60, t), 0);
	ck_assert_int_eq(hlscap_open(dfd, &b), 0);
	ck_assert_int_eq(hlscap_check(b, store, t, strlen(t), SENT, SESS, NOW, NULL), 0);
	ck_assert_int_eq(hlscap_check(cap, store, t, strlen(t), SENT, SESS, NOW, NULL), -EBADMSG);
	hlscap_free(a);
	hlscap_free(b);
	/* Nothing else is left beside it (rmdir fails on a temporary left). */
	ck_assert_int_eq(unlinkat(dfd, HLSCAP_KEY_FILE, 0), 0);
	close(dfd);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_key_file_refused)
{
	char dir[64];
	struct hlscap *a = NULL;
	int dfd = tmpdir(dir, sizeof(dir)), fd;

	/* readable by others: whoever reads it makes tokens */
	fd = openat(dfd, HLSCAP_KEY_FILE, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchmod(fd, 0644), 0);
	ck_assert_int_eq(write(fd, key, HLSCAP_KEY_LEN), HLSCAP_KEY_LEN);
	close(fd);
	ck_assert_int_eq(hlscap_open(dfd, &a), -EPERM);
	/* the wrong size: refused, and never rewritten */
	ck_assert_int_eq(fchmodat(dfd, HLSCAP_KEY_FILE, 0600, 0), 0);
	fd = openat(dfd, HLSCAP_KEY_FILE, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "x", 1), 1);
	close(fd);
	ck_assert_int_eq(hlscap_open(dfd, &a), -EINVAL);
	{
		struct stat st;

		ck_assert_int_eq(fstatat(dfd, HLSCAP_KEY_FILE, &st, 0), 0);
		ck_assert_int_eq(st.st_size, HLSCAP_KEY_LEN + 1);
	}
	ck_assert_int_eq(unlinkat(dfd, HLSCAP_KEY_FILE, 0), 0);
	/* a symlink is not followed */
	ck_assert_int_eq(symlinkat("/dev/zero", dfd, HLSCAP_KEY_FILE), 0);
	ck_assert_int_eq(hlscap_open(dfd, &a), -EINVAL);
	ck_assert_ptr_null(a);
	ck_assert_int_eq(unlinkat(dfd, HLSCAP_KEY_FILE, 0), 0);
	close(dfd);
	ck_assert_int_eq(rmdir(dir), 0);
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
hlscap_suite(void)
{
	Suite *s = suite_create("hlscap");

	suite_add_tcase(s, tcase("roundtrip", test_roundtrip));
	suite_add_tcase(s, tcase("other_session", test_other_session));
	suite_add_tcase(s, tcase("expiry", test_expiry));
	suite_add_tcase(s, tcase("parent_expiry", test_parent_expiry));
	suite_add_tcase(s, tcase("every_byte", test_every_byte));
	suite_add_tcase(s, tcase("revoked_parent", test_revoked_parent));
	suite_add_tcase(s, tcase("removed_parent", test_removed_parent));
	suite_add_tcase(s, tcase("parent_role", test_parent_role));
	suite_add_tcase(s, tcase("other_key", test_other_key));
	suite_add_tcase(s, tcase("key_file", test_key_file));
	suite_add_tcase(s, tcase("key_file_refused", test_key_file_refused));
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hlscap_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
