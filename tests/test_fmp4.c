/* test_fmp4: the fMP4 parser on real encoder output (tests/data/fmp4, made by
 * make.sh there), on hand-built boxes covering defaults and keyframe flags, and
 * on hostile input: truncation at every length, bad and 64-bit sizes, missing
 * boxes, deep nesting, overflowing sample counts, short mdats, mutations. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "fmp4.h"

#define ERR_LEN 256

/* --- fixtures ------------------------------------------------------------ */

/* What make.sh's encoder settings give; see the comment there. */
static struct fmp4_init
fixture_init(void)
{
	struct blob b = fixture_load("init.mp4");
	struct fmp4_init init;
	char err[ERR_LEN] = "";

	ck_assert_msg(fmp4_parse_init(b.data, b.len, &init, err, sizeof(err)) == 0, "%s", err);
	free(b.data);
	return init;
}

/* The parsers get an exact-size heap copy, so that ASan sees any overread. */
static int
parse_init(const void *buf, size_t len, struct fmp4_init *ret, char *err)
{
	void *copy = malloc(len > 0 ? len : 1);
	int r;

	ck_assert_ptr_nonnull(copy);
	if (len > 0)
		memcpy(copy, buf, len);
	r = fmp4_parse_init(copy, len, ret, err, ERR_LEN);
	free(copy);
	return r;
}

static int
parse_seg(const void *buf, size_t len, const struct fmp4_init *init, struct fmp4_seg *ret,
	  char *err)
{
	void *copy = malloc(len > 0 ? len : 1);
	int r;

	ck_assert_ptr_nonnull(copy);
	if (len > 0)
		memcpy(copy, buf, len);
	r = fmp4_parse_segment(copy, len, init, ret, err, ERR_LEN);
	free(copy);
	return r;
}

static void
check_err(const char *err, const char *want)
{
	ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
	ck_assert_ptr_null(strchr(err, '\n'));
}

static void
refuse_init(const void *buf, size_t len, const char *want)
{
	struct fmp4_init init, before;
	char err[ERR_LEN] = "";

	memset(&init, 0xa5, sizeof(init));
	before = init;
	ck_assert_int_eq(parse_init(buf, len, &init, err), -EBADMSG);
	ck_assert(memcmp(&init, &before, sizeof(init)) == 0);
	check_err(err, want);
}

static void
refuse_seg(const void *buf, size_t len, const struct fmp4_init *init, const char *want)
{
	struct fmp4_seg seg, before;
	char err[ERR_LEN] = "";

	memset(&seg, 0xa5, sizeof(seg));
	before = seg;
	ck_assert_int_eq(parse_seg(buf, len, init, &seg, err), -EBADMSG);
	ck_assert(memcmp(&seg, &before, sizeof(seg)) == 0);
	check_err(err, want);
}

/* --- a box builder ------------------------------------------------------- */

struct bb {
	uint8_t *buf;
	size_t len, cap;
	size_t open[16];
	bool large[16];
	int depth;
};

static void
bb_bytes(struct bb *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->buf = realloc(b->buf, b->cap);
		ck_assert_ptr_nonnull(b->buf);
	}
	if (p != NULL)
		memcpy(b->buf + b->len, p, n);
	else
		memset(b->buf + b->len, 0, n);
	b->len += n;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static void
bb_u16(struct bb *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	bb_bytes(b, p, 2);
}

static void
bb_u32(struct bb *b, uint32_t v)
{
	uint8_t p[4];

	put32(p, v);
	bb_bytes(b, p, 4);
}

static void
bb_u64(struct bb *b, uint64_t v)
{
	uint8_t p[8];

	put64(p, v);
	bb_bytes(b, p, 8);
}

static void
bb_zero(struct bb *b, size_t n)
{
	bb_bytes(b, NULL, n);
}

/* Opens a box, its size written by bb_close(); large: a 64-bit size. */
static void
bb_open_ex(struct bb *b, const char *type, bool large)
{
	ck_assert_int_lt(b->depth, 16);
	b->large[b->depth] = large;
	b->open[b->depth++] = b->len;
	bb_u32(b, large ? 1 : 0);
	bb_bytes(b, type, 4);
	if (large)
		bb_u64(b, 0);
}

static void
bb_open(struct bb *b, const char *type)
{
	bb_open_ex(b, type, false);
}

static void
bb_full(struct bb *b, const char *type, uint8_t version, uint32_t flags)
{
	bb_open(b, type);
	bb_u32(b, (uint32_t)version << 24 | flags);
}

static void
bb_close(struct bb *b)
{
	size_t start;

	ck_assert_int_gt(b->depth, 0);
	b->depth--;
	start = b->open[b->depth];
	if (b->large[b->depth])
		put64(b->buf + start + 8, b->len - start);
	else
		put32(b->buf + start, (uint32_t)(b->len - start));
}

/* The offset of the first box of that type (its size field), by search. */
static size_t
bb_find(const struct bb *b, const char *type)
{
	for (size_t i = 4; i + 4 <= b->len; i++)
		if (memcmp(b->buf + i, type, 4) == 0)
			return i - 4;
	ck_abort_msg("no %s", type);
	return 0;
}

/* --- hand-built init segments -------------------------------------------- */

struct init_opts {
	const char *handler, *entry;
	bool tkhd, avcc, mvex, trex, audio_first;
	uint32_t track_id, timescale;
	uint16_t width, height;
	uint32_t trex_dur, trex_size, trex_flags;
};

static const struct init_opts init_opts0 = {
	.handler = "vide",
	.entry = "avc1",
	.tkhd = true,
	.avcc = true,
	.mvex = true,
	.trex = true,
	.track_id = 1,
	.timescale = 90000,
	.width = 640,
	.height = 480,
};

static void
build_trak(struct bb *b, const struct init_opts *o, uint32_t track_id, const char *handler,
	   const char *entry)
{
	bb_open(b, "trak");
	if (o->tkhd) {
		bb_full(b, "tkhd", 0, 7);
		bb_zero(b, 8);
		bb_u32(b, track_id);
		bb_zero(b, 8 + 16 + 36);
		bb_u32(b, (uint32_t)o->width << 16);
		bb_u32(b, (uint32_t)o->height << 16);
		bb_close(b);
	}
	bb_open(b, "mdia");
	bb_full(b, "mdhd", 0, 0);
	bb_zero(b, 8);
	bb_u32(b, o->timescale);
	bb_zero(b, 8);
	bb_close(b);
	bb_full(b, "hdlr", 0, 0);
	bb_u32(b, 0);
	bb_bytes(b, handler, 4);
	bb_zero(b, 12);
	bb_bytes(b, "Handler", 8);
	bb_close(b);
	bb_open(b, "minf");
	bb_open(b, "stbl");
	bb_full(b, "stsd", 0, 0);
	bb_u32(b, 1);
	bb_open(b, entry);
	bb_zero(b, 6);
	bb_u16(b, 1);
	bb_zero(b, 16);
	bb_u16(b, o->width);
	bb_u16(b, o->height);
	bb_u32(b, 0x480000);
	bb_u32(b, 0x480000);
	bb_u32(b, 0);
	bb_u16(b, 1);
	bb_zero(b, 32);
	bb_u16(b, 0x18);
	bb_u16(b, 0xffff);
	if (o->avcc) {
		static const uint8_t avcc[] = { 1, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0 };

		bb_open(b, "avcC");
		bb_bytes(b, avcc, sizeof(avcc));
		bb_close(b);
	}
	bb_close(b); /* entry */
	bb_close(b); /* stsd */
	bb_close(b); /* stbl */
	bb_close(b); /* minf */
	bb_close(b); /* mdia */
	bb_close(b); /* trak */
}

