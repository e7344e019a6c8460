/* jpeg_clock: frame timestamps for legacy JPEG batches (the rules are in
 * jpeg_clock.h). Pure arithmetic on integers; every value from the wire is
 * bounded before it is scaled to nanoseconds, so a hostile timestamp cannot
 * overflow. Runs in ingest's service thread. */
#include <string.h>

#include "jpeg_clock.h"

#define MS_NS 1000000ll

static bool
clock_valid(int64_t ms)
{
	return ms >= 0 && ms <= JPEG_CLOCK_TS_MAX_MS;
}

void
jpeg_clock_init(struct jpeg_clock *c, int64_t sent_ms, int64_t rx_ms)
{
	memset(c, 0, sizeof(*c));
	c->prev_ms = -1;
	if (!clock_valid(rx_ms))
		rx_ms = 0;
	if (clock_valid(sent_ms)) {
		c->prev_ms = sent_ms;
		c->has_sent = true;
		c->last_sent_ms = sent_ms;
		c->changed_rx_ms = rx_ms;
		c->skew_ms = sent_ms - rx_ms;
	} else {
		/* Without a timestamp the session starts on the server's clock,
		 * which is what batches without one will use too. */
		c->prev_ms = rx_ms;
	}
}

/* The batch's time on the sentinel's clock. A timestamp that has not changed
 * for JPEG_CLOCK_STUCK_MS of the server's time is stuck (a sentinel that
 * sends a constant, such as the seed's example): such a batch is placed like
 * one without a timestamp. A repeat within that time is whole seconds at work. */
static int64_t
clock_when(struct jpeg_clock *c, int64_t sent_ms, int64_t rx_ms)
{
	int64_t t;

	if (!clock_valid(rx_ms))
		rx_ms = 0;
	if (clock_valid(sent_ms)) {
		if (!c->has_sent || sent_ms != c->last_sent_ms) {
			c->has_sent = true;
			c->last_sent_ms = sent_ms;
			c->changed_rx_ms = rx_ms;
			c->skew_ms = sent_ms - rx_ms;
			return sent_ms;
		}
		if (rx_ms - c->changed_rx_ms <= JPEG_CLOCK_STUCK_MS)
			return sent_ms;
		c->stuck++;
	}
	t = rx_ms + c->skew_ms;
	return t < 0 ? 0 : t > JPEG_CLOCK_TS_MAX_MS ? JPEG_CLOCK_TS_MAX_MS : t;
}

/* Adds t to the window and estimates the interval from it. Timestamps of
 * whole seconds make single intervals of 0 or 2 s out of 1 s ones; the mean
 * over the window is off by at most a second over all of it. */
static void
clock_push(struct jpeg_clock *c, int64_t t)
{
	int64_t span;

	if (c->n_win == JPEG_CLOCK_WINDOW + 1) {
		memmove(c->win, c->win + 1, JPEG_CLOCK_WINDOW * sizeof(c->win[0]));
		c->n_win--;
	}
	c->win[c->n_win++] = t;
	span = c->win[c->n_win - 1] - c->win[0];
	/* No time passed over the window (a stuck clock, batches within one
	 * second): the estimate stays. */
	if (span <= 0)
		return;
	if (span > (int64_t)(c->n_win - 1) * JPEG_CLOCK_SPAN_MAX_MS)
		span = (int64_t)(c->n_win - 1) * JPEG_CLOCK_SPAN_MAX_MS;
	c->interval_ns = span * MS_NS / (int64_t)(c->n_win - 1);
}

void
jpeg_clock_batch(struct jpeg_clock *c, int64_t sent_ms, int64_t rx_ms, uint32_t n,
		 struct jpeg_span *ret)
{
	int64_t t = clock_when(c, sent_ms, rx_ms), room_ms, room_ns, covered, dur;
	bool jumped = false;

	if (n == 0)
		n = 1;
	if (!c->started) {
		/* The first batch covers the time since the register, if that
		 * is a plausible interval (whole seconds cannot say less than
		 * one), else one second. */
		int64_t first = t - c->prev_ms;

		if (c->prev_ms < 0 || first < 1000 || first > JPEG_CLOCK_SPAN_MAX_MS)
			first = JPEG_CLOCK_FIRST_MS;
		c->origin_ms = c->off_ms = t - first;
		c->end_ns = 0;
		c->interval_ns = first * MS_NS;
		c->win[0] = t - first;
		c->n_win = 1;
		c->started = true;
	}
	/* Compared in ms first: only a bounded difference is scaled to ns. */
	room_ms = (t - c->off_ms) - c->end_ns / MS_NS;
	if (t - c->win[c->n_win - 1] > JPEG_CLOCK_SPAN_MAX_MS || room_ms > JPEG_CLOCK_LAG_MAX_MS ||
	    room_ms < -JPEG_CLOCK_LEAD_MAX_MS) {
		/* A jump: the batch covers the estimated interval and ends at t;
		 * the window restarts there so that the jump is not averaged in. */
		c->off_ms = t - (c->end_ns + c->interval_ns) / MS_NS;
		c->win[0] = t - c->interval_ns / MS_NS;
		c->n_win = 1;
		c->jumps++;
		jumped = true;
	}
	clock_push(c, t);
	room_ns = (t - c->off_ms) * MS_NS - c->end_ns;
	covered = c->interval_ns + (room_ns - c->interval_ns) / JPEG_CLOCK_GAIN;
	if (covered < c->interval_ns / 2)
		covered = c->interval_ns / 2;
	if (covered > c->interval_ns * 2)
		covered = c->interval_ns * 2;
	dur = covered / (int64_t)n;
	if (dur < JPEG_CLOCK_FRAME_MIN_NS)
		dur = JPEG_CLOCK_FRAME_MIN_NS;
	ret->pts_ns = c->end_ns;
	ret->dur_ns = dur;
	ret->jumped = jumped;
	c->end_ns += dur * (int64_t)n;
}

int64_t
jpeg_clock_origin_ms(const struct jpeg_clock *c)
{
	return c->origin_ms;
}
