/* mp4split: top-level box splitter for muxer output. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "mp4split.h"

struct mp4split {
	uint8_t *buf;
	size_t len, cap, max;
	size_t unit_start; /* where the unit being collected begins in buf */
	bool in_init;
	bool in_segment; /* the unit has a complete moof, its mdat is still to come */
};

struct mp4split *
mp4split_new(size_t max)
{
	struct mp4split *sp = calloc(1, sizeof(*sp));

	if (sp == NULL)
		return NULL;
	sp->max = max;
	return sp;
}

void
mp4split_free(struct mp4split *sp)
{
	if (sp == NULL)
		return;
	free(sp->buf);
	free(sp);
}

/* The size of the box at p, 0 while its header is incomplete, -EBADMSG if impossible. */
static int64_t
mp4split_box_size(const uint8_t *p, size_t avail)
{
	uint64_t size;

	if (avail < 8)
		return 0;
	size = be32_get(p);
	if (size == 1) {
		if (avail < 16)
			return 0;
		size = (uint64_t)be32_get(p + 8) << 32 | be32_get(p + 12);
		if (size < 16)
			return -EBADMSG;
	} else if (size < 8) {
		/* 0 ("to the end of the file") cannot be cut out of a live stream */
		return -EBADMSG;
	}
	return size > INT64_MAX ? -EBADMSG : (int64_t)size;
}

static void
mp4split_reset(struct mp4split *sp)
{
	sp->len = 0;
	sp->unit_start = 0;
	sp->in_init = false;
	sp->in_segment = false;
}

/* Handles the complete box at off (of size size). The boxes of the unit being
 * collected are walked again on every feed, so this must be idempotent. */
static void
mp4split_box(struct mp4split *sp, size_t off, size_t size, mp4split_fn fn, void *ctx)
{
	const uint8_t *type = sp->buf + off + 4;

	if (memcmp(type, "ftyp", 4) == 0) {
		sp->unit_start = off;
		sp->in_init = true;
		sp->in_segment = false;
	} else if (memcmp(type, "moof", 4) == 0 && !sp->in_init) {
		sp->in_segment = true;
	} else if (memcmp(type, "moov", 4) == 0 && sp->in_init) {
		fn(ctx, true, sp->buf + sp->unit_start, off + size - sp->unit_start);
		sp->unit_start = off + size;
		sp->in_init = false;
	} else if (memcmp(type, "mdat", 4) == 0 && !sp->in_init) {
		sp->in_segment = false;
		fn(ctx, false, sp->buf + sp->unit_start, off + size - sp->unit_start);
		sp->unit_start = off + size;
	}
	/* styp, sidx, free...: part of the unit being collected */
}

int
mp4split_feed(struct mp4split *sp, const void *data, size_t len, mp4split_fn fn, void *ctx)
{
	size_t off = 0;

	if (sp->len + len > sp->cap) {
		size_t cap = sp->cap < 65536 ? 65536 : sp->cap;
		uint8_t *buf;

		while (cap < sp->len + len)
			cap *= 2;
		buf = realloc(sp->buf, cap);
		if (buf == NULL) {
			mp4split_reset(sp);
			return -ENOMEM;
		}
		sp->buf = buf;
		sp->cap = cap;
	}
	memcpy(sp->buf + sp->len, data, len);
	sp->len += len;
	/* Walk the complete boxes from the start of the unit being collected. */
	off = sp->unit_start;
	for (;;) {
		int64_t size = mp4split_box_size(sp->buf + off, sp->len - off);

		if (size < 0) {
			mp4split_reset(sp);
			return -EBADMSG;
		}
		/* The unit so far with this box, complete or not, must fit in max. */
		if (off - sp->unit_start + (size > 0 ? (uint64_t)size : 0) > sp->max) {
			mp4split_reset(sp);
			return -EMSGSIZE;
		}
		if (size == 0 || (uint64_t)size > sp->len - off)
			break;
		mp4split_box(sp, off, (size_t)size, fn, ctx);
		off += (size_t)size;
	}
	/* Keep only the unit in progress. */
	if (sp->unit_start > 0) {
		memmove(sp->buf, sp->buf + sp->unit_start, sp->len - sp->unit_start);
		sp->len -= sp->unit_start;
		sp->unit_start = 0;
	}
	return 0;
}

bool
mp4split_in_segment(const struct mp4split *sp)
{
	return sp->in_segment;
}