static void
build_init(struct bb *b, const struct init_opts *o)
{
	bb_open(b, "ftyp");
	bb_bytes(b, "iso6", 4);
	bb_u32(b, 0);
	bb_bytes(b, "iso6mp41", 8);
	bb_close(b);
	bb_open(b, "moov");
	bb_full(b, "mvhd", 0, 0);
	bb_zero(b, 96);
	bb_close(b);
	if (o->audio_first)
		build_trak(b, o, 2, "soun", "mp4a");
	build_trak(b, o, o->track_id, o->handler, o->entry);
	if (o->mvex) {
		bb_open(b, "mvex");
		if (o->trex) {
			bb_full(b, "trex", 0, 0);
			bb_u32(b, o->track_id);
			bb_u32(b, 1);
			bb_u32(b, o->trex_dur);
			bb_u32(b, o->trex_size);
			bb_u32(b, o->trex_flags);
			bb_close(b);
		}
		bb_close(b);
	}
	bb_close(b); /* moov */
}

/* --- hand-built moof+mdat pairs ------------------------------------------ */

struct sample {
	uint32_t dur, size, flags;
};

#define SYNC    0x02000000u /* depends on no other sample */
#define NONSYNC 0x01010000u /* depends on others, non-sync */

static const struct sample samples0[] = { { 3000, 100, SYNC },
					  { 3000, 50, NONSYNC },
					  { 3000, 60, NONSYNC } };

struct seg_opts {
	uint32_t track_id, tfhd_flags;
	uint32_t def_dur, def_size, def_flags; /* written when tfhd_flags say so */
	int tfdt_version;                      /* -1: no tfdt */
	uint64_t decode_time;
	uint32_t trun_flags, count, first_flags;
	const struct sample *samples; /* NULL: no per-sample entries */
	int64_t offset_adjust;        /* added to the right data_offset */
	int64_t mdat_adjust;          /* added to the payload length */
	bool mdat_large;
};

static const struct seg_opts seg_opts0 = {
	.track_id = 1,
	.tfhd_flags = 0x20000,
	.tfdt_version = 1,
	.decode_time = 90000,
	.trun_flags = 0x701,
	.count = 3,
	.samples = samples0,
};

/* The init struct the hand-built segments belong to. */
static const struct fmp4_init init0 = {
	.codec = "avc1.64001f",
	.width = 640,
	.height = 480,
	.timescale = 90000,
	.track_id = 1,
};

static void
add_pair(struct bb *b, const struct seg_opts *o)
{
	size_t moof = b->len, off_pos = 0;
	uint64_t data = 0;

	bb_open(b, "moof");
	bb_full(b, "mfhd", 0, 0);
	bb_u32(b, 1);
	bb_close(b);
	bb_open(b, "traf");
	bb_full(b, "tfhd", 0, o->tfhd_flags);
	bb_u32(b, o->track_id);
	if (o->tfhd_flags & 0x1)
		bb_u64(b, 0);
	if (o->tfhd_flags & 0x2)
		bb_u32(b, 1);
	if (o->tfhd_flags & 0x8)
		bb_u32(b, o->def_dur);
	if (o->tfhd_flags & 0x10)
		bb_u32(b, o->def_size);
	if (o->tfhd_flags & 0x20)
		bb_u32(b, o->def_flags);
	bb_close(b);
	if (o->tfdt_version >= 0) {
		bb_full(b, "tfdt", (uint8_t)o->tfdt_version, 0);
		if (o->tfdt_version == 1)
			bb_u64(b, o->decode_time);
		else
			bb_u32(b, (uint32_t)o->decode_time);
		bb_close(b);
	}
	bb_full(b, "trun", 0, o->trun_flags);
	bb_u32(b, o->count);
	if (o->trun_flags & 0x1) {
		off_pos = b->len;
		bb_u32(b, 0);
	}
	if (o->trun_flags & 0x4)
		bb_u32(b, o->first_flags);
	for (uint32_t i = 0; o->samples != NULL && i < o->count; i++) {
		if (o->trun_flags & 0x100)
			bb_u32(b, o->samples[i].dur);
		if (o->trun_flags & 0x200)
			bb_u32(b, o->samples[i].size);
		if (o->trun_flags & 0x400)
			bb_u32(b, o->samples[i].flags);
		if (o->trun_flags & 0x800)
			bb_u32(b, 0);
		data += o->samples[i].size;
	}
	if (!(o->trun_flags & 0x200))
		data = (uint64_t)o->count * (o->tfhd_flags & 0x10 ? o->def_size : 0);
	bb_close(b); /* trun */
	bb_close(b); /* traf */
	bb_close(b); /* moof */
	if (off_pos != 0)
		put32(b->buf + off_pos, (uint32_t)((int64_t)(b->len - moof) +
						   (o->mdat_large ? 16 : 8) + o->offset_adjust));
	bb_open_ex(b, "mdat", o->mdat_large);
	bb_zero(b, (size_t)((int64_t)data + o->mdat_adjust));
	bb_close(b);
}

static struct bb
seg_of(const struct seg_opts *o)
{
	struct bb b = { 0 };

	add_pair(&b, o);
	return b;
}

/* --- real encoder output ------------------------------------------------- */

START_TEST(test_init_fixture)
{
	struct fmp4_init init = fixture_init();

	ck_assert_str_eq(init.codec, "avc1.64000b");
	ck_assert_uint_eq(init.width, 160);
	ck_assert_uint_eq(init.height, 120);
	ck_assert_uint_eq(init.timescale, 3000);
	ck_assert_uint_eq(init.track_id, 1);
	ck_assert_uint_eq(init.default_sample_duration, 0);
	ck_assert_uint_eq(init.default_sample_size, 0);
	ck_assert_uint_eq(init.default_sample_flags, 0);
}
END_TEST

