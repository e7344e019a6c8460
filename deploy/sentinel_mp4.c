/* sentinel_mp4: rewrites the avcC of the init segment mp4mux wrote when the
 * encoder's SPS changes (mp4mux keeps its moov; the sentinel sends a new init).
 * Cutting the stream is common/mp4split.c's job and reading init and segments
 * common/fmp4.c's; this only walks the few boxes on the way to the avcC, whose
 * init fmp4_parse_init() has accepted. Plain C: runs in the muxer's streaming
 * thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "sentinel.h"

/* VisualSampleEntry fields before its child boxes (ISO 14496-12 12.1.3). */
#define SNT_MP4_VISUAL_ENTRY 78

struct snt_mp4_box {
	size_t off;  /* of the header */
	size_t body; /* of the content */
	size_t end;  /* one past the box */
	char type[5];
};

/* The header of the box at off, which must lie within [off, end): 0, -EBADMSG. */
static int
snt_mp4_box_at(const uint8_t *buf, size_t end, size_t off, struct snt_mp4_box *ret)
{
	uint64_t size;
	size_t hdr = 8;

	if (end - off < 8)
		return -EBADMSG;
	size = be32_get(buf + off);
	if (size == 1) {
		if (end - off < 16)
			return -EBADMSG;
		size = be64_get(buf + off + 8);
		hdr = 16;
	} else if (size == 0) {
		size = end - off; /* to the end of the parent */
	}
	if (size < hdr || size > end - off)
		return -EBADMSG;
	ret->off = off;
	ret->body = off + hdr;
	ret->end = off + (size_t)size;
	memcpy(ret->type, buf + off + 4, 4);
	ret->type[4] = '\0';
	return 0;
}

/* The first child of type within [from, end); -ENOENT, -EBADMSG. */
static int
snt_mp4_child(const uint8_t *buf, size_t from, size_t end, const char *type,
	      struct snt_mp4_box *ret)
{
	struct snt_mp4_box b;
	int r;

	for (size_t off = from; off < end; off = b.end) {
		r = snt_mp4_box_at(buf, end, off, &b);
		if (r < 0)
			return r;
		if (memcmp(b.type, type, 4) == 0) {
			*ret = b;
			return 0;
		}
	}
	return -ENOENT;
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
		int64_t size = be32_get(init + b[i].off);

		if (b[i].body - b[i].off != 8 || size + delta > UINT32_MAX || size + delta < 8)
			return -EBADMSG;
	}
	new_len = (size_t)((int64_t)len + delta);
	out = malloc(new_len);
	if (out == NULL)
		return -ENOMEM;
	memcpy(out, init, old->off);
	be32_put(out + old->off, (uint32_t)(avcc_len + 8));
	memcpy(out + old->off + 4, "avcC", 4);
	memcpy(out + old->off + 8, avcc, avcc_len);
	memcpy(out + old->off + 8 + avcc_len, init + old->end, len - old->end);
	/* The ancestors all start before the avcC, at the same offsets as in init. */
	for (size_t i = 0; i < 7; i++)
		be32_put(out + b[i].off, (uint32_t)((int64_t)be32_get(init + b[i].off) + delta));
	*ret_init = out;
	*ret_len = new_len;
	return 0;
}
