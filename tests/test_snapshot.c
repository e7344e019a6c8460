/* test_snapshot: httpd's snapshot on the real-encoder fixtures of tests/data/fmp4
 * (160x120 H.264, two segments starting at an IDR): a whole JPEG of that size,
 * read back from its SOF marker; and refusals with their codes for empty,
 * garbage, truncated and keyframe-less input, with the outputs left untouched. */
#include "snapshot.h"

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>

#include "fixture.h"
#include "log.h"

static struct blob init_mp4, seg0, seg1;

static void
setup(void)
{
	init_mp4 = fixture_load("init.mp4");
	seg0 = fixture_load("seg0.m4s");
	seg1 = fixture_load("seg1.m4s");
}

static void
teardown(void)
{
	free(init_mp4.data);
	free(seg0.data);
	free(seg1.data);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* Width and height from the first SOFn marker, walking the marker segments as
 * a decoder does; fails the test on a malformed JPEG. */
static void
jpeg_size(const uint8_t *p, size_t len, int *ret_w, int *ret_h)
{
	size_t off = 2;

	ck_assert_uint_ge(len, 4);
	ck_assert_msg(p[0] == 0xff && p[1] == 0xd8, "no SOI");
	ck_assert_msg(p[len - 2] == 0xff && p[len - 1] == 0xd9, "no EOI at the end");
	while (off + 4 <= len) {
		uint8_t m = p[off + 1];
		size_t seglen = (size_t)p[off + 2] << 8 | p[off + 3];

		ck_assert_msg(p[off] == 0xff, "no marker at %zu", off);
		ck_assert_uint_ge(seglen, 2);
		ck_assert_uint_le(off + 2 + seglen, len);
		/* SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc). */
		if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
			ck_assert_uint_ge(seglen, 7);
			*ret_h = p[off + 5] << 8 | p[off + 6];
			*ret_w = p[off + 7] << 8 | p[off + 8];
			return;
		}
		ck_assert_msg(m != 0xda, "scan before a frame header");
		off += 2 + seglen;
	}
	ck_abort_msg("no SOF marker");
}

/* snapshot_jpeg on exact-size heap copies, so that ASan sees any overread. */
static int
snap(const void *init, size_t init_len, const void *seg, size_t seg_len, unsigned char **jpeg,
     size_t *jpeg_len, int *w, int *h)
{
	void *ci = malloc(init_len > 0 ? init_len : 1), *cs = malloc(seg_len > 0 ? seg_len : 1);
	int r;

	ck_assert_ptr_nonnull(ci);
	ck_assert_ptr_nonnull(cs);
	if (init_len > 0)
		memcpy(ci, init, init_len);
	if (seg_len > 0)
		memcpy(cs, seg, seg_len);
	r = snapshot_jpeg(ci, init_len, cs, seg_len, jpeg, jpeg_len, w, h);
	free(ci);
	free(cs);
	return r;
}

/* Expects err and the outputs untouched. */
static void
refuse(const void *init, size_t init_len, const void *seg, size_t seg_len, int err)
{
	unsigned char *jpeg = (unsigned char *)"untouched";
	size_t len = 12345;
	int w = -7, h = -8;

	ck_assert_int_eq(snap(init, init_len, seg, seg_len, &jpeg, &len, &w, &h), err);
	ck_assert_str_eq((char *)jpeg, "untouched");
	ck_assert_uint_eq(len, 12345);
	ck_assert_int_eq(w, -7);
	ck_assert_int_eq(h, -8);
}

static void
expect_picture(const struct blob *seg)
{
	unsigned char *jpeg = NULL;
	size_t len = 0;
	int w = 0, h = 0, sw = 0, sh = 0;

	ck_assert_int_eq(snap(init_mp4.data, init_mp4.len, seg->data, seg->len, &jpeg, &len, &w,
			      &h),
			 0);
	ck_assert_ptr_nonnull(jpeg);
	ck_assert_uint_gt(len, 100);
	ck_assert_uint_le(len, SNAPSHOT_JPEG_MAX);
	jpeg_size(jpeg, len, &sw, &sh);
	ck_assert_int_eq(sw, 160);
	ck_assert_int_eq(sh, 120);
	ck_assert_int_eq(w, 160);
	ck_assert_int_eq(h, 120);
	free(jpeg);
}

/* The trun of seg (moof/traf/trun), which must carry per-sample duration, size
 * and flags and a data offset (as the fixtures do). Returns its offset. */