START_TEST(test_segment_fixture)
{
	struct fmp4_init init = fixture_init();
	struct blob s0 = fixture_load("seg0.m4s"), s1 = fixture_load("seg1.m4s");
	struct fmp4_seg seg;
	char err[ERR_LEN] = "";
	uint8_t *both = malloc(s0.len + s1.len);

	ck_assert_msg(parse_seg(s0.data, s0.len, &init, &seg, err) == 0, "%s", err);
	ck_assert_uint_eq(seg.n_fragments, 1);
	ck_assert_uint_eq(seg.n_samples, 30);
	ck_assert(seg.has_decode_time);
	ck_assert_uint_eq(seg.decode_time, 0);
	ck_assert_uint_eq(seg.duration, 3000);
	ck_assert_uint_eq(seg.duration_ms, 1000);
	ck_assert(seg.keyframe);

	ck_assert_msg(parse_seg(s1.data, s1.len, &init, &seg, err) == 0, "%s", err);
	ck_assert_uint_eq(seg.n_samples, 30);
	ck_assert_uint_eq(seg.decode_time, 3000);
	ck_assert_uint_eq(seg.duration_ms, 1000);
	ck_assert(seg.keyframe);

	/* Both pairs in one segment. */
	ck_assert_ptr_nonnull(both);
	memcpy(both, s0.data, s0.len);
	memcpy(both + s0.len, s1.data, s1.len);
	ck_assert_msg(parse_seg(both, s0.len + s1.len, &init, &seg, err) == 0, "%s", err);
	ck_assert_uint_eq(seg.n_fragments, 2);
	ck_assert_uint_eq(seg.n_samples, 60);
	ck_assert_uint_eq(seg.decode_time, 0);
	ck_assert_uint_eq(seg.duration_ms, 2000);
	ck_assert(seg.keyframe);

	/* The init is not a segment, a segment is not an init. */
	{
		struct blob i = fixture_load("init.mp4");

		refuse_seg(i.data, i.len, &init, "ftyp: unexpected top-level box in a segment");
		free(i.data);
	}
	refuse_init(s0.data, s0.len, "moof: expected ftyp first");
	free(both);
	free(s0.data);
	free(s1.data);
}
END_TEST

/* The first tfdt value of the video track in a segment. */
static uint64_t
first_tfdt(const void *buf, size_t len, const struct fmp4_init *init)
{
	struct fmp4_seg seg;
	char err[ERR_LEN] = "";

	ck_assert_msg(parse_seg(buf, len, init, &seg, err) == 0, "%s", err);
	ck_assert(seg.has_decode_time);
	return seg.decode_time;
}

static uint8_t *
remap(const void *buf, size_t len, const struct fmp4_remap *m, size_t *ret_len)
{
	ssize_t n = fmp4_remap(buf, len, m, NULL, 0), w;
	uint8_t *out;

	ck_assert_int_gt(n, 0);
	out = malloc((size_t)n);
	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(fmp4_remap(buf, len, m, out, (size_t)n - 1), -ENOBUFS);
	w = fmp4_remap(buf, len, m, out, (size_t)n);
	ck_assert_int_eq(w, n);
	*ret_len = (size_t)n;
	return out;
}

/* An export of a later part starts at 0: only the tfdt values move. */
START_TEST(test_remap_rebase)
{
	struct fmp4_init init = fixture_init();
	struct blob s0 = fixture_load("seg0.m4s"), s1 = fixture_load("seg1.m4s");
	struct fmp4_remap m = { .own = &init, .export = &init, .rebase = 3000 };
	struct fmp4_seg a, b;
	char err[ERR_LEN] = "";
	uint8_t *out, *both = malloc(s0.len + s1.len);
	size_t n, diff = 0;

	ck_assert_ptr_nonnull(both);
	ck_assert_uint_eq(first_tfdt(s1.data, s1.len, &init), 3000);
	out = remap(s1.data, s1.len, &m, &n);
	ck_assert_uint_eq(n, s1.len);
	ck_assert_uint_eq(first_tfdt(out, n, &init), 0);
	ck_assert_msg(parse_seg(s1.data, s1.len, &init, &a, err) == 0, "%s", err);
	ck_assert_msg(parse_seg(out, n, &init, &b, err) == 0, "%s", err);
	ck_assert_uint_eq(a.duration, b.duration);
	ck_assert_uint_eq(a.n_samples, b.n_samples);
	for (size_t i = 0; i < n; i++)
		diff += ((uint8_t *)s1.data)[i] != out[i];
	ck_assert_uint_le(diff, 2); /* 3000 = 0x0bb8: two bytes of the tfdt */
	free(out);
	/* below the base: 0, never a wrap */
	m.rebase = 5000;
	out = remap(s1.data, s1.len, &m, &n);
	ck_assert_uint_eq(first_tfdt(out, n, &init), 0);
	free(out);
	/* two pairs: both tfdts move */
	memcpy(both, s0.data, s0.len);
	memcpy(both + s0.len, s1.data, s1.len);
	m.rebase = 1000;
	out = remap(both, s0.len + s1.len, &m, &n);
	ck_assert_uint_eq(first_tfdt(out + s0.len, s1.len, &init), 2000);
	free(out);
	/* what does not parse is not remapped */
	ck_assert_int_eq(fmp4_remap(both, s0.len - 1, &m, NULL, 0), -EBADMSG);
	free(both);
	free(s0.data);
	free(s1.data);
}
END_TEST

/* A segment of a later init names its sample entry; its defaults travel. */
START_TEST(test_remap_sample_desc)
{
	struct fmp4_init init = fixture_init(), own = init;
	struct blob s1 = fixture_load("seg1.m4s");
	struct fmp4_remap m = { .own = &own, .export = &init, .sample_desc = 2 };
	struct fmp4_seg a, b;
	char err[ERR_LEN] = "";
	size_t n, mdat;
	uint8_t *out;

	ck_assert_msg(parse_seg(s1.data, s1.len, &init, &a, err) == 0, "%s", err);
	out = remap(s1.data, s1.len, &m, &n);
	ck_assert_uint_eq(n, s1.len + 4); /* one traf: the index */
	ck_assert_msg(parse_seg(out, n, &init, &b, err) == 0, "%s", err);
	ck_assert_uint_eq(a.n_samples, b.n_samples);
	ck_assert_uint_eq(a.duration, b.duration);
	ck_assert_uint_eq(a.keyframe, b.keyframe);
	/* the mdat, last, is byte for byte the same */
	mdat = 0;
	while (mdat + 8 <= s1.len && memcmp((uint8_t *)s1.data + mdat + 4, "mdat", 4) != 0)
		mdat += ((uint8_t *)s1.data)[mdat] << 24 | ((uint8_t *)s1.data)[mdat + 1] << 16 |
			((uint8_t *)s1.data)[mdat + 2] << 8 | ((uint8_t *)s1.data)[mdat + 3];
	ck_assert_uint_lt(mdat, s1.len);
	ck_assert(memcmp(out + mdat + 4, (uint8_t *)s1.data + mdat, s1.len - mdat) == 0);
	free(out);
	/* trex defaults of the own init that differ from the export's go into
	 * the tfhd: parsed against the export's init, the samples stay */
	own.default_sample_duration = init.default_sample_duration + 7;
	own.default_sample_size = init.default_sample_size + 9;
	own.default_sample_flags = init.default_sample_flags ^ 0x10000;
	ck_assert_msg(parse_seg(s1.data, s1.len, &own, &a, err) == 0, "%s", err);
	out = remap(s1.data, s1.len, &m, &n);
	ck_assert_uint_eq(n, s1.len + 16);
	ck_assert_msg(parse_seg(out, n, &init, &b, err) == 0, "%s", err);
	ck_assert_uint_eq(a.duration, b.duration);
	ck_assert_uint_eq(a.keyframe, b.keyframe);
	free(out);
	/* another track id: the export's */
	own = init;
	own.track_id = init.track_id + 1;
	ck_assert_int_eq(fmp4_remap(s1.data, s1.len, &m, NULL, 0), -EBADMSG);
	free(s1.data);
}
END_TEST

