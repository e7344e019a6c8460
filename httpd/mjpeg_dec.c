/* mjpeg_dec: live.mjpeg's worker thread (see mjpeg_dec.h): the wants the loop
 * sets, the ring's segments of each watched session into its decoder, the
 * restarts, and the loop's side of the exchange. The pipelines themselves are
 * mjpeg_pipe.c's. Worker thread unless a function says otherwise. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include "log.h"
#include "mjpeg_dec_internal.h"
#include "proc.h"

static int64_t
mjd_us(int64_t v, uint32_t timescale)
{
	/* v * 1e6 / timescale without overflow for tfdt values of any size */
	return (int64_t)((uint64_t)v / timescale * 1000000 +
			 (uint64_t)v % timescale * 1000000 / timescale);
}

/* One segment out of the ring into the decoder: copied, confirmed intact,
 * parsed by common/fmp4 before GStreamer sees it, its times recorded for the
 * decoder thread. -ESTALE: overrun; -EBADMSG: refused. */
static int
mjd_push(struct mjpeg_dec *d, struct mjd_slot *s, const struct ring_seg *m, const void *data)
{
	GstBuffer *buf = gst_buffer_new_allocate(NULL, m->len, NULL);
	int64_t now = proc_mono_us(), age = proc_unix_us() - m->publish_us;
	char err[160];
	struct fmp4_seg fs;
	struct mjd_rec *rc;
	GstMapInfo map;

	if (buf == NULL || !gst_buffer_map(buf, &map, GST_MAP_WRITE)) {
		if (buf != NULL)
			gst_buffer_unref(buf);
		return -ENOMEM;
	}
	memcpy(map.data, data, m->len);
	if (ring_check(d->ring, m) < 0) {
		gst_buffer_unmap(buf, &map);
		gst_buffer_unref(buf);
		return -ESTALE;
	}
	if (fmp4_parse_segment(map.data, map.size, &s->init, &fs, err, sizeof(err)) < 0) {
		log_debug("mjpeg: segment %lld refused: %s", (long long)m->sequence, err);
		gst_buffer_unmap(buf, &map);
		gst_buffer_unref(buf);
		return -EBADMSG;
	}
	gst_buffer_unmap(buf, &map);
	if (fs.has_decode_time) {
		pthread_mutex_lock(&s->lock);
		rc = &s->rec[s->n_rec++ % MJD_RECS];
		rc->start_us = mjd_us((int64_t)fs.decode_time, s->init.timescale);
		rc->end_us = rc->start_us + mjd_us((int64_t)fs.duration, s->init.timescale);
		rc->published_mono_us = now - (age > 0 ? age : 0);
		pthread_mutex_unlock(&s->lock);
	}
	return gst_app_src_push_buffer(GST_APP_SRC(s->src), buf) == GST_FLOW_OK ? 0 : -EIO;
}

/* Whether the decoder is more than MJD_BEHIND_US behind what was pushed,
 * beyond the two segments it may rightly hold (the one it paces, the next);
 * known when segments carry tfdt and a picture came out. */
static bool
mjd_behind(struct mjd_slot *s)
{
	const struct mjd_rec *rc;
	bool behind = false;

	pthread_mutex_lock(&s->lock);
	if (s->n_rec > 0 && s->decoded_pts != INT64_MIN) {
		rc = &s->rec[(s->n_rec - 1) % MJD_RECS];
		behind = rc->end_us - s->decoded_pts >
			 MJD_BEHIND_US + 2 * (rc->end_us - rc->start_us);
	}
	pthread_mutex_unlock(&s->lock);
	return behind;
}

/* Every new segment of the slot's session since the last round. A new init
 * generation, or a decoder that fell far behind, restarts it (false). */
