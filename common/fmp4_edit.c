/* fmp4_edit: an export's init and segments out of a session's own (fmp4.h).
 * Every buffer here was accepted by fmp4.c's parsers, which checked each box
 * size against its parent; the walk below still bounds every read and write
 * by its buffer, so that a caller's mistake is an error and not an overrun.
 * Each function runs twice over its input: once to measure, once to write. */
#include <errno.h>
#include <string.h>

#include "be.h"
#include "fmp4.h"

/* tfhd and trun flags (ISO/IEC 14496-12 8.8.7, 8.8.8). */
#define TFHD_BASE_DATA_OFFSET  0x000001u
#define TFHD_SAMPLE_DESC_INDEX 0x000002u
#define TFHD_DEFAULT_DURATION  0x000008u /* then default size 0x10, flags 0x20 */
#define TFHD_FIELDS            0x00003bu /* every optional field */
#define TRUN_DATA_OFFSET       0x000001u

struct ebox {
	const uint8_t *type;
	size_t off, body, end;
	bool large; /* a 64-bit size */
};

/* The output, or only its length when p is NULL. */
struct out {
	uint8_t *p;
	size_t size, len;
	int err;
};

/* The box at pos, within [pos, end): 0 or -EBADMSG. */
static int
ebox_at(const uint8_t *buf, size_t pos, size_t end, struct ebox *ret)
{
	uint64_t size;
	size_t hdr = 8;

	if (pos > end || end - pos < 8)
		return -EBADMSG;
	size = be32_get(buf + pos);
	if (size == 1) {
		if (end - pos < 16)
			return -EBADMSG;
		size = be64_get(buf + pos + 8);
		hdr = 16;
	} else if (size == 0) {
		size = end - pos; /* to the end: only a last top-level box has it */
	}
	if (size < hdr || size > end - pos)
		return -EBADMSG;
	*ret = (struct ebox){ .type = buf + pos + 4,
			      .off = pos,
			      .body = pos + hdr,
			      .end = pos + (size_t)size,
			      .large = hdr == 16 };
	return 0;
}

static bool
ebox_is(const struct ebox *b, const char *type)
{
	return memcmp(b->type, type, 4) == 0;
}

static void
put(struct out *o, const void *src, size_t n)
{
	if (o->p != NULL && o->err == 0) {
		if (n > o->size - o->len)
			o->err = -ENOBUFS;
		else
			memcpy(o->p + o->len, src, n);
	}
	o->len += n;
}

static void
put32(struct out *o, uint32_t v)
{
	uint8_t b[4];

	be32_put(b, v);
	put(o, b, 4);
}

/* A box header of size bytes in all, as wide as the input's was. */
static void
put_header(struct out *o, bool large, const uint8_t *type, uint64_t size)
{
	if (large) {
		put32(o, 1);
		put(o, type, 4);
		put32(o, (uint32_t)(size >> 32));
		put32(o, (uint32_t)size);
		return;
	}
	if (size > UINT32_MAX && o->err == 0)
		o->err = -ERANGE;
	put32(o, (uint32_t)size);
	put(o, type, 4);
}

static void
put_box(struct out *o, const uint8_t *buf, const struct ebox *b)
{
	put(o, buf + b->off, b->end - b->off);
}

/* ---- the init ----------------------------------------------------------- */

ssize_t
fmp4_merge_inits(const struct fmp4_src *v, size_t n, void *out, size_t size)
{
	const struct fmp4_init *base = v[0].init;
	const uint8_t *b = v[0].buf;
	uint8_t *o = out;
	struct ebox stsd;
	size_t add = 0, total, at;

	for (size_t i = 1; i < n; i++) {
		if (v[i].init->timescale != base->timescale)
			return -EDOM;
		if (v[i].init->entry_len > v[i].len ||
		    v[i].init->entry_off > v[i].len - v[i].init->entry_len)
			return -EBADMSG;
		add += v[i].init->entry_len;
	}
	if (ebox_at(b, base->path_off[5], v[0].len, &stsd) < 0 || stsd.end - stsd.body < 8)
		return -EBADMSG;
	total = v[0].len + add;
	if (out == NULL)
		return (ssize_t)total;
	if (size < total)
		return -ENOBUFS;
	memcpy(o, b, stsd.end);
	at = stsd.end;
	for (size_t i = 1; i < n; i++) {
		memcpy(o + at, (const uint8_t *)v[i].buf + v[i].init->entry_off,
		       v[i].init->entry_len);
		at += v[i].init->entry_len;
	}
	memcpy(o + at, b + stsd.end, v[0].len - stsd.end);
	/* moov down to stsd each hold the new entries. */
	for (int k = 0; k < 6; k++) {
		struct ebox box;
		uint64_t grown;

		if (ebox_at(b, base->path_off[k], v[0].len, &box) < 0)
			return -EBADMSG;
		grown = (uint64_t)(box.end - box.off) + add;
		if (box.large) {
			be32_put(o + box.off + 8, (uint32_t)(grown >> 32));
			be32_put(o + box.off + 12, (uint32_t)grown);
		} else if (grown > UINT32_MAX) {
			return -EFBIG;
		} else {
			be32_put(o + box.off, (uint32_t)grown);
		}
	}
	be32_put(o + stsd.body + 4, base->entries + (uint32_t)(n - 1));
	return (ssize_t)total;
}