/* Built boxes: two trafs, a sidx before the pair, 64-bit sizes. */
START_TEST(test_remap_built)
{
	struct fmp4_init init = fixture_init();
	struct fmp4_remap m = { .own = &init, .export = &init, .sample_desc = 3, .rebase = 10 };
	struct blob s0 = fixture_load("seg0.m4s");
	struct fmp4_seg a, b;
	char err[ERR_LEN] = "";
	uint8_t sidx[32] = { 0, 0, 0, 32, 's', 'i', 'd', 'x' };
	uint8_t *in = malloc(sizeof(sidx) + s0.len), *out;
	size_t n;

	ck_assert_ptr_nonnull(in);
	memcpy(in, sidx, sizeof(sidx));
	memcpy(in + sizeof(sidx), s0.data, s0.len);
	ck_assert_msg(parse_seg(in, sizeof(sidx) + s0.len, &init, &a, err) == 0, "%s", err);
	out = remap(in, sizeof(sidx) + s0.len, &m, &n);
	ck_assert_uint_eq(n, sizeof(sidx) + s0.len + 4);
	ck_assert(memcmp(out + 4, "free", 4) == 0); /* its sizes no longer hold */
	ck_assert_msg(parse_seg(out, n, &init, &b, err) == 0, "%s", err);
	ck_assert_uint_eq(a.n_samples, b.n_samples);
	free(out);
	/* nothing grows: the sidx stays */
	m.sample_desc = 0;
	out = remap(in, sizeof(sidx) + s0.len, &m, &n);
	ck_assert_uint_eq(n, sizeof(sidx) + s0.len);
	ck_assert(memcmp(out + 4, "sidx", 4) == 0);
	free(out);
	free(in);
	free(s0.data);
}
END_TEST

/* Two inits into one: the second's sample entry appended to the first's stsd. */
START_TEST(test_merge_inits)
{
	struct fmp4_init init = fixture_init(), merged, other;
	struct blob i0 = fixture_load("init.mp4");
	struct fmp4_src v[3] = { { i0.data, i0.len, &init },
				 { i0.data, i0.len, &init },
				 { i0.data, i0.len, &init } };
	char err[ERR_LEN] = "";
	ssize_t n = fmp4_merge_inits(v, 3, NULL, 0);
	uint8_t *out;

	ck_assert_int_eq(n, (ssize_t)(i0.len + 2 * init.entry_len));
	out = malloc((size_t)n);
	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(fmp4_merge_inits(v, 3, out, (size_t)n - 1), -ENOBUFS);
	ck_assert_int_eq(fmp4_merge_inits(v, 3, out, (size_t)n), n);
	ck_assert_msg(parse_init(out, (size_t)n, &merged, err) == 0, "%s", err);
	ck_assert_uint_eq(merged.entries, 3);
	ck_assert_str_eq(merged.codec, init.codec);
	ck_assert_uint_eq(merged.timescale, init.timescale);
	ck_assert_uint_eq(merged.track_id, init.track_id);
	ck_assert_uint_eq(merged.entry_len, init.entry_len);
	/* entries 2 and 3 are the first's bytes */
	ck_assert(memcmp(out + merged.entry_off + init.entry_len,
			 (uint8_t *)i0.data + init.entry_off, init.entry_len) == 0);
	ck_assert(memcmp(out + merged.entry_off + 2 * init.entry_len,
			 (uint8_t *)i0.data + init.entry_off, init.entry_len) == 0);
	/* one source: the init as it is */
	ck_assert_int_eq(fmp4_merge_inits(v, 1, out, (size_t)n), (ssize_t)i0.len);
	ck_assert(memcmp(out, i0.data, i0.len) == 0);
	/* another timescale cannot share the track */
	other = init;
	other.timescale++;
	v[1].init = &other;
	ck_assert_int_eq(fmp4_merge_inits(v, 2, NULL, 0), -EDOM);
	free(out);
	free(i0.data);
}
END_TEST

/* seg0 with its first sample's flags made non-sync: not a join point. */
START_TEST(test_fixture_non_sync)
{
	struct fmp4_init init = fixture_init();
	struct blob s0 = fixture_load("seg0.m4s");
	struct fmp4_seg seg;
	char err[ERR_LEN] = "";
	uint8_t *trun = memmem(s0.data, s0.len, "trun", 4);
	uint8_t *flags;

	ck_assert_ptr_nonnull(trun);
	/* type, version+flags, sample_count, data_offset, then duration, size, flags */
	ck_assert_uint_eq(trun[6], 0x07);
	flags = trun + 4 + 4 + 4 + 4 + 4 + 4;
	ck_assert_uint_eq(flags[1], 0x00);
	put32(flags, 0x000100c0);
	ck_assert_msg(parse_seg(s0.data, s0.len, &init, &seg, err) == 0, "%s", err);
	ck_assert(!seg.keyframe);
	ck_assert_uint_eq(seg.n_samples, 30);
	free(s0.data);
}
END_TEST

/* --- hand-built input ---------------------------------------------------- */

START_TEST(test_init_built)
{
	struct init_opts o = init_opts0;
	struct fmp4_init init;
	struct bb b = { 0 };
	char err[ERR_LEN] = "";

	o.audio_first = true;
	o.entry = "avc3";
	o.trex_dur = 3000;
	o.trex_size = 77;
	o.trex_flags = NONSYNC;
	build_init(&b, &o);
	ck_assert_msg(parse_init(b.buf, b.len, &init, err) == 0, "%s", err);
	ck_assert_str_eq(init.codec, "avc3.64001f");
	ck_assert_uint_eq(init.width, 640);
	ck_assert_uint_eq(init.height, 480);
	ck_assert_uint_eq(init.timescale, 90000);
	ck_assert_uint_eq(init.track_id, 1);
	ck_assert_uint_eq(init.default_sample_duration, 3000);
	ck_assert_uint_eq(init.default_sample_size, 77);
	ck_assert_uint_eq(init.default_sample_flags, NONSYNC);
	free(b.buf);
}
END_TEST