static bool
mjd_feed(struct mjpeg_dec *d, struct mjd_slot *s)
{
	uint64_t head = ring_head(d->ring), tail = ring_tail(d->ring);
	guint64 level = gst_app_src_get_current_level_bytes(GST_APP_SRC(s->src));

	if (s->cursor < tail) {
		s->cursor = tail; /* lapped: the stream goes on at the next join point */
		s->need_key = true;
	}
	for (; s->cursor < head; s->cursor++) {
		const void *data;
		struct ring_seg m;
		int r = ring_peek(d->ring, s->cursor, &m, &data);

		if (r == -EAGAIN)
			break;
		if (r < 0) {
			s->need_key = true;
			continue;
		}
		if (m.sentinel != s->ring_slot || memcmp(m.session, s->session, 16) != 0)
			continue;
		if (m.init_gen != s->init_gen) {
			log_debug("mjpeg: new init for slot %d: decoder restarts", s->index);
			return false;
		}
		if (s->need_key && (m.flags & RING_SEG_KEYFRAME) == 0)
			continue;
		if (level > MJD_BACKLOG || mjd_behind(s)) {
			log_warn(0, "mjpeg: the decoder of slot %d fell behind: restarted",
				 s->index);
			return false;
		}
		r = mjd_push(d, s, &m, data);
		if (r == -EIO)
			return false;
		s->need_key = r < 0;
		level += r == 0 ? m.len : 0;
	}
	return true;
}

/* One round for a slot; true while it is wanted. */
static bool
mjd_round(struct mjpeg_dec *d, struct mjd_slot *s, bool on, const struct mjpeg_dec_want *want,
	  uint64_t gen)
{
	int64_t now = proc_mono_us();
	char why[200];
	int err;
	int r;

	if (!on) {
		mjd_stop(d, s);
		s->retry_at_us = 0;
		s->retry_us = 0;
		return false;
	}
	if (s->running &&
	    (want->ring_slot != s->ring_slot || memcmp(want->session, s->session, 16) != 0))
		mjd_stop(d, s); /* a new session */
	pthread_mutex_lock(&s->lock);
	err = s->err;
	snprintf(why, sizeof(why), "%s", s->why);
	pthread_mutex_unlock(&s->lock);
	if (s->running && err < 0) {
		log_warn(err, "mjpeg: decoder of slot %d failed (%s): restarts", s->index, why);
		mjd_stop(d, s);
		s->retry_us = s->retry_us == 0 ? MJD_RETRY_US : s->retry_us * 2;
		if (s->retry_us > MJD_RETRY_MAX)
			s->retry_us = MJD_RETRY_MAX;
		s->retry_at_us = now + s->retry_us;
		pthread_mutex_lock(&d->lock);
		d->stats.errors++;
		pthread_mutex_unlock(&d->lock);
	}
	if (!s->running && now >= s->retry_at_us) {
		r = mjd_start(d, s, want);
		s->started_us = now;
		if (r < 0 && r != -EAGAIN) {
			log_warn(r, "mjpeg: decoder of slot %d not started", s->index);
			s->retry_us = s->retry_us == 0 ? MJD_RETRY_US : s->retry_us * 2;
			if (s->retry_us > MJD_RETRY_MAX)
				s->retry_us = MJD_RETRY_MAX;
			s->retry_at_us = now + s->retry_us;
		}
		s->applied_gen = 0;
	}
	if (!s->running)
		return true;
	if (s->retry_us != 0 && now - s->started_us > MJD_STABLE_US)
		s->retry_us = 0; /* it ran well: a failure later is a first one again */
	if (s->applied_gen != gen) {
		mjd_sync_encoders(d, s, want);
		s->applied_gen = gen;
	}
	if (!mjd_feed(d, s))
		mjd_stop(d, s); /* started again next round */
	return true;
}