static size_t
find_trun(const struct blob *seg)
{
	size_t moof = 0, traf = 8 + 16; /* the fixtures: moof, mfhd (16), traf */
	size_t off;

	ck_assert_int_eq(memcmp(seg->data + moof + 4, "moof", 4), 0);
	ck_assert_int_eq(memcmp(seg->data + traf + 4, "traf", 4), 0);
	for (off = traf + 8; off + 8 <= traf + get32(seg->data + traf);
	     off += get32(seg->data + off)) {
		if (memcmp(seg->data + off + 4, "trun", 4) == 0) {
			ck_assert_uint_eq(get32(seg->data + off + 8) & 0xffffff, 0x701);
			return off;
		}
	}
	ck_abort_msg("no trun");
	return 0;
}

/* seg without its first sample (the IDR): the same fragment with only the
 * frames that depend on it. The new first sample's flags are left as they are
 * (non-sync) when lie is false, else marked sync, so that the fMP4 check lets
 * it through and only the decoder can tell. */
static struct blob
drop_idr(const struct blob *seg, bool lie)
{
	size_t trun = find_trun(seg), moof_len = get32(seg->data), entry = trun + 20;
	size_t traf = 24, idr_len = get32(seg->data + entry + 4), mdat = moof_len;
	struct blob b;
	uint8_t *p;

	ck_assert_int_eq(memcmp(seg->data + mdat + 4, "mdat", 4), 0);
	ck_assert_uint_eq(get32(seg->data + trun + 16), moof_len + 8); /* data offset */
	b.len = seg->len - 12 - idr_len;
	b.data = malloc(b.len);
	ck_assert_ptr_nonnull(b.data);
	p = b.data;
	memcpy(p, seg->data, entry);
	p += entry;
	memcpy(p, seg->data + entry + 12, mdat + 8 - (entry + 12));
	p += mdat + 8 - (entry + 12);
	memcpy(p, seg->data + mdat + 8 + idr_len, seg->len - (mdat + 8 + idr_len));
	put32(b.data, moof_len - 12);
	put32(b.data + traf, get32(seg->data + traf) - 12);
	put32(b.data + trun, get32(seg->data + trun) - 12);
	put32(b.data + trun + 12, get32(seg->data + trun + 12) - 1);
	put32(b.data + trun + 16, moof_len - 12 + 8);
	put32(b.data + moof_len - 12, get32(seg->data + mdat) - idr_len);
	ck_assert_uint_ne(get32(b.data + entry + 8) & 0x10000, 0); /* was non-sync */
	if (lie)
		put32(b.data + entry + 8, 0x02000000); /* sync, depends on nothing */
	return b;
}

START_TEST(test_fixture_picture)
{
	expect_picture(&seg0);
	expect_picture(&seg1);
}
END_TEST

/* NULL pointers and the width and height outputs, which may be NULL. */
/* Thumbnails: scaled down with the aspect ratio (160x120 to 80x60, and to an
 * even height), never up; a negative width refused. */
START_TEST(test_scaled)
{
	static const struct {
		int want, w, h;
	} cases[] = { { 80, 80, 60 },
		      { 50, 50, 38 },
		      { 0, 160, 120 },
		      { 160, 160, 120 },
		      { 640, 160, 120 } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char *jpeg = NULL;
		size_t len = 0;
		int w = 0, h = 0, sw = 0, sh = 0;

		ck_assert_int_eq(snapshot_jpeg_scaled(init_mp4.data, init_mp4.len, seg0.data,
						      seg0.len, cases[i].want, &jpeg, &len, &w, &h),
				 0);
		jpeg_size(jpeg, len, &sw, &sh);
		ck_assert_int_eq(sw, cases[i].w);
		ck_assert_int_eq(sh, cases[i].h);
		ck_assert_int_eq(w, cases[i].w);
		ck_assert_int_eq(h, cases[i].h);
		free(jpeg);
	}
	ck_assert_int_eq(snapshot_jpeg_scaled(init_mp4.data, init_mp4.len, seg0.data, seg0.len, -2,
					      &(unsigned char *){ NULL }, &(size_t){ 0 }, NULL,
					      NULL),
			 -EINVAL);
}
END_TEST

START_TEST(test_arguments)
{
	unsigned char *jpeg = NULL;
	size_t len = 0;
	int w = 0;

	ck_assert_int_eq(snapshot_jpeg(NULL, 1, seg0.data, seg0.len, &jpeg, &len, NULL, NULL),
			 -EINVAL);
	ck_assert_int_eq(snapshot_jpeg(init_mp4.data, init_mp4.len, NULL, 1, &jpeg, &len, NULL,
				       NULL),
			 -EINVAL);
	ck_assert_int_eq(snapshot_jpeg(init_mp4.data, init_mp4.len, seg0.data, seg0.len, NULL, &len,
				       NULL, NULL),
			 -EINVAL);
	ck_assert_int_eq(snapshot_jpeg(init_mp4.data, init_mp4.len, seg0.data, seg0.len, &jpeg,
				       NULL, NULL, NULL),
			 -EINVAL);
	ck_assert_int_eq(snapshot_jpeg(init_mp4.data, SNAPSHOT_INPUT_MAX, seg0.data, 1, &jpeg, &len,
				       NULL, NULL),
			 -EFBIG);
	ck_assert_int_eq(snapshot_jpeg(init_mp4.data, init_mp4.len, seg0.data, seg0.len, &jpeg,
				       &len, &w, NULL),
			 0);
	ck_assert_int_eq(w, 160);
	ck_assert_int_eq(jpeg[0], 0xff);
	free(jpeg);
}
END_TEST