START_TEST(test_keyframe_flags)
{
	struct seg_opts o = seg_opts0;
	struct sample s[3];
	struct fmp4_seg seg;
	struct bb b;
	char err[ERR_LEN] = "";

	b = seg_of(&o);
	ck_assert_msg(parse_seg(b.buf, b.len, &init0, &seg, err) == 0, "%s", err);
	ck_assert(seg.keyframe);
	ck_assert_uint_eq(seg.n_samples, 3);
	ck_assert_uint_eq(seg.duration, 9000);
	ck_assert_uint_eq(seg.duration_ms, 100);
	ck_assert_uint_eq(seg.decode_time, 90000);
	free(b.buf);

	/* A first sample that depends on others is no join point, sync or not. */
	memcpy(s, samples0, sizeof(s));
	s[0].flags = 0x01000000;
	o.samples = s;
	b = seg_of(&o);
	ck_assert_int_eq(parse_seg(b.buf, b.len, &init0, &seg, err), 0);
	ck_assert(!seg.keyframe);
	free(b.buf);

	/* first_sample_flags, the rest from the tfhd default. */
	o = seg_opts0;
	o.trun_flags = 0x305;
	o.tfhd_flags |= 0x20;
	o.def_flags = NONSYNC;
	o.first_flags = SYNC;
	b = seg_of(&o);
	ck_assert_int_eq(parse_seg(b.buf, b.len, &init0, &seg, err), 0);
	ck_assert(seg.keyframe);
	free(b.buf);
	o.first_flags = 0x00010000;
	b = seg_of(&o);
	ck_assert_int_eq(parse_seg(b.buf, b.len, &init0, &seg, err), 0);
	ck_assert(!seg.keyframe);
	free(b.buf);
}
END_TEST

START_TEST(test_defaults)
{
	struct fmp4_init init = init0;
	struct seg_opts o = seg_opts0;
	struct fmp4_seg seg;
	struct bb b;
	char err[ERR_LEN] = "";

	/* tfhd defaults: no per-sample field at all. */
	o.trun_flags = 0x001;
	o.samples = NULL;
	o.count = 45;
	o.tfhd_flags = 0x20038;
	o.def_dur = 2000;
	o.def_size = 10;
	o.def_flags = SYNC;
	o.tfdt_version = 0;
	o.decode_time = 123;
	b = seg_of(&o);
	ck_assert_msg(parse_seg(b.buf, b.len, &init, &seg, err) == 0, "%s", err);
	ck_assert_uint_eq(seg.n_samples, 45);
	ck_assert_uint_eq(seg.duration, 90000);
	ck_assert_uint_eq(seg.duration_ms, 1000);
	ck_assert_uint_eq(seg.decode_time, 123);
	ck_assert(seg.keyframe);
	free(b.buf);

	/* trex defaults, no tfdt, data right after the moof (no data_offset). */
	o.tfhd_flags = 0;
	o.trun_flags = 0;
	o.tfdt_version = -1;
	init.default_sample_duration = 1001;
	init.default_sample_size = 0;
	init.default_sample_flags = NONSYNC;
	b = seg_of(&o);
	ck_assert_msg(parse_seg(b.buf, b.len, &init, &seg, err) == 0, "%s", err);
	ck_assert_uint_eq(seg.duration, 45 * 1001);
	ck_assert_uint_eq(seg.duration_ms, 501); /* 500.5 rounds up */
	ck_assert(!seg.has_decode_time);
	ck_assert(!seg.keyframe);
	free(b.buf);

	/* Without data_offset the data starts at the moof: only empty samples fit. */
	init.default_sample_size = 1;
	b = seg_of(&o);
	refuse_seg(b.buf, b.len, &init, "before the mdat payload");
	free(b.buf);
}
END_TEST

START_TEST(test_segment_layout)
{
	struct seg_opts o = seg_opts0;
	struct fmp4_seg seg;
	struct bb b = { 0 }, pair = seg_of(&o);
	char err[ERR_LEN] = "";
	size_t traf;

	/* styp, sidx, free before a pair; size 0 on the last mdat. */
	bb_open(&b, "styp");
	bb_bytes(&b, "msdhmsdh", 8);
	bb_close(&b);
	bb_full(&b, "sidx", 1, 0);
	bb_zero(&b, 28);
	bb_close(&b);
	bb_bytes(&b, pair.buf, pair.len);
	bb_open(&b, "free");
	bb_close(&b);
	bb_bytes(&b, pair.buf, pair.len);
	put32(b.buf + b.len - pair.len + bb_find(&pair, "mdat"), 0);
	ck_assert_msg(parse_seg(b.buf, b.len, &init0, &seg, err) == 0, "%s", err);
	ck_assert_uint_eq(seg.n_fragments, 2);
	ck_assert_uint_eq(seg.n_samples, 6);
	free(b.buf);

	b = (struct bb){ 0 };
	bb_bytes(&b, pair.buf, pair.len);
	refuse_seg(b.buf, bb_find(&b, "mdat"), &init0, "moof: not followed by an mdat");
	refuse_seg("\0\0\0\x08mdat", 8, &init0, "mdat: no moof before it");
	refuse_seg(NULL, 0, &init0, "no moof+mdat pair");
	bb_open(&b, "moov");
	bb_close(&b);
	refuse_seg(b.buf, b.len, &init0, "moov: unexpected top-level box in a segment");
	free(b.buf);

	/* A traf of another track only. */
	o.track_id = 2;
	b = seg_of(&o);
	refuse_seg(b.buf, b.len, &init0, "moof: no traf for track 1");
	free(b.buf);

	/* base-data-offset is a file offset. */
	o = seg_opts0;
	o.tfhd_flags = 0x1;
	b = seg_of(&o);
	refuse_seg(b.buf, b.len, &init0, "moof/traf/tfhd: base-data-offset");
	free(b.buf);

	/* A traf of another track first: ours needs default-base-is-moof. */
	o = seg_opts0;
	for (int base_is_moof = 1; base_is_moof >= 0; base_is_moof--) {
		struct bb c = { 0 };
		size_t trun;

		o.tfhd_flags = base_is_moof ? 0x20000 : 0;
		b = seg_of(&o);
		traf = bb_find(&b, "traf");
		trun = bb_find(&b, "trun");
		bb_bytes(&c, b.buf, traf);
		bb_open(&c, "traf"); /* 24 bytes */
		bb_full(&c, "tfhd", 0, 0x20000);
		bb_u32(&c, 7);
		bb_close(&c);
		bb_close(&c);
		bb_bytes(&c, b.buf + traf, b.len - traf);
		put32(c.buf, (uint32_t)bb_find(&b, "mdat") + 24);
		put32(c.buf + trun + 24 + 16, (uint32_t)bb_find(&b, "mdat") + 24 + 8);
		if (base_is_moof)
			ck_assert_msg(parse_seg(c.buf, c.len, &init0, &seg, err) == 0, "%s", err);
		else
			refuse_seg(c.buf, c.len, &init0,
				   "moof/traf/tfhd: data follows a traf of another track");
		free(c.buf);
		free(b.buf);
	}

	/* Missing mfhd, tfhd; unsupported versions. */
	o = seg_opts0;
	b = seg_of(&o);
	memcpy(b.buf + bb_find(&b, "mfhd") + 4, "mfhX", 4);
	refuse_seg(b.buf, b.len, &init0, "moof: missing mfhd");
	free(b.buf);
	b = seg_of(&o);
	memcpy(b.buf + bb_find(&b, "tfhd") + 4, "tfhX", 4);
	refuse_seg(b.buf, b.len, &init0, "moof/traf: missing tfhd");
	free(b.buf);
	b = seg_of(&o);
	b.buf[bb_find(&b, "tfdt") + 8] = 2;
	refuse_seg(b.buf, b.len, &init0, "moof/traf/tfdt: unsupported version 2");
	free(b.buf);
	free(pair.buf);
}
END_TEST

