/* test_archive: archive/store.c and sync.c over common/layout.c, the layout of
 * docs/archive.md: names, index lines, atomic files, the start-up repair of a
 * session directory (torn tail, missing or short files, stray temp and
 * unlisted files) and removal that spares files archive did not write. Each
 * test gets a fresh temporary directory. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"

static char tdir[64];
static int tfd = -1;

static void
setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/test_archive.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	tfd = open(tdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(tfd, 0);
}

static void
teardown(void)
{
	char cmd[128];

	close(tfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void
put(const char *name, const void *data, size_t len)
{
	int fd = openat(tfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void
puts_(const char *name, const char *text)
{
	put(name, text, strlen(text));
}

static bool
exists(const char *name)
{
	struct stat sb;

	return fstatat(tfd, name, &sb, 0) == 0;
}

static char *
slurp(const char *name)
{
	static char buf[8192];
	int fd = openat(tfd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

/* A segment file of len bytes and its index line appended to *idx. */
static void
segment(int64_t seq, size_t len, char *idx, size_t size)
{
	struct layout_entry e = { .sequence = seq,
				  .start_ms = 1000 * seq,
				  .duration_ms = 1000,
				  .bytes = len,
				  .keyframe = true };
	char name[32], line[512];
	char *data = malloc(len);

	memset(data, 'a' + (int)(seq % 26), len);
	layout_seg_name(seq, name, sizeof(name));
	put(name, data, len);
	layout_sha256_hex(data, len, e.sha256);
	ck_assert_int_gt(layout_entry_format(&e, line, sizeof(line)), 0);
	ck_assert_uint_lt(strlen(idx) + strlen(line), size);
	strcat(idx, line);
	free(data);
}

