/* jpeg_clock: when the frames of a legacy sentinel's sentinel.frame batches
 * were taken, for the H.264 stream ingest makes of them. A batch carries the
 * envelope's timestamp (whole unix seconds, when it was sent) and the frames
 * made since the previous batch; the clock spreads each batch's frames evenly
 * over the time it covers, so that the recording plays at the speed it was
 * filmed. No GStreamer here: jpeg.c turns the answers into buffer timestamps.
 *
 * The model (docs/protocol.md, "Legacy JPEG sentinels"): a sentinel sends a
 * batch every interval (seed 000: "every couple of seconds"; vigil-sentinel:
 * every second). Timestamps are whole seconds, so one batch's interval read
 * from them is off by up to a second either way (a 1 s batch reads 0 or 2 s
 * now and then). The clock therefore estimates the interval over the last
 * JPEG_CLOCK_WINDOW batches, and lets the stream follow the sentinel's
 * timestamps through a gentle correction:
 *
 *   interval = mean of the last batches' intervals (the window)
 *   room     = this batch's timestamp - where the stream ends, both as media time
 *   covered  = interval + (room - interval) / JPEG_CLOCK_GAIN,
 *              within [interval / 2, 2 * interval]
 *   frame    = covered / frames, at least JPEG_CLOCK_FRAME_MIN_NS
 *
 * With timestamps exactly one interval apart, covered is the interval and the
 * frames last interval / n; a changed frame rate shows at once (n changes, the
 * interval does not). Frame durations are never zero and timestamps always
 * increase, whatever the input.
 *
 * A jump: a batch more than JPEG_CLOCK_SPAN_MAX_MS after the previous one (a
 * clock stepped forward, a sentinel that paused), the stream more than
 * JPEG_CLOCK_LEAD_MAX_MS ahead of the batch (a clock stepped back) or more
 * than JPEG_CLOCK_LAG_MAX_MS behind it. Such a batch covers the estimated
 * interval and the clock measures from its timestamp on: the stream never
 * gets a hole, nor a frame of an hour.
 *
 * A batch without a timestamp is placed at its arrival time (the server's
 * clock) moved by the difference between the two clocks seen last; so is one
 * whose timestamp has not changed for JPEG_CLOCK_STUCK_MS of arrivals (a
 * stuck clock, or a constant such as the seed's example).
 *
 * Segments' startTime is origin + their media time: it follows the
 * sentinel's clock until a jump and is never moved back by one.
 */
#ifndef VIGIL_JPEG_CLOCK_H
#define VIGIL_JPEG_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define JPEG_CLOCK_WINDOW       16        /* batch intervals in the estimate */
#define JPEG_CLOCK_GAIN         8         /* an eighth of the drift is made good per batch */
#define JPEG_CLOCK_SPAN_MAX_MS  10000     /* the longest interval a batch may cover */
#define JPEG_CLOCK_LEAD_MAX_MS  3000      /* the furthest the stream may run ahead */
#define JPEG_CLOCK_LAG_MAX_MS   60000     /* the furthest it may fall behind */
#define JPEG_CLOCK_FIRST_MS     1000      /* the first batch's interval when nothing tells */
#define JPEG_CLOCK_STUCK_MS     2000      /* a timestamp unchanged for longer is stuck */
#define JPEG_CLOCK_FRAME_MIN_NS 1000000ll /* 1 ms */
/* Timestamps outside [0, this] (unix ms, the year 5138) are taken as absent. */
#define JPEG_CLOCK_TS_MAX_MS 100000000000000ll

struct jpeg_clock {
	bool started;
	bool has_sent;
	int64_t last_sent_ms;  /* the last timestamp seen */
	int64_t changed_rx_ms; /* when it changed, on the server's clock */
	int64_t skew_ms;       /* sentinel's clock - server's clock, then */
	int64_t prev_ms;   /* the session's start in the sentinel's clock, before the first batch */
	int64_t origin_ms; /* the sentinel's time at media time 0: fixed */
	int64_t off_ms;    /* the sentinel's time at media time 0 as of now: moves at jumps */
	int64_t end_ns;    /* media time where the next batch begins */
	int64_t interval_ns;
	/* the last batches' timestamps (sentinel's clock, ms), oldest first */
	int64_t win[JPEG_CLOCK_WINDOW + 1];
	unsigned n_win;
	uint64_t jumps, stuck; /* batches that were a jump, or had a stuck timestamp */
};

/* Where one batch's frames go: the first at pts_ns, each lasting dur_ns. */
struct jpeg_span {
	int64_t pts_ns;
	int64_t dur_ns;
	bool jumped; /* the batch did not fit the clock: see the header */
};

/* A new session. sent_ms: the register's timestamp (unix ms), -1 without one;
 * rx_ms: when it arrived (unix ms, the server's clock). */
void jpeg_clock_init(struct jpeg_clock *c, int64_t sent_ms, int64_t rx_ms);

/* A batch of n >= 1 frames sent at sent_ms (unix ms, -1 without a timestamp)
 * that arrived at rx_ms. */
void jpeg_clock_batch(struct jpeg_clock *c, int64_t sent_ms, int64_t rx_ms, uint32_t n,
		      struct jpeg_span *ret);

/* The sentinel's time (unix ms) at media time 0; valid after the first batch. */
int64_t jpeg_clock_origin_ms(const struct jpeg_clock *c);

#endif