/* Two trafs of the track without default-base-is-moof: the second one's data
 * follows the first one's (ISO/IEC 14496-12 8.8.7.1). */
START_TEST(test_traf_chain)
{
	for (int short_by = 0; short_by <= 1; short_by++) {
		struct fmp4_seg seg;
		struct bb b = { 0 };
		char err[ERR_LEN] = "";
		size_t off = 0;

		bb_open(&b, "moof");
		bb_full(&b, "mfhd", 0, 0);
		bb_u32(&b, 1);
		bb_close(&b);
		for (int t = 0; t < 2; t++) {
			bb_open(&b, "traf");
			bb_full(&b, "tfhd", 0, 0);
			bb_u32(&b, 1);
			bb_close(&b);
			bb_full(&b, "trun", 0, t == 0 ? 0x701 : 0x700);
			bb_u32(&b, 3);
			if (t == 0) {
				off = b.len;
				bb_u32(&b, 0);
			}
			for (int i = 0; i < 3; i++) {
				bb_u32(&b, samples0[i].dur);
				bb_u32(&b, samples0[i].size);
				bb_u32(&b, samples0[i].flags);
			}
			bb_close(&b);
			bb_close(&b);
		}
		bb_close(&b);
		put32(b.buf + off, (uint32_t)b.len + 8);
		bb_open(&b, "mdat");
		bb_zero(&b, 420 - (size_t)short_by);
		bb_close(&b);
		if (short_by == 0) {
			ck_assert_msg(parse_seg(b.buf, b.len, &init0, &seg, err) == 0, "%s", err);
			ck_assert_uint_eq(seg.n_samples, 6);
			ck_assert_uint_eq(seg.duration_ms, 200);
		} else {
			refuse_seg(b.buf, b.len, &init0, "3 samples of 210 bytes at moof+");
		}
		free(b.buf);
	}
}
END_TEST

/* --- hostile input ------------------------------------------------------- */

START_TEST(test_truncated)
{
	static const char *const names[] = { "init.mp4", "seg0.m4s", "seg1.m4s" };
	struct fmp4_init init = fixture_init();

	for (size_t f = 0; f < 3; f++) {
		struct blob b = fixture_load(names[f]);

		for (size_t n = 0; n < b.len; n++) {
			if (f == 0)
				refuse_init(b.data, n, "");
			else
				refuse_seg(b.data, n, &init, "");
		}
		free(b.data);
	}
	refuse_init(NULL, 0, "missing ftyp (empty buffer)");
	{
		/* NULL itself, and no err buffer */
		struct fmp4_init init2;
		struct fmp4_seg seg;

		ck_assert_int_eq(fmp4_parse_init(NULL, 0, &init2, NULL, 0), -EBADMSG);
		ck_assert_int_eq(fmp4_parse_segment(NULL, 0, &init, &seg, NULL, 0), -EBADMSG);
	}
	{
		struct blob b = fixture_load("init.mp4");

		refuse_init(b.data, 32, "missing moov");
		refuse_init(b.data, 37, "truncated box header (5 bytes left)");
		refuse_init(b.data, 100, "moov: box size 859 past the end of the buffer");
		free(b.data);
	}
}
END_TEST

START_TEST(test_box_sizes)
{
	struct bb b = { 0 };
	size_t moov, trak, mdat;
	struct seg_opts o = seg_opts0;
	struct fmp4_seg seg;
	char err[ERR_LEN] = "";

	build_init(&b, &init_opts0);
	moov = bb_find(&b, "moov");
	trak = bb_find(&b, "trak");

	put32(b.buf + moov, 0xffffffff);
	refuse_init(b.buf, b.len, "moov: box size 4294967295 past the end of the buffer");
	put32(b.buf + moov, (uint32_t)(b.len - moov));
	put32(b.buf + trak, (uint32_t)(b.len - trak + 1));
	refuse_init(b.buf, b.len, "moov/trak: box size 354 past the end of the parent box");
	put32(b.buf + trak, 0);
	refuse_init(b.buf, b.len, "moov/trak: box size 0 (to the end) inside a container");
	put32(b.buf + trak, 7);
	refuse_init(b.buf, b.len, "moov/trak: box size 7 below 8");
	put32(b.buf + moov, 2);
	refuse_init(b.buf, b.len, "moov: box size 2 below 8");
	put32(b.buf, 0);
	refuse_init(b.buf, b.len, "missing moov"); /* ftyp to the end: allowed, last */
	free(b.buf);

	/* 64-bit sizes: a valid largesize mdat, then broken ones. */
	o.mdat_large = true;
	b = seg_of(&o);
	mdat = bb_find(&b, "mdat");
	ck_assert_msg(parse_seg(b.buf, b.len, &init0, &seg, err) == 0, "%s", err);
	ck_assert_uint_eq(seg.n_samples, 3);
	put64(b.buf + mdat + 8, UINT64_MAX);
	refuse_seg(b.buf, b.len, &init0,
		   "mdat: box size 18446744073709551615 past the end of the buffer");
	put64(b.buf + mdat + 8, (uint64_t)1 << 63);
	refuse_seg(b.buf, b.len, &init0, "past the end of the buffer");
	put64(b.buf + mdat + 8, 15);
	refuse_seg(b.buf, b.len, &init0, "mdat: 64-bit box size 15 below 16");
	put64(b.buf + mdat + 8, b.len - mdat + 1);
	refuse_seg(b.buf, b.len, &init0, "past the end of the buffer");
	refuse_seg(b.buf, mdat + 12, &init0, "mdat: truncated 64-bit box size (12 bytes left)");
	/* A 64-bit moof, its children read against it. */
	put64(b.buf + mdat + 8, b.len - mdat);
	{
		struct bb c = { 0 };

		bb_u32(&c, 1);
		bb_bytes(&c, "moof", 4);
		bb_u64(&c, mdat + 8);
		bb_bytes(&c, b.buf + 8, b.len - 8);
		/* the data_offset is from the moof, now 8 bytes longer */
		put32(c.buf + bb_find(&c, "trun") + 16, (uint32_t)(mdat + 8 + 16));
		ck_assert_msg(parse_seg(c.buf, c.len, &init0, &seg, err) == 0, "%s", err);
		ck_assert_uint_eq(seg.n_samples, 3);
		put32(c.buf + bb_find(&c, "traf"), 0x1000);
		refuse_seg(c.buf, c.len, &init0,
			   "moof/traf: box size 4096 past the end of the parent box");
		free(c.buf);
	}
	free(b.buf);
}
END_TEST

