/* mjpeg_dec_internal: what mjpeg_dec.c (the worker: wants, the ring, the
 * loop's side) and mjpeg_pipe.c (the decoder and encoder pipelines and their
 * threads) share. Private to the mjpeg_dec module; see mjpeg_dec.h.
 *
 * Locks: d->lock guards what the loop and the worker exchange (wants, the
 * newest JPEGs, the figures); each slot's lock guards what its decoder thread
 * shares with the worker (encoders, segment times, errors, stopping). No lock
 * is held across a state change, which joins streaming threads that may be
 * waiting for one of them. */
#ifndef VIGIL_MJPEG_DEC_INTERNAL_H
#define VIGIL_MJPEG_DEC_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <gst/gst.h>

#include "fmp4.h"
#include "mjpeg_dec.h"

#define MJD_RECS      16            /* segment times kept per decoder */
#define MJD_LATE_US   200000        /* a picture this late is skipped, */
#define MJD_LATE_KEEP 1000000       /* unless none passed for this long */
#define MJD_AHEAD_US  3000000       /* a picture due later than this: a clock jump */
#define MJD_BACKLOG   (16ull << 20) /* bytes waiting for the demuxer: behind, restart; */
#define MJD_BEHIND_US 4000000       /* so is this much stream time not yet decoded */
#define MJD_RETRY_US  1000000       /* first restart delay after a failure, */
#define MJD_RETRY_MAX 10000000      /* doubling up to this, */
#define MJD_STABLE_US 30000000      /* and back to the first after this long running */

struct mjd_slot;

/* One width: its pipeline and the decoder thread's 1-in-N choice. */
struct mjd_enc {
	struct mjd_slot *slot;
	int k;
	int width; /* as wanted; 0: the video's own */
	GstElement *pipe, *src;
	struct mjpeg_pace pace;
};

/* When a segment was published and where it starts in the stream. */
struct mjd_rec {
	int64_t start_us, end_us; /* stream time, as qtdemux stamps pictures */
	int64_t published_mono_us;
};

/* A slot: one watched sentinel's decoder, its encoders, and what the loop
 * wants of it. */
struct mjd_slot {
	struct mjpeg_dec *d;
	int index;
	/* loop <-> worker, under d->lock */
	bool want_on;
	struct mjpeg_dec_want want;
	uint64_t want_gen;
	struct mjpeg_dec_frame out[MJPEG_DEC_WIDTHS];
	/* worker only */
	bool running;
	uint64_t applied_gen;
	uint32_t ring_slot, init_gen;
	uint8_t session[16];
	struct fmp4_init init;
	uint64_t cursor;
	bool need_key;
	int64_t retry_at_us, retry_us, started_us;
	GstElement *pipe, *src;
	/* worker <-> decoder thread, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC: a picture's due time, or stopping */
	bool stopping;
	int err;
	char why[200];
	struct mjd_enc *enc[MJPEG_DEC_WIDTHS];
	struct mjd_rec rec[MJD_RECS];
	unsigned n_rec;
	int64_t last_pass_us;
	int64_t decoded_pts; /* the last picture out of the decoder */
};

/* The worker and its slots. */
struct mjpeg_dec {
	const struct ring *ring;
	void (*wake)(void *ctx);
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* wants changed, or stop */
	bool stop, kick;
	struct mjpeg_dec_stats stats;
	unsigned char *init_buf;
	size_t init_max;
	struct mjd_slot slot[MJPEG_DEC_SLOTS];
};

/* mjpeg_pipe.c, worker thread. */
/* The decoder for the want's session, fed from its newest join point of the
 * current init (or from the next one). -EAGAIN: not possible yet (the ring
 * does not show that session), else a failure to retry later. */
int mjd_start(struct mjpeg_dec *d, struct mjd_slot *s, const struct mjpeg_dec_want *want);
/* Stops the decoder and its encoders (joins their threads); not-taken JPEGs go. */
void mjd_stop(struct mjpeg_dec *d, struct mjd_slot *s);
/* Makes the slot's encoders what the want says: a width that changed gets a
 * new pipeline, an interval is just updated. */
void mjd_sync_encoders(struct mjpeg_dec *d, struct mjd_slot *s, const struct mjpeg_dec_want *want);

#endif