START_TEST(test_empty)
{
	refuse(init_mp4.data, 0, seg0.data, seg0.len, -EINVAL);
	refuse(init_mp4.data, init_mp4.len, seg0.data, 0, -EINVAL);
	refuse(init_mp4.data, 0, seg0.data, 0, -EINVAL);
}
END_TEST

START_TEST(test_garbage)
{
	uint8_t junk[4096];
	unsigned seed = 12345;
	size_t i;

	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(rand_r(&seed) >> 7);
	refuse(junk, sizeof(junk), seg0.data, seg0.len, -EBADMSG);
	refuse(init_mp4.data, init_mp4.len, junk, sizeof(junk), -EBADMSG);
	refuse(junk, sizeof(junk), junk, sizeof(junk), -EBADMSG);
	/* Swapped: a segment where the init goes and the other way round. */
	refuse(seg0.data, seg0.len, init_mp4.data, init_mp4.len, -EBADMSG);
}
END_TEST

/* Well-formed boxes around noise: only GStreamer sees that the samples are not
 * H.264, and avdec_h264 (GstVideoDecoder) ends with "No valid frames decoded
 * before end of stream": no picture, and no JPEG of noise. */
static struct blob
noise_samples(const struct blob *seg)
{
	struct blob s = { malloc(seg->len), seg->len };
	size_t moof_len = get32(seg->data), i;
	unsigned seed = 777;

	ck_assert_ptr_nonnull(s.data);
	memcpy(s.data, seg->data, s.len);
	for (i = moof_len + 8; i < s.len; i++)
		s.data[i] = (uint8_t)(rand_r(&seed) >> 7);
	return s;
}

START_TEST(test_garbage_samples)
{
	struct blob s = noise_samples(&seg0);

	refuse(init_mp4.data, init_mp4.len, s.data, s.len, -EBADMSG);
	free(s.data);
}
END_TEST

/* An init whose avc1 sample entry says wider than SNAPSHOT_DIM_MAX is refused
 * before any decoder allocates a frame of that size. */
START_TEST(test_too_wide)
{
	struct blob b = { malloc(init_mp4.len), init_mp4.len };
	uint8_t *avc1;

	ck_assert_ptr_nonnull(b.data);
	memcpy(b.data, init_mp4.data, b.len);
	avc1 = memmem(b.data, b.len, "avc1", 4);
	ck_assert_ptr_nonnull(avc1);
	/* type, reserved (6), data reference index, pre_defined and reserved (16): width. */
	avc1 += 4 + 6 + 2 + 16;
	ck_assert_uint_eq((unsigned)(avc1[0] << 8 | avc1[1]), 160);
	avc1[0] = (SNAPSHOT_DIM_MAX + 1) >> 8;
	avc1[1] = (SNAPSHOT_DIM_MAX + 1) & 0xff;
	refuse(b.data, b.len, seg0.data, seg0.len, -EFBIG);
	free(b.data);
}
END_TEST

/* Every truncation of the init and of the segment; the fMP4 check refuses
 * them all before a pipeline is built, so this stays fast. */
START_TEST(test_truncated)
{
	size_t n;

	for (n = 1; n < init_mp4.len; n++)
		refuse(init_mp4.data, n, seg0.data, seg0.len, -EBADMSG);
	for (n = 1; n < seg0.len; n++)
		refuse(init_mp4.data, init_mp4.len, seg0.data, n, -EBADMSG);
}
END_TEST

/* A segment that does not start with a keyframe: refused from its flags... */
START_TEST(test_no_keyframe)
{
	struct blob b = drop_idr(&seg0, false);

	refuse(init_mp4.data, init_mp4.len, b.data, b.len, -ENOENT);
	free(b.data);
}
END_TEST

/* ... and, when its flags lie, by the decoder, which has no reference frame
 * and outputs no corrupt picture (output-corrupt=false): it ends with "No
 * valid frames decoded", so no picture at all rather than a grey one. */
START_TEST(test_no_keyframe_lying)
{
	struct blob b = drop_idr(&seg0, true);

	refuse(init_mp4.data, init_mp4.len, b.data, b.len, -EBADMSG);
	free(b.data);
}
END_TEST

