/* fmp4: box walking with every size checked against its parent, then the few
 * fields the server derives: from the init segment the video track, its avcC,
 * timescale and trex defaults; from moof+mdat pairs the tfhd, tfdt and trun
 * sample tables, checked against the mdat they address. No allocation. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "be.h"
#include "fmp4.h"

/* tfhd and trun flags (ISO/IEC 14496-12 8.8.7, 8.8.8). */
#define TFHD_BASE_DATA_OFFSET  0x000001u
#define TFHD_SAMPLE_DESC_INDEX 0x000002u
#define TFHD_DEFAULT_DURATION  0x000008u
#define TFHD_DEFAULTS          0x000038u /* default duration, size (0x10), flags (0x20) */
#define TFHD_BASE_IS_MOOF      0x020000u
#define TRUN_DATA_OFFSET       0x000001u
#define TRUN_FIRST_FLAGS       0x000004u
#define TRUN_DURATION          0x000100u
#define TRUN_SIZE              0x000200u
#define TRUN_FLAGS             0x000400u
#define TRUN_PER_SAMPLE        0x000f00u /* the above and composition offsets */
/* sample_flags: sample_depends_on (2 bits at 24), sample_is_non_sync_sample. */
#define SAMPLE_DEPENDS_ON(f) (((f) >> 24) & 3u)
#define SAMPLE_NON_SYNC      0x00010000u

/* Boxes whose body is only boxes, walked by check_tree() wherever they are. */
#define CONTAINERS "moovtrakmdiaminfstblmvexedtsdinfmooftrafmfra"
/* Top-level boxes allowed between moof+mdat pairs. */
#define SEGMENT_EXTRAS "stypsidxssixprftemsgfreeskip"

/* A box in the buffer: offsets from its start. */
struct box {
	const uint8_t *type; /* 4 bytes, in the buffer */
	size_t off;          /* the header */
	size_t body;         /* after the header (and largesize) */
	size_t end;          /* one past the box */
};

/* The children of a box still to read: [pos, end). */
struct iter {
	size_t pos, end;
};

struct ctx {
	const uint8_t *buf;
	char *err;
	size_t errlen;
	const uint8_t *path[FMP4_DEPTH_MAX]; /* types of the open containers */
	unsigned depth;
	unsigned n_boxes;
	const uint8_t *other_video; /* sample entry of a video track that is not H.264 */
};

static bool
is(const struct box *box, const char *type)
{
	return memcmp(box->type, type, 4) == 0;
}

/* Whether the box's type is in list, four characters each. */
static bool
is_any(const struct box *box, const char *list)
{
	for (; *list != '\0'; list += 4)
		if (is(box, list))
			return true;
	return false;
}

static const uint8_t *
body(const struct ctx *ctx, const struct box *box)
{
	return ctx->buf + box->body;
}

static size_t
body_len(const struct box *box)
{
	return box->end - box->body;
}

/* A printable copy of a box type. */
static const char *
fourcc(const uint8_t *type, char ret[5])
{
	for (int k = 0; k < 4; k++)
		ret[k] = type[k] >= 0x20 && type[k] < 0x7f ? (char)type[k] : '?';
	ret[4] = '\0';
	return ret;
}