static void *
mjd_worker(void *arg)
{
	struct mjpeg_dec *d = arg;
	struct mjpeg_dec_want want[MJPEG_DEC_SLOTS];
	bool on[MJPEG_DEC_SLOTS];
	uint64_t gen[MJPEG_DEC_SLOTS];

	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		uint64_t head;
		bool active = false;

		for (int i = 0; i < MJPEG_DEC_SLOTS; i++) {
			on[i] = d->slot[i].want_on;
			want[i] = d->slot[i].want;
			gen[i] = d->slot[i].want_gen;
		}
		d->kick = false;
		pthread_mutex_unlock(&d->lock);
		/* The head before feeding: a segment that comes meanwhile ends the wait. */
		head = ring_head(d->ring);
		for (int i = 0; i < MJPEG_DEC_SLOTS; i++)
			active |= mjd_round(d, &d->slot[i], on[i], &want[i], gen[i]);
		pthread_mutex_lock(&d->lock);
		if (d->stop || d->kick)
			continue;
		if (!active) {
			pthread_cond_wait(&d->cond, &d->lock);
			continue;
		}
		/* The ring's futex, with a timeout for changed wants and retries. */
		pthread_mutex_unlock(&d->lock);
		ring_wait(d->ring, head, MJPEG_DEC_POLL_MS);
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < MJPEG_DEC_SLOTS; i++)
		mjd_stop(d, &d->slot[i]);
	return NULL;
}

/* ---- the loop thread's side ---- */

struct mjpeg_dec *
mjpeg_dec_new(const struct ring *ring, void (*wake)(void *ctx), void *ctx)
{
	struct mjpeg_dec *d = calloc(1, sizeof(*d));
	struct ring_stats st;
	pthread_condattr_t ca;
	int inited = 0, r = -ENOMEM;

	if (d == NULL)
		return NULL;
	d->ring = ring;
	d->wake = wake;
	d->ctx = ctx;
	ring_get_stats(ring, &st);
	d->init_max = st.max_init_bytes;
	d->init_buf = malloc(d->init_max);
	if (d->init_buf == NULL || pthread_condattr_init(&ca) != 0)
		goto fail;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	for (; inited < MJPEG_DEC_SLOTS; inited++) {
		struct mjd_slot *s = &d->slot[inited];

		s->d = d;
		s->index = inited;
		pthread_mutex_init(&s->lock, NULL);
		pthread_cond_init(&s->cond, &ca);
	}
	pthread_condattr_destroy(&ca);
	r = -pthread_create(&d->thread, NULL, mjd_worker, d);
	if (r == 0)
		return d;
	for (int i = 0; i < inited; i++) {
		pthread_mutex_destroy(&d->slot[i].lock);
		pthread_cond_destroy(&d->slot[i].cond);
	}
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
fail:
	free(d->init_buf);
	free(d);
	errno = -r;
	return NULL;
}

void
mjpeg_dec_free(struct mjpeg_dec *d)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	for (int i = 0; i < MJPEG_DEC_SLOTS; i++) {
		struct mjd_slot *s = &d->slot[i];

		for (int k = 0; k < MJPEG_DEC_WIDTHS; k++)
			hbuf_unref(s->out[k].jpeg);
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->cond);
	}
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d->init_buf);
	free(d);
}

void
mjpeg_dec_set(struct mjpeg_dec *d, int i, const struct mjpeg_dec_want *want)
{
	struct mjd_slot *s = &d->slot[i];

	pthread_mutex_lock(&d->lock);
	s->want_on = want != NULL;
	if (want != NULL)
		s->want = *want;
	s->want_gen++;
	d->kick = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

void
mjpeg_dec_take(struct mjpeg_dec *d, int i, struct mjpeg_dec_frame ret[MJPEG_DEC_WIDTHS])
{
	struct mjd_slot *s = &d->slot[i];

	pthread_mutex_lock(&d->lock);
	for (int k = 0; k < MJPEG_DEC_WIDTHS; k++) {
		ret[k] = s->out[k];
		s->out[k].jpeg = NULL;
	}
	pthread_mutex_unlock(&d->lock);
}

void
mjpeg_dec_stats(struct mjpeg_dec *d, struct mjpeg_dec_stats *ret)
{
	pthread_mutex_lock(&d->lock);
	*ret = d->stats;
	pthread_mutex_unlock(&d->lock);
}