START_TEST(test_missing_boxes)
{
	struct init_opts o = init_opts0;
	struct bb b = { 0 };

	o.avcc = false;
	build_init(&b, &o);
	refuse_init(b.buf, b.len, "moov/trak/mdia/minf/stbl/stsd/avc1: missing avcC");
	free(b.buf);

	o = init_opts0;
	o.handler = "soun";
	b = (struct bb){ 0 };
	build_init(&b, &o);
	refuse_init(b.buf, b.len, "moov: no H.264 video track");
	free(b.buf);

	o = init_opts0;
	o.entry = "hvc1";
	b = (struct bb){ 0 };
	build_init(&b, &o);
	refuse_init(b.buf, b.len, "moov: no H.264 video track (video in hvc1)");
	free(b.buf);

	o = init_opts0;
	o.mvex = false;
	b = (struct bb){ 0 };
	build_init(&b, &o);
	refuse_init(b.buf, b.len, "moov: missing mvex (not a fragmented MP4)");
	free(b.buf);

	o = init_opts0;
	o.trex = false;
	b = (struct bb){ 0 };
	build_init(&b, &o);
	refuse_init(b.buf, b.len, "moov/mvex: no trex for track 1");
	free(b.buf);

	o = init_opts0;
	o.tkhd = false;
	b = (struct bb){ 0 };
	build_init(&b, &o);
	refuse_init(b.buf, b.len, "moov/trak: missing tkhd");
	free(b.buf);

	o = init_opts0;
	o.width = 0;
	b = (struct bb){ 0 };
	build_init(&b, &o);
	refuse_init(b.buf, b.len, "moov/trak/tkhd: no picture size in avc1 or tkhd");
	free(b.buf);

	o = init_opts0;
	o.timescale = 0;
	b = (struct bb){ 0 };
	build_init(&b, &o);
	refuse_init(b.buf, b.len, "moov/trak/mdia/mdhd: timescale 0");
	free(b.buf);

	/* avcC of an unknown version; a second moov. */
	b = (struct bb){ 0 };
	build_init(&b, &init_opts0);
	b.buf[bb_find(&b, "avcC") + 8] = 2;
	refuse_init(b.buf, b.len, "stsd/avc1/avcC: configurationVersion 2, not 1");
	b.buf[bb_find(&b, "avcC") + 8] = 1;
	{
		size_t moov = bb_find(&b, "moov"), n = b.len - moov;

		bb_bytes(&b, NULL, n);
		memcpy(b.buf + moov + n, b.buf + moov, n);
		refuse_init(b.buf, b.len, "moov: second moov");
	}
	free(b.buf);

	/* No moov; moov first; media in an init. */
	b = (struct bb){ 0 };
	build_init(&b, &init_opts0);
	refuse_init(b.buf, bb_find(&b, "moov"), "missing moov");
	refuse_init(b.buf + bb_find(&b, "moov"), b.len - bb_find(&b, "moov"),
		    "moov: expected ftyp first");
	memcpy(b.buf + bb_find(&b, "mdia") + 4, "mdiX", 4);
	refuse_init(b.buf, b.len, "moov/trak: missing mdia");
	free(b.buf);
	b = (struct bb){ 0 };
	build_init(&b, &init_opts0);
	bb_open(&b, "mdat");
	bb_close(&b);
	refuse_init(b.buf, b.len, "mdat: media in an init segment");
	free(b.buf);
}
END_TEST

START_TEST(test_depth)
{
	struct bb b = { 0 };
	int traks;

	/* moov is level 1: seven traks inside stay within the limit, eight do not. */
	for (traks = 7; traks <= 8; traks++) {
		b = (struct bb){ 0 };
		bb_open(&b, "ftyp");
		bb_zero(&b, 8);
		bb_close(&b);
		bb_open(&b, "moov");
		for (int i = 0; i < traks; i++)
			bb_open(&b, "trak");
		while (b.depth > 0)
			bb_close(&b);
		if (traks == 7)
			refuse_init(b.buf, b.len, "moov/trak: missing mdia");
		else
			refuse_init(b.buf, b.len,
				    "moov/trak/trak/trak/trak/trak/trak/trak/trak: "
				    "nesting deeper than 8 boxes");
		free(b.buf);
	}

	/* In a segment too. */
	b = (struct bb){ 0 };
	bb_open(&b, "moof");
	for (int i = 0; i < 12; i++)
		bb_open(&b, "traf");
	while (b.depth > 0)
		bb_close(&b);
	refuse_seg(b.buf, b.len, &init0, "nesting deeper than 8 boxes");
	free(b.buf);
}
END_TEST

START_TEST(test_box_count)
{
	struct bb b = { 0 };
	struct fmp4_init init;
	char err[ERR_LEN] = "";

	build_init(&b, &init_opts0);
	for (int i = 0; i < FMP4_BOXES_MAX - 40; i++) {
		bb_open(&b, "free");
		bb_close(&b);
	}
	ck_assert_msg(parse_init(b.buf, b.len, &init, err) == 0, "%s", err);
	for (int i = 0; i < 40; i++) {
		bb_open(&b, "free");
		bb_close(&b);
	}
	refuse_init(b.buf, b.len, "free: more than 16384 boxes");
	free(b.buf);
}
END_TEST

START_TEST(test_trun_counts)
{
	struct seg_opts o = seg_opts0;
	struct bb b;

	/* A count the trun's bytes cannot hold. */
	o.samples = NULL;
	o.count = UINT32_MAX;
	b = seg_of(&o);
	refuse_seg(b.buf, b.len, &init0,
		   "moof/traf/trun: 4294967295 samples need 51539607540 bytes, 0 left");
	free(b.buf);
	o.count = 3;
	o.samples = samples0;
	b = seg_of(&o);
	put32(b.buf + bb_find(&b, "trun") + 12, 4);
	refuse_seg(b.buf, b.len, &init0, "4 samples need 48 bytes, 36 left");
	free(b.buf);

	/* No per-sample fields: counts bounded by FMP4_SAMPLES_MAX. */
	o = seg_opts0;
	o.trun_flags = 0x1;
	o.samples = NULL;
	o.count = UINT32_MAX;
	b = seg_of(&o);
	refuse_seg(b.buf, b.len, &init0, "4294967295 more samples: over 1000000 in the segment");
	free(b.buf);
	o.count = FMP4_SAMPLES_MAX / 2 + 1;
	b = (struct bb){ 0 };
	add_pair(&b, &o);
	add_pair(&b, &o);
	refuse_seg(b.buf, b.len, &init0, "500001 more samples: over 1000000");
	free(b.buf);

	/* Durations at the limit add up without overflow, and are refused as ms. */
	o.count = FMP4_SAMPLES_MAX;
	o.tfhd_flags |= 0x8;
	o.def_dur = UINT32_MAX;
	b = seg_of(&o);
	refuse_seg(b.buf, b.len, &init0, "ms out of range");
	free(b.buf);
}
END_TEST