/* ---- segments ----------------------------------------------------------- */

/* The new flags of an own-track tfhd, and by how much it grows. */
static size_t
remap_tfhd_flags(const struct ebox *tfhd, const uint8_t *buf, const struct fmp4_remap *m,
		 uint32_t *ret_flags)
{
	const uint32_t own[3] = { m->own->default_sample_duration, m->own->default_sample_size,
				  m->own->default_sample_flags };
	const uint32_t exp[3] = { m->export->default_sample_duration,
				  m->export->default_sample_size, m->export->default_sample_flags };
	uint32_t old = be32_get(buf + tfhd->body) & 0xffffff, flags = old;

	if (m->sample_desc > 0)
		flags |= TFHD_SAMPLE_DESC_INDEX;
	for (int i = 0; i < 3; i++) {
		if (own[i] != exp[i])
			flags |= TFHD_DEFAULT_DURATION << i;
	}
	*ret_flags = flags;
	return 4 * (size_t)(__builtin_popcount(flags & TFHD_FIELDS) -
			    __builtin_popcount(old & TFHD_FIELDS));
}

/* The tfhd of a traf and whether it is the video track's. */
static int
remap_find_tfhd(const uint8_t *buf, const struct ebox *traf, const struct fmp4_remap *m,
		struct ebox *ret, bool *ret_ours)
{
	struct ebox box;

	for (size_t pos = traf->body; pos < traf->end; pos = box.end) {
		if (ebox_at(buf, pos, traf->end, &box) < 0)
			return -EBADMSG;
		if (!ebox_is(&box, "tfhd"))
			continue;
		if (box.end - box.body < 8)
			return -EBADMSG;
		*ret = box;
		*ret_ours = be32_get(buf + box.body + 4) == m->own->track_id;
		return 0;
	}
	return -EBADMSG;
}

static void
remap_tfhd(struct out *o, const uint8_t *buf, const struct ebox *tfhd, const struct fmp4_remap *m)
{
	const uint32_t own[3] = { m->own->default_sample_duration, m->own->default_sample_size,
				  m->own->default_sample_flags };
	const uint8_t *p = buf + tfhd->body;
	uint32_t old = be32_get(p) & 0xffffff, flags, desc = 0;
	size_t grow = remap_tfhd_flags(tfhd, buf, m, &flags), need;

	/* fmp4_parse_segment refused a base-data-offset in the video track. */
	need = 8 + 4 * (size_t)__builtin_popcount(old & TFHD_FIELDS);
	if ((old & TFHD_BASE_DATA_OFFSET) || tfhd->end - tfhd->body < need) {
		o->err = o->err != 0 ? o->err : -EBADMSG;
		return;
	}
	put_header(o, tfhd->large, tfhd->type, tfhd->end - tfhd->off + grow);
	put32(o, (uint32_t)p[0] << 24 | flags);
	put32(o, m->export->track_id);
	p += 8;
	if (old & TFHD_SAMPLE_DESC_INDEX) {
		desc = be32_get(p);
		p += 4;
	}
	if (flags & TFHD_SAMPLE_DESC_INDEX)
		put32(o, m->sample_desc > 0 ? m->sample_desc : desc);
	for (int i = 0; i < 3; i++) {
		if (old & (TFHD_DEFAULT_DURATION << i)) {
			put(o, p, 4);
			p += 4;
		} else if (flags & (TFHD_DEFAULT_DURATION << i)) {
			put32(o, own[i]);
		}
	}
	put(o, p, (size_t)(buf + tfhd->end - p));
}

static void
remap_tfdt(struct out *o, const uint8_t *buf, const struct ebox *tfdt, uint64_t rebase)
{
	const uint8_t *p = buf + tfdt->body;
	size_t width;
	uint64_t v;

	if (tfdt->end - tfdt->body < 8) {
		put_box(o, buf, tfdt);
		return;
	}
	width = p[0] == 1 ? 8 : 4;
	if (tfdt->end - tfdt->body < 4 + width) {
		put_box(o, buf, tfdt);
		return;
	}
	v = width == 8 ? be64_get(p + 4) : be32_get(p + 4);
	v = v >= rebase ? v - rebase : 0;
	put(o, buf + tfdt->off, tfdt->body + 4 - tfdt->off);
	if (width == 8)
		put32(o, (uint32_t)(v >> 32));
	put32(o, (uint32_t)v);
	put(o, p + 4 + width, tfdt->end - tfdt->body - 4 - width);
}