/* The init of one stream with the segment it describes, run many times in
 * one process: memory stays with ASan's leak check at exit. */
START_TEST(test_repeat)
{
	int i;

	for (i = 0; i < 5; i++)
		expect_picture(i % 2 ? &seg1 : &seg0);
}
END_TEST

/* How many entries of list (a leaks tracer checkpoint's) are not GstTasks. A
 * GstTask's last reference belongs to its own thread, which drops it after the
 * join that ends the pipeline: the task of one run may go during the next. */
static long
count_but_tasks(const GValue *list)
{
	unsigned i, n = gst_value_list_get_size(list);
	long count = 0;

	for (i = 0; i < n; i++) {
		const GstStructure *st = gst_value_get_structure(gst_value_list_get_value(list, i));
		const char *type = st != NULL ? gst_structure_get_string(st, "type-name") : NULL;

		ck_assert_ptr_nonnull(type);
		if (strcmp(type, "GstTask") != 0)
			count++;
	}
	return count;
}

/* Objects created minus objects freed since tracking started, from the leaks
 * tracer's record of type names and addresses (get-live-objects would hand out
 * references to the objects themselves, the registry's included). */
static long
objects_balance(GstTracer *leaks)
{
	GstStructure *cp = NULL;
	const GValue *created, *removed;
	long n;

	g_signal_emit_by_name(leaks, "activity-get-checkpoint", &cp);
	ck_assert_ptr_nonnull(cp);
	created = gst_structure_get_value(cp, "objects-created-list");
	removed = gst_structure_get_value(cp, "objects-removed-list");
	ck_assert_ptr_nonnull(created);
	ck_assert_ptr_nonnull(removed);
	n = count_but_tasks(created) - count_but_tasks(removed);
	gst_structure_free(cp);
	return n;
}

/* LeakSanitizer does not see GStreamer's objects (tests/lsan.supp suppresses
 * libgstreamer's allocations), so GStreamer's leaks tracer counts them: after
 * a first round (plugins, type-find factories and caches load once), more
 * pictures and more decoder refusals leave no object alive. A pipeline kept
 * by one reference too many would show here with its elements, pads and
 * messages. First in the suite so that CK_FORK=no still starts GStreamer here. */
START_TEST(test_no_object_left)
{
	struct blob lying = drop_idr(&seg0, true), noise = noise_samples(&seg0);
	GstTracer *leaks = NULL;
	GList *tracers, *l;
	int round;

	ck_assert_int_eq(setenv("GST_TRACERS", "leaks", 1), 0);
	ck_assert(gst_init_check(NULL, NULL, NULL));
	tracers = gst_tracing_get_active_tracers();
	for (l = tracers; l != NULL; l = l->next)
		if (strcmp(G_OBJECT_TYPE_NAME(l->data), "GstLeaksTracer") == 0)
			leaks = l->data;
	ck_assert_msg(leaks != NULL, "GStreamer's leaks tracer is not active");
	for (round = 0; round < 3; round++) {
		if (round == 1)
			g_signal_emit_by_name(leaks, "activity-start-tracking");
		expect_picture(&seg0);
		refuse(init_mp4.data, init_mp4.len, lying.data, lying.len, -EBADMSG);
		refuse(init_mp4.data, init_mp4.len, noise.data, noise.len, -EBADMSG);
	}
	ck_assert_int_eq(objects_balance(leaks), 0);
	g_signal_emit_by_name(leaks, "activity-stop-tracking");
	g_list_free_full(tracers, gst_object_unref);
	free(lying.data);
	free(noise.data);
}
END_TEST

static Suite *
snapshot_suite(void)
{
	Suite *s = suite_create("snapshot");
	struct {
		const char *name;
		const TTest *fn;
	} cases[] = {
		{ "no_object_left", test_no_object_left },
		{ "fixture_picture", test_fixture_picture },
		{ "scaled", test_scaled },
		{ "arguments", test_arguments },
		{ "empty", test_empty },
		{ "garbage", test_garbage },
		{ "garbage_samples", test_garbage_samples },
		{ "too_wide", test_too_wide },
		{ "truncated", test_truncated },
		{ "no_keyframe", test_no_keyframe },
		{ "no_keyframe_lying", test_no_keyframe_lying },
		{ "repeat", test_repeat },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);

		tcase_add_checked_fixture(tc, setup, teardown);
		tcase_add_test(tc, cases[i].fn);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(snapshot_suite());
	int failed;

	/* snapshot_jpeg says why it refused at debug level: shown with failures. */
	log_open("test_snapshot");
	log_set_level(LOG_LVL_DEBUG);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