START_TEST(test_names)
{
	char buf[32];

	layout_seg_name(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "000000.m4s");
	layout_seg_name(999999, buf, sizeof(buf));
	ck_assert_str_eq(buf, "999999.m4s");
	layout_seg_name(1000000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1000000.m4s");
	layout_init_name(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "init.mp4");
	layout_init_name(3, buf, sizeof(buf));
	ck_assert_str_eq(buf, "init-3.mp4");
	layout_thumb_name(10, 160, 42, buf, sizeof(buf));
	ck_assert_str_eq(buf, "thumb-10s-160-000042.jpg");
	static const char *const ours[] = { "000000.m4s",
					    "1234567.m4s",
					    "init.mp4",
					    "init-12.mp4",
					    "index.jsonl",
					    "session.json",
					    "sentinel.json",
					    "000001.m4s.tmp",
					    "session.json.tmp",
					    "thumb-10s-160-000000.jpg",
					    "thumb-10s-160-1234567.jpg.tmp" };
	static const char *const theirs[] = { "notes.txt",
					      "12345.m4s",
					      "00000a.m4s",
					      "init-.mp4",
					      "init-x.mp4",
					      "index.jsonl.bak",
					      ".m4s",
					      "foo.tmp",
					      "x000000.m4s",
					      "..",
					      ".",
					      "thumb-10s-160-.jpg",
					      "thumb-10-160-1.jpg",
					      "thumb-s-160-1.jpg",
					      "thumb-10s-160-1.png",
					      "thumb-10s-1x0-1.jpg" };
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		ck_assert_msg(layout_name(ours[i]), "%s not ours", ours[i]);
	for (size_t i = 0; i < sizeof(theirs) / sizeof(theirs[0]); i++)
		ck_assert_msg(!layout_name(theirs[i]), "%s ours", theirs[i]);
}
END_TEST

START_TEST(test_entry_round_trip)
{
	struct layout_entry e = { .sequence = 42,
				  .start_ms = 1763900000000,
				  .duration_ms = 999,
				  .bytes = 12345,
				  .keyframe = false,
				  .init = 2 },
			    got;
	char line[512];
	int n;

	layout_sha256_hex("abc", 3, e.sha256);
	ck_assert_str_eq(e.sha256,
			 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	n = layout_entry_format(&e, line, sizeof(line));
	ck_assert_int_eq(n, (int)strlen(line));
	ck_assert_str_eq(line,
			 "{\"sequence\":42,\"startTime\":1763900000000,\"duration\":999,"
			 "\"bytes\":12345,\"keyframe\":false,\"init\":2,\"sha256\":"
			 "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}\n");
	ck_assert_int_eq(layout_entry_parse(line, (size_t)n - 1, &got), 0);
	ck_assert_int_eq(got.sequence, 42);
	ck_assert_int_eq(got.start_ms, 1763900000000);
	ck_assert_uint_eq(got.duration_ms, 999);
	ck_assert_uint_eq(got.bytes, 12345);
	ck_assert(!got.keyframe);
	ck_assert_uint_eq(got.init, 2);
	ck_assert_str_eq(got.sha256, e.sha256);
	ck_assert_int_eq(layout_entry_format(&e, line, 40), -ENOBUFS);
}
END_TEST

START_TEST(test_entry_parse_refuses)
{
	static const char *const bad[] = {
		"",
		"{\"sequence\":1",
		"[]",
		"{\"sequence\":-1,\"startTime\":0,\"duration\":1,\"bytes\":1,\"keyframe\":true,"
		"\"init\":0,\"sha256\":\"" /* 64 x 0 */
		"0000000000000000000000000000000000000000000000000000000000000000\"}",
		"{\"sequence\":1,\"startTime\":0,\"duration\":1,\"bytes\":1,\"keyframe\":true,"
		"\"init\":0,\"sha256\":\"00\"}",
		"{\"sequence\":1,\"startTime\":0,\"duration\":1,\"bytes\":1,\"keyframe\":1,"
		"\"init\":0,\"sha256\":"
		"\"0000000000000000000000000000000000000000000000000000000000000000\"}",
		"{\"sequence\":1,\"startTime\":0,\"duration\":1,\"bytes\":1,\"keyframe\":true,"
		"\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	};
	struct layout_entry e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(layout_entry_parse(bad[i], strlen(bad[i]), &e) == -EINVAL, "took %s",
			      bad[i]);
}
END_TEST

START_TEST(test_atomic_and_meta)
{
	struct layout_session m = { .sentinel = "0b6c0000-0000-4000-8000-000000000001",
				    .session = "5f1e0000-0000-4000-8000-000000000002",
				    .name = "hall \"a\" / 7",
				    .codec = "avc1.64001f",
				    .width = 1280,
				    .height = 720,
				    .timescale = 90000,
				    .start_ms = 1763900000000,
				    .end_ms = -1,
				    .inits = 1 },
			      got;
	struct layout_sentinel ls;

	ck_assert_int_eq(archive_meta_write(tfd, &m), 0);
	ck_assert(!exists("session.json.tmp"));
	ck_assert_str_eq(
		slurp("session.json"),
		"{\"sentinelId\":\"0b6c0000-0000-4000-8000-000000000001\",\"sessionId\":"
		"\"5f1e0000-0000-4000-8000-000000000002\",\"name\":\"hall \\\"a\\\" / 7\","
		"\"codec\":\"avc1.64001f\",\"width\":1280,\"height\":720,\"timescale\":90000,"
		"\"startTime\":1763900000000,\"endTime\":null,\"inits\":1}");
	ck_assert_int_eq(layout_session_read(tfd, &got), 0);
	ck_assert_int_eq(got.end_ms, -1);
	ck_assert_str_eq(got.name, m.name);
	m.end_ms = 1763900060000;
	m.inits = 2;
	ck_assert_int_eq(archive_meta_write(tfd, &m), 0);
	ck_assert_int_eq(layout_session_read(tfd, &got), 0);
	ck_assert_int_eq(got.end_ms, 1763900060000);
	ck_assert_uint_eq(got.inits, 2);
	ck_assert_int_eq(layout_sentinel_read(tfd, &ls), -ENOENT);
	ck_assert_int_eq(archive_sentinel_write(tfd, m.sentinel, "seat 7"), 0);
	ck_assert_int_eq(layout_sentinel_read(tfd, &ls), 0);
	ck_assert_str_eq(ls.name, "seat 7");
	puts_("session.json", "{\"startTime\":");
	ck_assert_int_eq(layout_session_read(tfd, &got), -EINVAL);
}
END_TEST

START_TEST(test_repair_clean)
{
	char idx[4096] = "";
	struct archive_scan sc;

	for (int i = 0; i < 5; i++)
		segment(i, 100 + (size_t)i, idx, sizeof(idx));
	puts_("index.jsonl", idx);
	puts_("init.mp4", "init");
	ck_assert_int_eq(archive_session_repair(tfd, &sc), 0);
	ck_assert_uint_eq(sc.segments, 5);
	ck_assert_uint_eq(sc.dropped + sc.removed, 0);
	ck_assert(!sc.torn);
	ck_assert_int_eq(sc.last_seq, 4);
	ck_assert_int_eq(sc.last_end_ms, 5000);
	ck_assert_uint_eq(sc.index_size, strlen(idx));
	ck_assert_uint_eq(sc.bytes, 100 + 101 + 102 + 103 + 104 + strlen(idx) + 4);
	ck_assert_str_eq(slurp("index.jsonl"), idx);
}
END_TEST

START_TEST(test_repair_torn_tail)
{
	char idx[4096] = "", torn[8192];
	struct archive_scan sc;

	for (int i = 0; i < 3; i++)
		segment(i, 64, idx, sizeof(idx));
	snprintf(torn, sizeof(torn), "%s{\"sequence\":3,\"startTi", idx);
	puts_("index.jsonl", torn);
	ck_assert_int_eq(archive_session_repair(tfd, &sc), 0);
	ck_assert(sc.torn);
	ck_assert_uint_eq(sc.segments, 3);
	ck_assert_str_eq(slurp("index.jsonl"), idx);
}
END_TEST

START_TEST(test_repair_drops_missing_short_and_unlisted)
{
	char idx[4096] = "", kept[4096] = "", line[4096];
	struct archive_scan sc;

	segment(0, 50, idx, sizeof(idx));
	strcpy(kept, idx);
	segment(1, 50, idx, sizeof(idx)); /* its file goes missing */
	segment(2, 50, idx, sizeof(idx)); /* its file is cut short */
	ck_assert_int_eq(unlinkat(tfd, "000001.m4s", 0), 0);
	puts_("000002.m4s", "short");
	snprintf(line, sizeof(line), "%s", idx);
	segment(3, 50, kept, sizeof(kept));
	segment(3, 50, line, sizeof(line)); /* listed after the bad ones */
	puts_("index.jsonl", line);
	segment(4, 50, idx, sizeof(idx)); /* renamed but never listed */
	puts_("000005.m4s.tmp", "torn");
	puts_("notes.txt", "someone else's");
	ck_assert_int_eq(archive_session_repair(tfd, &sc), 0);
	ck_assert_uint_eq(sc.dropped, 2);
	ck_assert_uint_eq(sc.removed, 3); /* 000002 (short, unlisted now), 000004, the .tmp */
	ck_assert_uint_eq(sc.segments, 2);
	ck_assert_int_eq(sc.last_seq, 3);
	ck_assert_str_eq(slurp("index.jsonl"), kept);
	ck_assert(exists("000000.m4s") && exists("000003.m4s") && exists("notes.txt"));
	ck_assert(!exists("000002.m4s") && !exists("000004.m4s") && !exists("000005.m4s.tmp"));
	ck_assert(!exists("index.jsonl.tmp"));
}
END_TEST

START_TEST(test_remove_spares_other_files)
{
	int sub;

	ck_assert_int_eq(mkdirat(tfd, "s", 0755), 0);
	sub = openat(tfd, "s", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(sub, 0);
	ck_assert_int_eq(archive_write_atomic(sub, "000000.m4s", "x", 1, true), 0);
	ck_assert_int_eq(archive_write_atomic(sub, "index.jsonl", "", 0, true), 0);
	ck_assert_int_eq(archive_write_atomic(sub, "keep.me", "y", 1, true), 0);
	/* httpd's thumbnails go with their session. */
	ck_assert_int_eq(archive_write_atomic(sub, "thumb-10s-160-000003.jpg", "z", 1, true), 0);
	ck_assert_int_eq(archive_remove_dir(tfd, "s"), -ENOTEMPTY);
	ck_assert(exists("s/keep.me"));
	ck_assert(!exists("s/000000.m4s") && !exists("s/index.jsonl"));
	ck_assert(!exists("s/thumb-10s-160-000003.jpg"));
	ck_assert_int_eq(unlinkat(sub, "keep.me", 0), 0);
	close(sub);
	ck_assert_int_eq(archive_remove_dir(tfd, "s"), 0);
	ck_assert(!exists("s"));
	ck_assert_int_eq(archive_remove_dir(tfd, "s"), -ENOENT);
}
END_TEST

START_TEST(test_sync_all)
{
	struct archive_sync *sy = archive_sync_new(4);
	int fds[20], errs[20];

	ck_assert_ptr_nonnull(sy);
	for (int i = 0; i < 20; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		fds[i] = openat(tfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		ck_assert_int_ge(fds[i], 0);
		ck_assert_int_eq(write(fds[i], name, strlen(name)), (ssize_t)strlen(name));
	}
	for (int round = 0; round < 3; round++)
		ck_assert_int_eq(archive_sync_all(sy, fds, 20, errs), 0);
	close(fds[7]);
	fds[7] = -1;
	ck_assert_int_eq(archive_sync_all(sy, fds, 20, errs), -EBADF);
	ck_assert_int_eq(errs[7], -EBADF);
	ck_assert_int_eq(errs[6], 0);
	for (int i = 0; i < 20; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
	archive_sync_free(sy);
}
END_TEST

static Suite *
archive_suite(void)
{
	Suite *s = suite_create("archive");
	TCase *tc;

	tc = tcase_create("names");
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	tc = tcase_create("index_lines");
	tcase_add_test(tc, test_entry_round_trip);
	tcase_add_test(tc, test_entry_parse_refuses);
	suite_add_tcase(s, tc);
	tc = tcase_create("files");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_atomic_and_meta);
	tcase_add_test(tc, test_remove_spares_other_files);
	tcase_add_test(tc, test_sync_all);
	suite_add_tcase(s, tc);
	tc = tcase_create("repair");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_repair_clean);
	tcase_add_test(tc, test_repair_torn_tail);
	tcase_add_test(tc, test_repair_drops_missing_short_and_unlisted);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(archive_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