START_TEST(test_mdat_short)
{
	struct seg_opts o = seg_opts0;
	struct bb b;
	struct fmp4_seg seg;
	char err[ERR_LEN] = "";

	o.mdat_adjust = -1;
	b = seg_of(&o);
	refuse_seg(b.buf, b.len, &init0, "moof/traf/trun: 3 samples of 210 bytes at moof+");
	refuse_seg(b.buf, b.len, &init0, "run past the end of the mdat");
	free(b.buf);

	/* A longer mdat is fine (padding). */
	o.mdat_adjust = 5;
	b = seg_of(&o);
	ck_assert_msg(parse_seg(b.buf, b.len, &init0, &seg, err) == 0, "%s", err);
	free(b.buf);
	o.offset_adjust = 6;
	b = seg_of(&o);
	refuse_seg(b.buf, b.len, &init0, "run past the end of the mdat");
	free(b.buf);

	/* data_offset into the moof, or negative. */
	o = seg_opts0;
	o.offset_adjust = -1;
	b = seg_of(&o);
	refuse_seg(b.buf, b.len, &init0, "before the mdat payload");
	free(b.buf);
	o.offset_adjust = -100000;
	b = seg_of(&o);
	refuse_seg(b.buf, b.len, &init0, "sample data at moof+-9");
	free(b.buf);

	/* Samples whose sizes add up past 4 GiB. */
	{
		struct sample big[3] = { { 1, UINT32_MAX, SYNC },
					 { 1, UINT32_MAX, 0 },
					 { 1, 2, 0 } };

		o = seg_opts0;
		o.samples = big;
		o.mdat_adjust = -(int64_t)UINT32_MAX * 2;
		b = seg_of(&o);
		refuse_seg(b.buf, b.len, &init0, "3 samples of 8589934592 bytes");
		free(b.buf);
	}
}
END_TEST

/* Deterministic "random" numbers, so that a failure can be replayed. */
static uint64_t
xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

#define N_MUTATIONS 20000

START_TEST(test_mutations)
{
	static const uint32_t sizes[] = { 0, 1, 7, 8, 9, 16, 0x7fffffff, 0xffffffff };
	struct fmp4_init init = fixture_init();
	struct blob in[4] = { fixture_load("init.mp4"), fixture_load("seg0.m4s"),
			      fixture_load("seg1.m4s") };
	uint64_t x = 0x5eed1234abcdULL;
	unsigned ok = 0;

	in[3].len = in[1].len + in[2].len;
	in[3].data = malloc(in[3].len);
	ck_assert_ptr_nonnull(in[3].data);
	memcpy(in[3].data, in[1].data, in[1].len);
	memcpy(in[3].data + in[1].len, in[2].data, in[2].len);
	for (int i = 0; i < N_MUTATIONS; i++) {
		const struct blob *src = &in[i % 4];
		size_t len = src->len;
		uint8_t *p = malloc(len);
		int n = 1 + (int)(xorshift(&x) % 4), r;
		struct fmp4_init ri;
		struct fmp4_seg rs;
		char err[ERR_LEN];

		ck_assert_ptr_nonnull(p);
		memcpy(p, src->data, len);
		while (n-- > 0) {
			size_t at = xorshift(&x) % len;
			uint64_t kind = xorshift(&x) % 4;

			if (kind == 0)
				p[at] = (uint8_t)xorshift(&x);
			else if (kind == 1)
				p[at] ^= (uint8_t)(1u << (xorshift(&x) % 8));
			else if (kind == 2 && at + 4 <= len)
				put32(p + at, sizes[xorshift(&x) % 8]);
			else
				len = at + 1; /* truncate */
		}
		err[0] = '\0';
		r = fmp4_parse_init(p, len, &ri, err, sizeof(err));
		ck_assert_msg(r == 0 || (r == -EBADMSG && err[0] != '\0'), "mutation %d: %d", i, r);
		ok += r == 0;
		err[0] = '\0';
		r = fmp4_parse_segment(p, len, &init, &rs, err, sizeof(err));
		ck_assert_msg(r == 0 || (r == -EBADMSG && err[0] != '\0'), "mutation %d: %d", i, r);
		ok += r == 0;
		free(p);
	}
	/* Most single flips land in sample tables and names and still parse. */
	ck_assert_uint_gt(ok, N_MUTATIONS / 10);
	for (int i = 0; i < 4; i++)
		free(in[i].data);
}
END_TEST

/* A 1 MiB segment whose mdat payload is unreadable memory: only headers are
 * read, so parsing succeeds, in microseconds. */
START_TEST(test_mdat_untouched)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), payload = 1 << 20, head, map_len;
	struct sample s[30];
	struct seg_opts o = seg_opts0;
	struct fmp4_seg seg;
	struct timespec t0, t1;
	char err[ERR_LEN] = "";
	struct bb b;
	uint8_t *map;
	double us;

	for (int i = 0; i < 30; i++)
		s[i] = (struct sample){ 3000, (uint32_t)(payload / 30), i == 0 ? SYNC : NONSYNC };
	s[29].size += (uint32_t)(payload % 30);
	o.count = 30;
	o.samples = s;
	o.mdat_adjust = -(int64_t)payload; /* headers only */
	b = seg_of(&o);
	put32(b.buf + bb_find(&b, "mdat"), (uint32_t)(8 + payload));
	head = (b.len + page - 1) / page * page;
	map_len = head + payload;
	map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(map, MAP_FAILED);
	memcpy(map + head - b.len, b.buf, b.len);
	ck_assert_int_eq(mprotect(map + head, payload, PROT_NONE), 0);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000; i++) {
		int r = fmp4_parse_segment(map + head - b.len, b.len + payload, &init0, &seg, err,
					   sizeof(err));

		ck_assert_msg(r == 0, "%s", err);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e6;
	ck_assert_uint_eq(seg.n_samples, 30);
	ck_assert_uint_eq(seg.duration_ms, 1000);
	ck_assert_msg(us < 1000, "%.1f us per parse", us); /* generous, for ASan */
	munmap(map, map_len);
	free(b.buf);
}
END_TEST

static void
add(Suite *s, const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *
fmp4_suite(void)
{
	Suite *s = suite_create("fmp4");

	add(s, "init_fixture", test_init_fixture);
	add(s, "segment_fixture", test_segment_fixture);
	add(s, "remap rebase", test_remap_rebase);
	add(s, "remap sample desc", test_remap_sample_desc);
	add(s, "remap built", test_remap_built);
	add(s, "merge inits", test_merge_inits);
	add(s, "fixture_non_sync", test_fixture_non_sync);
	add(s, "init_built", test_init_built);
	add(s, "keyframe_flags", test_keyframe_flags);
	add(s, "defaults", test_defaults);
	add(s, "segment_layout", test_segment_layout);
	add(s, "traf_chain", test_traf_chain);
	add(s, "truncated", test_truncated);
	add(s, "box_sizes", test_box_sizes);
	add(s, "missing_boxes", test_missing_boxes);
	add(s, "depth", test_depth);
	add(s, "box_count", test_box_count);
	add(s, "trun_counts", test_trun_counts);
	add(s, "mdat_short", test_mdat_short);
	add(s, "mutations", test_mutations);
	add(s, "mdat_untouched", test_mdat_untouched);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(fmp4_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
