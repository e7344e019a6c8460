/* sentinel_mp4: the fragmented MP4 that mp4mux writes, seen as ISO BMFF boxes.
 * Cuts the byte stream at top-level box boundaries into the init segment (ftyp +
 * moov) and media segments (moof + mdat), reads what sentinel.segment reports
 * (duration, keyframe) from a moof, and rewrites the avcC of an init segment when
 * the encoder's SPS changes. Plain C: runs in the muxer's streaming thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sentinel.h"

/* No box of a live stream comes near this; a larger size means garbage. */
#define SNT_MP4_BOX_MAX ((uint64_t)256 << 20)
#define SNT_MP4_NONE    SIZE_MAX
/* Sample flags: sample_is_non_sync_sample (ISO 14496-12 8.8.3.1). */
#define SNT_MP4_NON_SYNC 0x00010000u
/* VisualSampleEntry fields before its child boxes (ISO 14496-12 12.1.3). */
#define SNT_MP4_VISUAL_ENTRY 78

struct snt_mp4_split {
	snt_mp4_fn fn;
	void *opaque;
	uint8_t *buf;
	size_t len, cap;
	size_t pos;      /* start of the first box not complete yet */
	size_t group;    /* start of the open group, SNT_MP4_NONE when none */
	bool group_init; /* the open group is ftyp + moov (else moof + mdat) */
};

struct snt_mp4_box {
	size_t off;  /* of the header */
	size_t body; /* of the content */
	size_t end;  /* one past the box */
	char type[5];
};

static uint32_t
snt_mp4_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
snt_mp4_be64(const uint8_t *p)
{
	return (uint64_t)snt_mp4_be32(p) << 32 | snt_mp4_be32(p + 4);
}

static void
snt_mp4_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* The header of the box at off, which must lie within [off, end): 1 when
 * complete, 0 when more bytes are needed (partial is set), -EBADMSG. */
static int
snt_mp4_box_at(const uint8_t *buf, size_t end, size_t off, bool partial, struct snt_mp4_box *ret)
{
	uint64_t size;
	size_t hdr = 8;

	if (end - off < 8)
		return partial ? 0 : -EBADMSG;
	size = snt_mp4_be32(buf + off);
	if (size == 1) {
		if (end - off < 16)
			return partial ? 0 : -EBADMSG;
		size = snt_mp4_be64(buf + off + 8);
		hdr = 16;
	} else if (size == 0) {
		/* "to the end of the file": a live stream has no end. */
		if (partial)
			return -EBADMSG;
		size = end - off;
	}
	if (size < hdr || size > SNT_MP4_BOX_MAX)
		return -EBADMSG;
	if (size > end - off)
		return partial ? 0 : -EBADMSG;
	ret->off = off;
	ret->body = off + hdr;
	ret->end = off + (size_t)size;
	memcpy(ret->type, buf + off + 4, 4);
	ret->type[4] = '\0';
	return 1;
}

/* The first child of type within [from, end); -ENOENT, -EBADMSG. */
static int
snt_mp4_child(const uint8_t *buf, size_t from, size_t end, const char *type,
	      struct snt_mp4_box *ret)
{
	struct snt_mp4_box b;
	int r;

	for (size_t off = from; off < end; off = b.end) {
		r = snt_mp4_box_at(buf, end, off, false, &b);
		if (r < 0)
			return r;
		if (memcmp(b.type, type, 4) == 0) {
			*ret = b;
			return 0;
		}
	}
	return -ENOENT;
}

struct snt_mp4_split *
snt_mp4_split_new(snt_mp4_fn fn, void *opaque)
{
	struct snt_mp4_split *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->fn = fn;
	s->opaque = opaque;
	s->group = SNT_MP4_NONE;
	return s;
}

void
snt_mp4_split_free(struct snt_mp4_split *s)
{
	if (s == NULL)
		return;
	free(s->buf);
	free(s);
}

bool
snt_mp4_split_in_segment(const struct snt_mp4_split *s)
{
	return s->group != SNT_MP4_NONE && !s->group_init;
}

/* One complete top-level box at b: opens, extends or closes a group. */
static void
snt_mp4_split_box(struct snt_mp4_split *s, const struct snt_mp4_box *b)
{
	if (strcmp(b->type, "ftyp") == 0 || strcmp(b->type, "moof") == 0) {
		/* A group left open is abandoned: the muxer restarted. */
		s->group = b->off;
		s->group_init = b->type[1] == 't';
	} else if (strcmp(b->type, "moov") == 0) {
		if (s->group == SNT_MP4_NONE || !s->group_init)
			s->group = b->off;
		s->fn(s->opaque, true, s->buf + s->group, b->end - s->group);
		s->group = SNT_MP4_NONE;
	} else if (strcmp(b->type, "mdat") == 0 && snt_mp4_split_in_segment(s)) {
		s->fn(s->opaque, false, s->buf + s->group, b->end - s->group);
		s->group = SNT_MP4_NONE;
	}
	/* Anything else (mfra at the end, free) stays in the open group or is dropped. */
}

