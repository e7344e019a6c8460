/* mp4split: cuts a fragmented-MP4 byte stream (as a muxer writes it) into the
 * units vigil sends: the init segment (ftyp .. moov) and media segments (each
 * moof + its mdat, with any styp/sidx/prft/free boxes before the moof). It
 * only reads box headers; fmp4.c validates the units. */
#ifndef VIGIL_MP4SPLIT_H
#define VIGIL_MP4SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mp4split;

/* Called for each complete unit; data is valid only during the call. */
typedef void (*mp4split_fn)(void *ctx, bool is_init, const uint8_t *data, size_t len);

/* max: the largest unit accepted (a larger box is an error). NULL with errno. */
struct mp4split *mp4split_new(size_t max);
void mp4split_free(struct mp4split *sp);
/* -EBADMSG on a box header that cannot be right, -EMSGSIZE past max, -ENOMEM;
 * the splitter is then reset: what is fed next is read from a box header on,
 * so a caller that cannot restart its muxer should drop it. */
int mp4split_feed(struct mp4split *sp, const void *data, size_t len, mp4split_fn fn, void *ctx);
/* True from the end of a media segment's moof until its mdat is complete: the
 * bytes fed meanwhile are that segment's samples (a muxer's buffers then carry
 * their timestamps). */
bool mp4split_in_segment(const struct mp4split *sp);

#endif
