/* mjpeg_dec: the decoders behind live.mjpeg (mjpeg.c). One worker thread owns
 * every GStreamer pipeline: for each watched sentinel it feeds the segments
 * of one session from the ring (from the newest join point on) into one
 * decoder, and per distinct width one encoder makes JPEGs of the pictures
 * that width needs:
 *
 *   ring --worker--> appsrc ! qtdemux ! h264parse ! avdec_h264 ! appsink
 *                      (decoder thread: per width, keep a picture when its
 *                       interval has passed; wait until it is due; hand it on)
 *          --> per width: appsrc ! videoscale ! videoconvert ! jpegenc ! appsink
 *                      (encoder thread: the JPEG replaces the newest of its
 *                       width, the loop is woken)
 *
 * Pictures are due at the time their segment was published plus their offset
 * in it, so a burst of a second's pictures leaves at the pace it was filmed
 * and the delay stays about one segment. Only the newest JPEG per width waits
 * for the loop; nothing queues. A decoder that fails is started again at the
 * newest join point after 1 s, then up to 10 s.
 *
 * mjpeg_dec_set, _take and _stats belong to the loop thread; wake() is called
 * from the encoders' threads and must be safe from any thread (hs_wake).
 * Files: mjpeg_dec.c the worker and this API, mjpeg_pipe.c the pipelines,
 * mjpeg_dec_internal.h what they share. */
#ifndef VIGIL_MJPEG_DEC_H
#define VIGIL_MJPEG_DEC_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "httpd.h"

#define MJPEG_DEC_SLOTS  8 /* sentinels decoded at once */
#define MJPEG_DEC_WIDTHS 4 /* distinct widths per sentinel */

struct mjpeg_dec;

/* Keeping one picture in N by stream time, for a width (decoder thread) and
 * for a client (loop thread): a picture is taken when its interval has
 * passed, with an eighth of it to spare for jitter; the next is due an
 * interval after the last due time, so that the rate holds over time
 * whatever the source's rate. A picture before the last one taken is a jump
 * back in the stream: taken, and the count starts again there. */
struct mjpeg_pace {
	int64_t interval_us;
	int64_t next, last; /* INT64_MIN before the first */
};

static inline bool
mjpeg_pace_due(const struct mjpeg_pace *p, int64_t pts)
{
	return pts + p->interval_us / 8 >= p->next || pts < p->last;
}

static inline void
mjpeg_pace_take(struct mjpeg_pace *p, int64_t pts)
{
	if (p->next == INT64_MIN || pts < p->last)
		p->next = pts;
	p->next += p->interval_us;
	if (p->next <= pts)
		p->next = pts + p->interval_us; /* more than an interval behind */
	p->last = pts;
}

/* What a slot decodes (loop thread -> worker). */
struct mjpeg_dec_want {
	uint32_t ring_slot;  /* the sentinel's entry in the ring's table */
	uint8_t session[16]; /* only segments of this session are decoded */
	struct {
		bool on;
		int width;           /* 0: the video's own */
		int64_t interval_us; /* the shortest any client of this width asked for */
	} w[MJPEG_DEC_WIDTHS];
};

/* The newest JPEG of a width since the last take (worker -> loop thread). */
struct mjpeg_dec_frame {
	struct hbuf *jpeg;   /* NULL: nothing new; else the taker owns it */
	uint8_t session[16]; /* what it was made from: a slot given to another */
	uint32_t ring_slot;  /* sentinel, or a new session, must not show it */
	int width;           /* the want's width it was made for (0: the video's own) */
	int out_width, out_height;
	int64_t pts_us; /* the picture's time in the stream */
};

struct mjpeg_dec_stats {
	uint64_t decoders; /* pipelines running now */
	uint64_t encoders;
	uint64_t starts, errors, jpegs;
};

#ifdef VIGIL_HAVE_SNAPSHOT
/* Starts the worker thread on the ring. NULL with errno. */
struct mjpeg_dec *mjpeg_dec_new(const struct ring *ring, void (*wake)(void *ctx), void *ctx);
/* Stops every pipeline and the worker (joins them); JPEGs not taken are freed. */
void mjpeg_dec_free(struct mjpeg_dec *d);
/* Slot i (< MJPEG_DEC_SLOTS) decodes what want says from now on; NULL stops
 * it. The worker picks a change up within MJPEG_DEC_POLL_MS. */
void mjpeg_dec_set(struct mjpeg_dec *d, int i, const struct mjpeg_dec_want *want);
void mjpeg_dec_take(struct mjpeg_dec *d, int i, struct mjpeg_dec_frame ret[MJPEG_DEC_WIDTHS]);
void mjpeg_dec_stats(struct mjpeg_dec *d, struct mjpeg_dec_stats *ret);

#else
/* Built without GStreamer (httpd/meson.build): no decoder, live.mjpeg is 503. */
static inline struct mjpeg_dec *
mjpeg_dec_new(const struct ring *ring, void (*wake)(void *ctx), void *ctx)
{
	errno = ENOTSUP;
	return NULL;
}
static inline void
mjpeg_dec_free(struct mjpeg_dec *d)
{
}
static inline void
mjpeg_dec_set(struct mjpeg_dec *d, int i, const struct mjpeg_dec_want *want)
{
}
static inline void
mjpeg_dec_take(struct mjpeg_dec *d, int i, struct mjpeg_dec_frame ret[MJPEG_DEC_WIDTHS])
{
}
static inline void
mjpeg_dec_stats(struct mjpeg_dec *d, struct mjpeg_dec_stats *ret)
{
}
#endif

#define MJPEG_DEC_POLL_MS 100

#endif