static int fail(struct ctx *ctx, const struct box *box, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes "path/of/box: message" into err; box NULL names the open container. */
static int
fail(struct ctx *ctx, const struct box *box, const char *fmt, ...)
{
	char path[(FMP4_DEPTH_MAX + 1) * 5 + 1], msg[160];
	size_t n = 0;
	va_list ap;

	if (ctx->errlen == 0)
		return -EBADMSG;
	for (unsigned i = 0; i <= ctx->depth; i++) {
		const uint8_t *t = i < ctx->depth ? ctx->path[i] : box != NULL ? box->type : NULL;

		if (t == NULL)
			break;
		if (n > 0)
			path[n++] = '/';
		fourcc(t, path + n);
		n += 4;
	}
	path[n] = '\0';
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(ctx->err, ctx->errlen, "%s%s%s", path, n > 0 ? ": " : "", msg);
	return -EBADMSG;
}

/* Reads the header of the next box; 1 with *ret, 0 at the end of it. */
static int
next(struct ctx *ctx, struct iter *it, struct box *ret)
{
	size_t left = it->end - it->pos, hdr = 8;
	const uint8_t *p;
	uint64_t size;
	struct box box;

	if (left == 0)
		return 0;
	if (left < 8)
		return fail(ctx, NULL, "truncated box header (%zu bytes left)", left);
	p = ctx->buf + it->pos;
	box.type = p + 4;
	size = be32_get(p);
	if (size == 1) {
		if (left < 16)
			return fail(ctx, &box, "truncated 64-bit box size (%zu bytes left)", left);
		size = be64_get(p + 8);
		hdr = 16;
		if (size < 16)
			return fail(ctx, &box, "64-bit box size %" PRIu64 " below 16", size);
	} else if (size == 0) {
		/* "To the end of the file": the last top-level box, nowhere else. */
		if (ctx->depth > 0)
			return fail(ctx, &box, "box size 0 (to the end) inside a container");
		size = left;
	} else if (size < 8) {
		return fail(ctx, &box, "box size %" PRIu64 " below 8", size);
	}
	if (size > left)
		return fail(ctx, &box, "box size %" PRIu64 " past the end of the %s", size,
			    ctx->depth > 0 ? "parent box" : "buffer");
	if (ctx->depth >= FMP4_DEPTH_MAX)
		return fail(ctx, &box, "nesting deeper than %d boxes", FMP4_DEPTH_MAX);
	box.off = it->pos;
	box.body = it->pos + hdr;
	box.end = it->pos + (size_t)size;
	it->pos = box.end;
	*ret = box;
	return 1;
}

static int
need(struct ctx *ctx, const struct box *box, size_t n)
{
	if (body_len(box) < n)
		return fail(ctx, box, "box too short (%zu bytes, %zu needed)", body_len(box), n);
	return 0;
}

/* Opens box as a container whose children start skip bytes into its body;
 * the caller closes it with ctx->depth--. */
static int
enter(struct ctx *ctx, const struct box *box, size_t skip, struct iter *ret)
{
	int r = need(ctx, box, skip);

	if (r < 0)
		return r;
	assert(ctx->depth < FMP4_DEPTH_MAX); /* next() refused deeper boxes */
	ctx->path[ctx->depth++] = box->type;
	ret->pos = box->body + skip;
	ret->end = box->end;
	return 0;
}

/* A full box: version at most vmax, a body of at least need_v0 or need_v1
 * bytes (version and flags included). */
static int
full_box(struct ctx *ctx, const struct box *box, unsigned vmax, size_t need_v0, size_t need_v1,
	 unsigned *ret_version, uint32_t *ret_flags)
{
	const uint8_t *p = body(ctx, box);
	int r = need(ctx, box, 4);

	if (r < 0)
		return r;
	if (p[0] > vmax)
		return fail(ctx, box, "unsupported version %u", p[0]);
	r = need(ctx, box, p[0] == 0 ? need_v0 : need_v1);
	if (r < 0)
		return r;
	if (ret_version != NULL)
		*ret_version = p[0];
	if (ret_flags != NULL)
		*ret_flags = be32_get(p) & 0xffffff;
	return 0;
}

/* The first child of that type in it (an entered container): 1, or 0 when
 * absent, which is an error when required. */
static int
find(struct ctx *ctx, struct iter it, const char *type, bool required, struct box *ret)
{
	struct box box;
	int r;

	while ((r = next(ctx, &it, &box)) > 0) {
		if (is(&box, type)) {
			*ret = box;
			return 1;
		}
	}
	return r == 0 && required ? fail(ctx, NULL, "missing %s", type) : r;
}

/* Checks every header of the tree of known containers, wherever they appear:
 * sizes, nesting depth and the number of boxes. */
static int
check_tree(struct ctx *ctx, struct iter it)
{
	struct iter child;
	struct box box;
	int r;

	while ((r = next(ctx, &it, &box)) > 0) {
		if (++ctx->n_boxes > FMP4_BOXES_MAX)
			return fail(ctx, &box, "more than %d boxes", FMP4_BOXES_MAX);
		if (!is_any(&box, CONTAINERS))
			continue;
		if ((r = enter(ctx, &box, 0, &child)) < 0 || (r = check_tree(ctx, child)) < 0)
			return r;
		ctx->depth--;
	}
	return r;
}

/* The avc1 or avc3 sample entry: a VisualSampleEntry (78 bytes), then boxes. */
static int
parse_avc(struct ctx *ctx, const struct box *entry, struct fmp4_init *init)
{
	const uint8_t *p = body(ctx, entry), *c;
	struct iter it;
	struct box avcc;
	int r = enter(ctx, entry, 78, &it);

	if (r < 0 || (r = find(ctx, it, "avcC", true, &avcc)) < 0 || (r = need(ctx, &avcc, 4)) < 0)
		return r;
	c = body(ctx, &avcc);
	if (c[0] != 1)
		return fail(ctx, &avcc, "configurationVersion %u, not 1", c[0]);
	/* profile_idc, the constraint flags byte, level_idc */
	snprintf(init->codec, sizeof(init->codec), "%.4s.%02x%02x%02x", (const char *)entry->type,
		 c[1], c[2], c[3]);
	init->width = (uint32_t)(p[24] << 8 | p[25]);
	init->height = (uint32_t)(p[26] << 8 | p[27]);
	ctx->depth--;
	return 0;
}

/* 1 with init filled when trak is an H.264 video track, 0 for another track. */
static int
parse_trak(struct ctx *ctx, const struct box *trak, struct fmp4_init *init)
{
	unsigned depth = ctx->depth, version;
	struct box mdia, hdlr, mdhd, minf, stbl, stsd, entry, tkhd;
	struct iter it, sub;
	const uint8_t *p;
	size_t tkhd_len;
	int r = enter(ctx, trak, 0, &it);

	if (r < 0 || (r = find(ctx, it, "mdia", true, &mdia)) < 0 ||
	    (r = enter(ctx, &mdia, 0, &sub)) < 0 || (r = find(ctx, sub, "hdlr", true, &hdlr)) < 0 ||
	    (r = full_box(ctx, &hdlr, 0, 24, 24, NULL, NULL)) < 0)
		return r;
	if (memcmp(body(ctx, &hdlr) + 8, "vide", 4) != 0)
		goto other;
	if ((r = find(ctx, sub, "mdhd", true, &mdhd)) < 0 ||
	    (r = full_box(ctx, &mdhd, 1, 24, 36, &version, NULL)) < 0)
		return r;
	init->timescale = be32_get(body(ctx, &mdhd) + (version == 0 ? 12 : 20));
	if (init->timescale == 0)
		return fail(ctx, &mdhd, "timescale 0");
	if ((r = find(ctx, sub, "minf", true, &minf)) < 0 || (r = enter(ctx, &minf, 0, &sub)) < 0 ||
	    (r = find(ctx, sub, "stbl", true, &stbl)) < 0 || (r = enter(ctx, &stbl, 0, &sub)) < 0 ||
	    (r = find(ctx, sub, "stsd", true, &stsd)) < 0 ||
	    (r = full_box(ctx, &stsd, 0, 8, 8, NULL, NULL)) < 0 ||
	    (r = enter(ctx, &stsd, 8, &sub)) < 0)
		return r;
	r = next(ctx, &sub, &entry);
	if (r <= 0)
		return r < 0 ? r : fail(ctx, NULL, "no sample entry");
	if (!is(&entry, "avc1") && !is(&entry, "avc3")) {
		ctx->other_video = entry.type;
		goto other;
	}
	r = parse_avc(ctx, &entry, init);
	if (r < 0)
		return r;
	/* Box offsets fit 32 bits: an init is at most a few MiB (the message cap). */
	init->path_off[1] = (uint32_t)trak->off;
	init->path_off[2] = (uint32_t)mdia.off;
	init->path_off[3] = (uint32_t)minf.off;
	init->path_off[4] = (uint32_t)stbl.off;
	init->path_off[5] = (uint32_t)stsd.off;
	init->entries = be32_get(body(ctx, &stsd) + 4);
	init->entry_off = (uint32_t)entry.off;
	init->entry_len = (uint32_t)(entry.end - entry.off);

	ctx->depth = depth + 1; /* back in trak */
	if ((r = find(ctx, it, "tkhd", true, &tkhd)) < 0 ||
	    (r = full_box(ctx, &tkhd, 1, 84, 96, &version, NULL)) < 0)
		return r;
	p = body(ctx, &tkhd);
	tkhd_len = version == 0 ? 84 : 96;
	init->track_id = be32_get(p + (version == 0 ? 12 : 20));
	if (init->track_id == 0)
		return fail(ctx, &tkhd, "track_ID 0");
	if (init->width == 0 || init->height == 0) {
		/* 16.16 fixed point, the last two fields */
		init->width = be32_get(p + tkhd_len - 8) >> 16;
		init->height = be32_get(p + tkhd_len - 4) >> 16;
	}
	if (init->width == 0 || init->height == 0)
		return fail(ctx, &tkhd, "no picture size in %.4s or tkhd",
			    (const char *)entry.type);
	ctx->depth = depth;
	return 1;
other:
	ctx->depth = depth;
	return 0;
}

static int
parse_mvex(struct ctx *ctx, const struct box *mvex, struct fmp4_init *init)
{
	struct iter it;
	struct box box;
	int r = enter(ctx, mvex, 0, &it);

	while (r >= 0 && (r = next(ctx, &it, &box)) > 0) {
		const uint8_t *p = body(ctx, &box);

		if (!is(&box, "trex") || (r = full_box(ctx, &box, 0, 24, 24, NULL, NULL)) < 0 ||
		    be32_get(p + 4) != init->track_id)
			continue;
		init->default_sample_duration = be32_get(p + 12);
		init->default_sample_size = be32_get(p + 16);
		init->default_sample_flags = be32_get(p + 20);
		ctx->depth--;
		return 0;
	}
	return r < 0 ? r : fail(ctx, NULL, "no trex for track %" PRIu32, init->track_id);
}

static int
parse_moov(struct ctx *ctx, const struct box *moov, struct fmp4_init *init)
{
	struct box box, mvex = { 0 };
	struct iter it;
	char name[5];
	bool found = false;
	int r = enter(ctx, moov, 0, &it);

	while (r >= 0 && (r = next(ctx, &it, &box)) > 0) {
		if (is(&box, "trak") && !found) {
			found = (r = parse_trak(ctx, &box, init)) > 0;
			init->path_off[0] = (uint32_t)moov->off;
		} else if (is(&box, "mvex") && mvex.type == NULL) {
			mvex = box;
		}
	}
	if (r < 0)
		return r;
	if (!found && ctx->other_video != NULL)
		return fail(ctx, NULL, "no H.264 video track (video in %s)",
			    fourcc(ctx->other_video, name));
	if (!found)
		return fail(ctx, NULL, "no H.264 video track");
	if (mvex.type == NULL)
		return fail(ctx, NULL, "missing mvex (not a fragmented MP4)");
	r = parse_mvex(ctx, &mvex, init);
	if (r < 0)
		return r;
	ctx->depth--;
	return 0;
}

int
fmp4_parse_init(const void *buf, size_t len, struct fmp4_init *ret, char *err, size_t errlen)
{
	struct ctx ctx = { .buf = buf, .err = err, .errlen = errlen };
	struct iter it = { 0, len };
	struct fmp4_init init = { .track_id = 0 };
	bool have_ftyp = false, have_moov = false;
	struct box box;
	int r;

	if ((uint64_t)len > UINT32_MAX)
		return fail(&ctx, NULL, "an init of %zu bytes (4 GiB at most)", len);
	r = check_tree(&ctx, it);
	while (r >= 0 && (r = next(&ctx, &it, &box)) > 0) {
		if (!have_ftyp) {
			if (!is(&box, "ftyp"))
				return fail(&ctx, &box, "expected ftyp first");
			r = need(&ctx, &box, 8); /* major brand, minor version */
			have_ftyp = true;
		} else if (is(&box, "moov")) {
			if (have_moov)
				return fail(&ctx, &box, "second moov");
			r = parse_moov(&ctx, &box, &init);
			have_moov = true;
		} else if (is_any(&box, "moofmdat")) {
			return fail(&ctx, &box, "media in an init segment");
		}
	}
	if (r < 0)
		return r;
	if (!have_ftyp)
		return fail(&ctx, NULL, "missing ftyp (empty buffer)");
	if (!have_moov)
		return fail(&ctx, NULL, "missing moov");
	*ret = init;
	return 0;
}

/* Sample defaults in force for a traf. */
struct defaults {
	uint32_t duration, size, flags;
};

/* The state of one segment parse. Data positions are offsets from the moof's
 * first byte; the mdat's payload lies in [lo, hi). */
struct seg_state {
	const struct fmp4_init *init;
	struct fmp4_seg seg;
	uint64_t lo, hi;
	uint64_t chain; /* end of the data of the previous traf */
	bool chain_known;
	bool first_traf; /* of the moof */
	bool ours;       /* a traf of the init's track seen in the moof */
};

/* One trun; *pos is where its data starts unless it has a data_offset. */
static int
parse_trun(struct ctx *ctx, const struct box *trun, const struct defaults *d, uint64_t base,
	   uint64_t *pos, struct seg_state *st)
{
	const uint8_t *p = body(ctx, trun) + 8, *end = body(ctx, trun) + body_len(trun);
	uint64_t dur_sum = 0, size_sum = 0;
	int64_t start = (int64_t)*pos;
	uint32_t flags, count, first_flags = d->flags;
	size_t per, size_at;
	int r = full_box(ctx, trun, 1, 8, 8, NULL, &flags);

	if (r < 0 || (r = need(ctx, trun,
			       8 + 4 * (size_t)__builtin_popcount(
					       flags & (TRUN_DATA_OFFSET | TRUN_FIRST_FLAGS)))) < 0)
		return r;
	count = be32_get(p - 4);
	if (flags & TRUN_DATA_OFFSET) {
		start = (int64_t)base + (int32_t)be32_get(p);
		p += 4;
	}
	if (flags & TRUN_FIRST_FLAGS) {
		first_flags = be32_get(p);
		p += 4;
	}
	per = 4 * (size_t)__builtin_popcount(flags & TRUN_PER_SAMPLE);
	size_at = flags & TRUN_DURATION ? 4 : 0;
	if (per > 0 && count > (size_t)(end - p) / per)
		return fail(ctx, trun, "%" PRIu32 " samples need %" PRIu64 " bytes, %zu left",
			    count, (uint64_t)count * per, (size_t)(end - p));
	if (count > FMP4_SAMPLES_MAX - st->seg.n_samples)
		return fail(ctx, trun, "%" PRIu32 " more samples: over %d in the segment", count,
			    FMP4_SAMPLES_MAX);
	/* Per-sample flags win over first_sample_flags, as in FFmpeg. */
	if (count > 0 && (flags & TRUN_FLAGS))
		first_flags = be32_get(p + size_at + (flags & TRUN_SIZE ? 4 : 0));
	if (!(flags & TRUN_DURATION))
		dur_sum = (uint64_t)count * d->duration;
	if (!(flags & TRUN_SIZE))
		size_sum = (uint64_t)count * d->size;
	/* Bounded by the bytes of the box; the mdat payload is never read. */
	for (uint32_t i = 0; i < count && (flags & (TRUN_DURATION | TRUN_SIZE)); i++, p += per) {
		if (flags & TRUN_DURATION)
			dur_sum += be32_get(p);
		if (flags & TRUN_SIZE)
			size_sum += be32_get(p + size_at);
	}
	/* Empty samples have no data, wherever they point. */
	if (size_sum > 0 && start < (int64_t)st->lo)
		return fail(ctx, trun,
			    "sample data at moof+%" PRId64 ", before the mdat "
			    "payload at moof+%" PRIu64,
			    start, st->lo);
	if (size_sum > 0 && (uint64_t)start + size_sum > st->hi)
		return fail(ctx, trun,
			    "%" PRIu32 " samples of %" PRIu64 " bytes at moof+%" PRId64
			    " run past the end of the mdat (moof+%" PRIu64 ")",
			    count, size_sum, start, st->hi);
	if (count > 0 && st->seg.n_samples == 0)
		st->seg.keyframe =
			(first_flags & SAMPLE_NON_SYNC) == 0 && SAMPLE_DEPENDS_ON(first_flags) != 1;
	*pos = (uint64_t)start + size_sum;
	st->seg.n_samples += count;
	st->seg.duration += dur_sum;
	return 0;
}

static int
parse_traf(struct ctx *ctx, const struct box *traf, struct seg_state *st)
{
	struct defaults d = { st->init->default_sample_duration, st->init->default_sample_size,
			      st->init->default_sample_flags };
	uint32_t *dst[3] = { &d.duration, &d.size, &d.flags }; /* in the tfhd's order */
	bool first = st->first_traf;
	unsigned version;
	uint32_t flags;
	uint64_t base, pos;
	struct box tfhd, tfdt, box;
	struct iter it, runs;
	const uint8_t *p;
	int r = enter(ctx, traf, 0, &it), has_tfdt;

	st->first_traf = false;
	if (r < 0 || (r = find(ctx, it, "tfhd", true, &tfhd)) < 0 ||
	    (r = full_box(ctx, &tfhd, 0, 8, 8, NULL, &flags)) < 0)
		return r;
	p = body(ctx, &tfhd) + 4;
	if (be32_get(p) != st->init->track_id) {
		st->chain_known = false;
		goto done;
	}
	if (flags & TFHD_BASE_DATA_OFFSET)
		return fail(ctx, &tfhd,
			    "base-data-offset (a file offset) is not supported: "
			    "address sample data from the moof");
	r = need(ctx, &tfhd,
		 8 + 4 * (size_t)__builtin_popcount(flags &
						    (TFHD_SAMPLE_DESC_INDEX | TFHD_DEFAULTS)));
	if (r < 0)
		return r;
	p += flags & TFHD_SAMPLE_DESC_INDEX ? 8 : 4;
	for (int i = 0; i < 3; i++) {
		if (flags & (TFHD_DEFAULT_DURATION << i)) {
			*dst[i] = be32_get(p);
			p += 4;
		}
	}
	/* Without default-base-is-moof, a traf's data follows the previous one's. */
	if ((flags & TFHD_BASE_IS_MOOF) || first)
		base = 0;
	else if (st->chain_known)
		base = st->chain;
	else
		return fail(ctx, &tfhd,
			    "data follows a traf of another track: "
			    "set default-base-is-moof");

	has_tfdt = r = find(ctx, it, "tfdt", false, &tfdt);
	if (r < 0 || (r > 0 && (r = full_box(ctx, &tfdt, 1, 8, 12, &version, NULL)) < 0))
		return r;
	if (has_tfdt && st->seg.n_fragments == 0 && !st->ours) {
		p = body(ctx, &tfdt) + 4;
		st->seg.decode_time = version == 0 ? be32_get(p) : be64_get(p);
		st->seg.has_decode_time = true;
	}
	st->ours = true;
	pos = base;
	runs = it;
	while ((r = next(ctx, &runs, &box)) > 0) {
		if (is(&box, "trun") && (r = parse_trun(ctx, &box, &d, base, &pos, st)) < 0)
			return r;
	}
	if (r < 0)
		return r;
	st->chain = pos;
	st->chain_known = true;
done:
	ctx->depth--;
	return 0;
}

static int
parse_pair(struct ctx *ctx, const struct box *moof, const struct box *mdat, struct seg_state *st)
{
	struct box mfhd, box;
	struct iter it;
	int r = enter(ctx, moof, 0, &it);

	if (r < 0 || (r = find(ctx, it, "mfhd", true, &mfhd)) < 0 ||
	    (r = full_box(ctx, &mfhd, 0, 8, 8, NULL, NULL)) < 0)
		return r;
	st->lo = mdat->body - moof->off;
	st->hi = mdat->end - moof->off;
	st->first_traf = true;
	st->chain_known = false;
	st->ours = false;
	while ((r = next(ctx, &it, &box)) > 0) {
		if (is(&box, "traf") && (r = parse_traf(ctx, &box, st)) < 0)
			return r;
	}
	if (r < 0)
		return r;
	if (!st->ours)
		return fail(ctx, NULL, "no traf for track %" PRIu32, st->init->track_id);
	ctx->depth--;
	return 0;
}

int
fmp4_parse_segment(const void *buf, size_t len, const struct fmp4_init *init, struct fmp4_seg *ret,
		   char *err, size_t errlen)
{
	struct ctx ctx = { .buf = buf, .err = err, .errlen = errlen };
	struct seg_state st = { .init = init };
	struct iter it = { 0, len };
	struct box box, mdat;
	uint64_t ms, ts;
	int r;

	assert(init != NULL && init->timescale > 0); /* from fmp4_parse_init() */
	r = check_tree(&ctx, it);
	while (r >= 0 && (r = next(&ctx, &it, &box)) > 0) {
		if (is(&box, "moof")) {
			r = next(&ctx, &it, &mdat);
			if (r < 0)
				return r;
			if (r == 0 || !is(&mdat, "mdat"))
				return fail(&ctx, &box, "not followed by an mdat");
			r = parse_pair(&ctx, &box, &mdat, &st);
			st.seg.n_fragments++;
		} else if (is(&box, "mdat")) {
			return fail(&ctx, &box, "no moof before it");
		} else if (!is_any(&box, SEGMENT_EXTRAS)) {
			return fail(&ctx, &box, "unexpected top-level box in a segment");
		}
	}
	if (r < 0)
		return r;
	if (st.seg.n_fragments == 0)
		return fail(&ctx, NULL, "no moof+mdat pair");
	if (st.seg.n_samples == 0)
		return fail(&ctx, NULL, "no samples for track %" PRIu32, init->track_id);
	/* At most FMP4_SAMPLES_MAX * 2^32 ticks: none of this overflows. */
	ts = init->timescale;
	ms = st.seg.duration / ts * 1000 + (st.seg.duration % ts * 1000 + ts / 2) / ts;
	if (ms > UINT32_MAX)
		return fail(&ctx, NULL, "duration of %" PRIu64 " ms out of range", ms);
	st.seg.duration_ms = (uint32_t)ms;
	*ret = st.seg;
	return 0;
}