/* A trun whose data offset (from the moof's start) moves by what the moof grew. */
static void
remap_trun(struct out *o, const uint8_t *buf, const struct ebox *trun, size_t grow)
{
	const uint8_t *p = buf + trun->body;
	int64_t off;

	if (grow == 0 || trun->end - trun->body < 12 || !(be32_get(p) & TRUN_DATA_OFFSET)) {
		put_box(o, buf, trun);
		return;
	}
	off = (int64_t)(int32_t)be32_get(p + 8) + (int64_t)grow;
	if (off > INT32_MAX && o->err == 0)
		o->err = -ERANGE;
	put(o, buf + trun->off, trun->body + 8 - trun->off);
	put32(o, (uint32_t)off);
	put(o, p + 12, trun->end - trun->body - 12);
}

static int
remap_traf(struct out *o, const uint8_t *buf, const struct ebox *traf, const struct fmp4_remap *m,
	   size_t moof_grow)
{
	struct ebox tfhd, box;
	uint32_t flags;
	size_t grow = 0;
	bool ours, seen_tfhd = false;
	int r = remap_find_tfhd(buf, traf, m, &tfhd, &ours);

	if (r < 0)
		return r;
	if (ours)
		grow = remap_tfhd_flags(&tfhd, buf, m, &flags);
	put_header(o, traf->large, traf->type, traf->end - traf->off + grow);
	for (size_t pos = traf->body; pos < traf->end; pos = box.end) {
		if (ebox_at(buf, pos, traf->end, &box) < 0)
			return -EBADMSG;
		if (ours && !seen_tfhd && ebox_is(&box, "tfhd")) {
			remap_tfhd(o, buf, &box, m);
			seen_tfhd = true;
		} else if (ours && ebox_is(&box, "tfdt")) {
			remap_tfdt(o, buf, &box, m->rebase);
		} else if (ebox_is(&box, "trun")) {
			remap_trun(o, buf, &box, moof_grow);
		} else {
			put_box(o, buf, &box);
		}
	}
	return 0;
}

static int
remap_moof(struct out *o, const uint8_t *buf, const struct ebox *moof, const struct fmp4_remap *m)
{
	struct ebox box, tfhd;
	size_t grow = 0;
	uint32_t flags;
	bool ours;
	int r;

	/* First what the moof grows by: every trun's data offset moves by it. */
	for (size_t pos = moof->body; pos < moof->end; pos = box.end) {
		if (ebox_at(buf, pos, moof->end, &box) < 0)
			return -EBADMSG;
		if (!ebox_is(&box, "traf"))
			continue;
		r = remap_find_tfhd(buf, &box, m, &tfhd, &ours);
		if (r < 0)
			return r;
		if (ours)
			grow += remap_tfhd_flags(&tfhd, buf, m, &flags);
	}
	put_header(o, moof->large, moof->type, moof->end - moof->off + grow);
	for (size_t pos = moof->body; pos < moof->end; pos = box.end) {
		if (ebox_at(buf, pos, moof->end, &box) < 0)
			return -EBADMSG;
		if (!ebox_is(&box, "traf")) {
			put_box(o, buf, &box);
			continue;
		}
		r = remap_traf(o, buf, &box, m, grow);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
remap_pass(struct out *o, const uint8_t *buf, size_t len, const struct fmp4_remap *m, bool grown)
{
	struct ebox box;
	int r = 0;

	for (size_t pos = 0; pos < len && r == 0; pos = box.end) {
		if (ebox_at(buf, pos, len, &box) < 0)
			return -EBADMSG;
		if (ebox_is(&box, "moof")) {
			r = remap_moof(o, buf, &box, m);
		} else if (grown && ebox_is(&box, "sidx")) {
			put_header(o, box.large, (const uint8_t *)"free", box.end - box.off);
			put(o, buf + box.body, box.end - box.body);
		} else {
			put_box(o, buf, &box);
		}
	}
	return r < 0 ? r : o->err;
}

ssize_t
fmp4_remap(const void *buf, size_t len, const struct fmp4_remap *m, void *out, size_t size)
{
	struct fmp4_seg seg;
	struct out measure = { 0 }, o = { .p = out, .size = size };
	int r;

	if (fmp4_parse_segment(buf, len, m->own, &seg, NULL, 0) < 0)
		return -EBADMSG;
	r = remap_pass(&measure, buf, len, m, false);
	if (r < 0)
		return r;
	if (out == NULL)
		return (ssize_t)measure.len;
	if (size < measure.len)
		return -ENOBUFS;
	r = remap_pass(&o, buf, len, m, measure.len != len);
	return r < 0 ? r : (ssize_t)o.len;
}