int
snt_mp4_split_feed(struct snt_mp4_split *s, const void *data, size_t len)
{
	struct snt_mp4_box b;
	size_t keep;
	int r;

	if (len > s->cap - s->len) {
		size_t cap = s->cap ? s->cap : 256 * 1024;
		uint8_t *p;

		while (cap - s->len < len)
			cap *= 2;
		p = realloc(s->buf, cap);
		if (p == NULL)
			return -ENOMEM;
		s->buf = p;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;

	while ((r = snt_mp4_box_at(s->buf, s->len, s->pos, true, &b)) > 0) {
		snt_mp4_split_box(s, &b);
		s->pos = b.end;
	}
	if (r < 0)
		return r;
	/* Keep the open group and the incomplete box; usually nothing is left. */
	keep = s->group != SNT_MP4_NONE ? s->group : s->pos;
	if (keep > 0) {
		memmove(s->buf, s->buf + keep, s->len - keep);
		s->len -= keep;
		s->pos -= keep;
		if (s->group != SNT_MP4_NONE)
			s->group = 0;
	}
	return 0;
}

/* Follows a path of box types from the top level of buf; ret gets the last.
 * Children of stsd and of a visual sample entry start after their fields. */
static int
snt_mp4_path(const uint8_t *buf, size_t len, const char *const *path, size_t n,
	     struct snt_mp4_box *ret_boxes)
{
	size_t from = 0, end = len;
	int r;

	for (size_t i = 0; i < n; i++) {
		r = snt_mp4_child(buf, from, end, path[i], &ret_boxes[i]);
		if (r < 0)
			return -EBADMSG;
		from = ret_boxes[i].body;
		end = ret_boxes[i].end;
		if (strcmp(path[i], "stsd") == 0)
			from += 8; /* version, flags, entry_count */
		else if (strcmp(path[i], "avc1") == 0)
			from += SNT_MP4_VISUAL_ENTRY;
		if (from > end)
			return -EBADMSG;
	}
	return 0;
}

int
snt_mp4_timescale(const uint8_t *init, size_t len, uint32_t *ret_timescale)
{
	static const char *const path[] = { "moov", "trak", "mdia", "mdhd" };
	struct snt_mp4_box b[4];
	size_t at;

	if (snt_mp4_path(init, len, path, 4, b) < 0)
		return -EBADMSG;
	/* version 1 has 64-bit creation and modification times */
	at = b[3].body + (init[b[3].body] == 1 ? 20 : 12);
	if (at + 4 > b[3].end || snt_mp4_be32(init + at) == 0)
		return -EBADMSG;
	*ret_timescale = snt_mp4_be32(init + at);
	return 0;
}

struct snt_mp4_defaults {
	uint32_t duration, flags;
};

/* The trex of the init segment, or zeros when there is none. */
static void
snt_mp4_trex(const uint8_t *init, size_t len, struct snt_mp4_defaults *d)
{
	static const char *const path[] = { "moov", "mvex", "trex" };
	struct snt_mp4_box b[3];

	d->duration = 0;
	d->flags = 0;
	/* version/flags, track_ID, description index, duration, size, flags */
	if (snt_mp4_path(init, len, path, 3, b) == 0 && b[2].end - b[2].body >= 24) {
		d->duration = snt_mp4_be32(init + b[2].body + 12);
		d->flags = snt_mp4_be32(init + b[2].body + 20);
	}
}

/* One traf: adds its durations; the first sample's flags when *first is set. */
static int
snt_mp4_traf(const uint8_t *p, const struct snt_mp4_box *traf, struct snt_mp4_defaults d,
	     uint64_t *dur, bool *first, bool *key)
{
	struct snt_mp4_box tfhd, trun;
	uint32_t tf, flags, n;
	size_t at;

	if (snt_mp4_child(p, traf->body, traf->end, "tfhd", &tfhd) < 0 || tfhd.end - tfhd.body < 8)
		return -EBADMSG;
	tf = snt_mp4_be32(p + tfhd.body) & 0xffffff;
	at = tfhd.body + 8 + (tf & 0x01 ? 8 : 0) + (tf & 0x02 ? 4 : 0);
	if (tf & 0x08) {
		if (at + 4 > tfhd.end)
			return -EBADMSG;
		d.duration = snt_mp4_be32(p + at);
		at += 4;
	}
	at += tf & 0x10 ? 4 : 0;
	if (tf & 0x20) {
		if (at + 4 > tfhd.end)
			return -EBADMSG;
		d.flags = snt_mp4_be32(p + at);
	}
	/* One trun is what mp4mux writes; several would be read the same way. */
	for (size_t off = traf->body; off < traf->end; off = trun.end) {
		uint32_t first_flags = d.flags;
		size_t entry;

		if (snt_mp4_box_at(p, traf->end, off, false, &trun) < 0)
			return -EBADMSG;
		if (strcmp(trun.type, "trun") != 0)
			continue;
		if (trun.end - trun.body < 8)
			return -EBADMSG;
		flags = snt_mp4_be32(p + trun.body) & 0xffffff;
		n = snt_mp4_be32(p + trun.body + 4);
		at = trun.body + 8 + (flags & 0x01 ? 4 : 0);
		if (flags & 0x04) {
			if (at + 4 > trun.end)
				return -EBADMSG;
			first_flags = snt_mp4_be32(p + at);
			at += 4;
		}
		entry = 4u * (!!(flags & 0x100) + !!(flags & 0x200) + !!(flags & 0x400) +
			      !!(flags & 0x800));
		if (entry != 0 && (trun.end - at) / entry < n)
			return -EBADMSG;
		for (uint32_t i = 0; i < n; i++) {
			const uint8_t *e = p + at + (size_t)i * entry;
			uint32_t sflags = i == 0 ? first_flags : d.flags;

			*dur += flags & 0x100 ? snt_mp4_be32(e) : d.duration;
			if ((flags & 0x400) && !(i == 0 && (flags & 0x04)))
				sflags = snt_mp4_be32(e +
						      4 * (!!(flags & 0x100) + !!(flags & 0x200)));
			if (i == 0 && *first) {
				*key = !(sflags & SNT_MP4_NON_SYNC);
				*first = false;
			}
		}
	}
	return 0;
}

int
snt_mp4_segment_info(const uint8_t *init, size_t init_len, const uint8_t *seg, size_t seg_len,
		     uint64_t *ret_duration, bool *ret_keyframe)
{
	struct snt_mp4_defaults d;
	struct snt_mp4_box moof, traf;
	uint64_t dur = 0;
	bool first = true, key = false;
	int r;

	snt_mp4_trex(init, init_len, &d);
	for (size_t off = 0; off < seg_len; off = moof.end) {
		if (snt_mp4_box_at(seg, seg_len, off, false, &moof) < 0)
			return -EBADMSG;
		if (strcmp(moof.type, "moof") != 0)
			continue;
		for (size_t t = moof.body; t < moof.end; t = traf.end) {
			if (snt_mp4_box_at(seg, moof.end, t, false, &traf) < 0)
				return -EBADMSG;
			if (strcmp(traf.type, "traf") != 0)
				continue;
			r = snt_mp4_traf(seg, &traf, d, &dur, &first, &key);
			if (r < 0)
				return r;
		}
	}
	if (first)
		return -EBADMSG; /* no sample at all */
	*ret_duration = dur;
	*ret_keyframe = key;
	return 0;
}

int
snt_mp4_replace_avcc(const uint8_t *init, size_t len, const uint8_t *avcc, size_t avcc_len,
		     uint8_t **ret_init, size_t *ret_len)
{
	static const char *const path[] = { "moov", "trak", "mdia", "minf",
					    "stbl", "stsd", "avc1", "avcC" };
	struct snt_mp4_box b[8];
	const struct snt_mp4_box *old = &b[7];
	size_t new_len;
	int64_t delta;
	uint8_t *out;

	if (avcc_len > UINT32_MAX - 8 || snt_mp4_path(init, len, path, 8, b) < 0)
		return -EBADMSG;
	delta = (int64_t)(avcc_len + 8) - (int64_t)(old->end - old->off);
	/* Every box around the avcC grows or shrinks by delta; each has a 32-bit size. */
	for (size_t i = 0; i < 7; i++) {
		int64_t size = snt_mp4_be32(init + b[i].off);

		if (b[i].body - b[i].off != 8 || size + delta > UINT32_MAX || size + delta < 8)
			return -EBADMSG;
	}
	new_len = (size_t)((int64_t)len + delta);
	out = malloc(new_len);
	if (out == NULL)
		return -ENOMEM;
	memcpy(out, init, old->off);
	snt_mp4_put_be32(out + old->off, (uint32_t)(avcc_len + 8));
	memcpy(out + old->off + 4, "avcC", 4);
	memcpy(out + old->off + 8, avcc, avcc_len);
	memcpy(out + old->off + 8 + avcc_len, init + old->end, len - old->end);
	/* The ancestors all start before the avcC, at the same offsets as in init. */
	for (size_t i = 0; i < 7; i++)
		snt_mp4_put_be32(out + b[i].off,
				 (uint32_t)((int64_t)snt_mp4_be32(init + b[i].off) + delta));
	*ret_init = out;
	*ret_len = new_len;
	return 0;
}
