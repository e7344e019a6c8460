/* mjpeg_pipe: live.mjpeg's pipelines (see mjpeg_dec.h): per watched sentinel
 * one decoder whose thread keeps the pictures some width needs and holds each
 * until it is due, and per width an encoder whose thread hands the newest JPEG
 * to the loop. Started, changed and stopped by the worker (mjpeg_dec.c). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include "log.h"
#include "mjpeg_dec_internal.h"
#include "proc.h"
#include "snapshot_gst.h"

/* ---- encoders ---- */

/* Encoder thread: the newest JPEG of its width replaces the one the loop has
 * not taken yet (never shared, so freeing it here is safe). */
static GstFlowReturn
mjd_new_jpeg(GstAppSink *sink, gpointer user)
{
	struct mjd_enc *e = user;
	struct mjpeg_dec *d = e->slot->d;
	GstSample *sample = gst_app_sink_pull_sample(sink);
	/* The slot's session and sentinel are written before its pipelines
	 * start and stay while they run. */
	struct mjpeg_dec_frame f = { .width = e->width, .ring_slot = e->slot->ring_slot };
	struct hbuf *old = NULL;
	GstBuffer *buf;
	GstMapInfo map;
	int r;

	if (sample == NULL)
		return GST_FLOW_FLUSHING;
	memcpy(f.session, e->slot->session, 16);
	r = snapshot_gst_jpeg(sample, &buf, &map, &f.out_width, &f.out_height);
	if (r == 0) {
		f.pts_us = GST_BUFFER_PTS_IS_VALID(buf) ? (int64_t)(GST_BUFFER_PTS(buf) / 1000) : 0;
		f.jpeg = hbuf_new(map.size);
		if (f.jpeg != NULL)
			memcpy(f.jpeg->data, map.data, map.size);
		gst_buffer_unmap(buf, &map);
	}
	gst_sample_unref(sample);
	if (f.jpeg == NULL)
		return GST_FLOW_OK; /* this picture is lost, the next one may do */
	pthread_mutex_lock(&d->lock);
	old = e->slot->out[e->k].jpeg;
	e->slot->out[e->k] = f;
	d->stats.jpegs++;
	pthread_mutex_unlock(&d->lock);
	hbuf_unref(old);
	d->wake(d->ctx);
	return GST_FLOW_OK;
}

static void
mjd_enc_free(struct mjd_enc *e)
{
	if (e == NULL)
		return;
	if (e->pipe != NULL) {
		gst_element_set_state(e->pipe, GST_STATE_NULL);
		gst_object_unref(e->pipe);
	}
	if (e->src != NULL)
		gst_object_unref(e->src);
	free(e);
}

/* Posting thread: an encoder's messages are dropped; its errors show as
 * pictures that stop coming, and the decoder's restart makes it anew. */
static GstBusSyncReply
mjd_enc_bus(GstBus *bus, GstMessage *msg, gpointer user)
{
	if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
		char why[200];

		snapshot_gst_error(msg, why, sizeof(why));
		log_debug("mjpeg: encoder: %s", why);
	}
	gst_message_unref(msg);
	return GST_BUS_DROP;
}

/* The pipeline of one width. Scaling keeps the aspect ratio with an even
 * height and never enlarges: a width above the video's gives the video's. */
static int
mjd_enc_new(struct mjd_slot *s, int k, const struct mjpeg_dec_want *want, struct mjd_enc **ret)
{
	GstAppSinkCallbacks cbs = { .new_sample = mjd_new_jpeg };
	struct mjd_enc *e = calloc(1, sizeof(*e));
	int w = (int)s->init.width, h = (int)s->init.height;
	GstElement *sink = NULL;
	GError *gerr = NULL;
	GstBus *bus;
	char desc[512];
	int r = -EIO;

	if (e == NULL)
		return -ENOMEM;
	e->slot = s;
	e->k = k;
	e->width = want->w[k].width;
	e->pace = (struct mjpeg_pace){ want->w[k].interval_us, INT64_MIN, INT64_MIN };
	snapshot_scale(w, h, e->width, &w, &h);
	snprintf(desc, sizeof(desc),
		 "appsrc name=src format=time max-buffers=2 leaky-type=downstream ! videoscale ! "
		 "videoconvert ! video/x-raw,format=I420,width=%d,height=%d ! jpegenc ! "
		 "appsink name=sink sync=false max-buffers=1 enable-last-sample=false",
		 w, h);
	e->pipe = gst_parse_launch_full(desc, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &gerr);
	if (e->pipe == NULL || gerr != NULL) {
		log_debug("mjpeg: encoder: %s", gerr != NULL ? gerr->message : "failed");
		r = g_error_matches(gerr, GST_PARSE_ERROR, GST_PARSE_ERROR_NO_SUCH_ELEMENT)
			    ? -ENOPKG
			    : -EIO;
		g_clear_error(&gerr);
		goto fail;
	}
	e->src = gst_bin_get_by_name(GST_BIN(e->pipe), "src");
	sink = gst_bin_get_by_name(GST_BIN(e->pipe), "sink");
	if (e->src == NULL || sink == NULL)
		goto fail;
	gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cbs, e, NULL);
	bus = gst_element_get_bus(e->pipe);
	gst_bus_set_sync_handler(bus, mjd_enc_bus, NULL, NULL);
	gst_object_unref(bus);
	if (gst_element_set_state(e->pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
		goto fail;
	gst_object_unref(sink);
	*ret = e;
	return 0;
fail:
	if (sink != NULL)
		gst_object_unref(sink);
	mjd_enc_free(e);
	return r;
}

void
mjd_sync_encoders(struct mjpeg_dec *d, struct mjd_slot *s, const struct mjpeg_dec_want *want)
{
	for (int k = 0; k < MJPEG_DEC_WIDTHS; k++) {
		struct mjd_enc *e = s->enc[k], *gone = NULL, *made = NULL;
		int r;

		if (e != NULL && (!want->w[k].on || want->w[k].width != e->width)) {
			pthread_mutex_lock(&s->lock);
			s->enc[k] = NULL;
			pthread_mutex_unlock(&s->lock);
			gone = e;
			e = NULL;
		}
		mjd_enc_free(gone); /* outside the lock: this joins its thread */
		if (gone != NULL) {
			pthread_mutex_lock(&d->lock);
			d->stats.encoders--;
			pthread_mutex_unlock(&d->lock);
		}
		if (!want->w[k].on)
			continue;
		if (e != NULL) {
			pthread_mutex_lock(&s->lock);
			e->pace.interval_us = want->w[k].interval_us;
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		r = mjd_enc_new(s, k, want, &made);
		if (r < 0) {
			pthread_mutex_lock(&s->lock);
			if (s->err == 0) {
				s->err = r;
				snprintf(s->why, sizeof(s->why), "no encoder for width %d",
					 want->w[k].width);
			}
			pthread_mutex_unlock(&s->lock);
			return;
		}
		pthread_mutex_lock(&s->lock);
		s->enc[k] = made;
		pthread_mutex_unlock(&s->lock);
		pthread_mutex_lock(&d->lock);
		d->stats.encoders++;
		pthread_mutex_unlock(&d->lock);
	}
}

/* ---- the decoder thread ---- */

/* Under s->lock: whether width k takes the picture at pts. */
static bool
mjd_due(const struct mjd_enc *e, int64_t pts)
{
	return e != NULL && mjpeg_pace_due(&e->pace, pts);
}

/* Under s->lock: when the picture at pts is due (CLOCK_MONOTONIC us): its
 * segment's publication plus its offset in the segment; now when its segment
 * is not known (no tfdt) or the result makes no sense. */
static int64_t
mjd_due_at(struct mjd_slot *s, int64_t pts, int64_t now)
{
	for (unsigned i = 0; i < s->n_rec && i < MJD_RECS; i++) {
		const struct mjd_rec *rc = &s->rec[(s->n_rec - 1 - i) % MJD_RECS];
		int64_t due;

		if (pts + 1000 < rc->start_us || pts > rc->end_us + 1000000)
			continue;
		due = rc->published_mono_us + (pts - rc->start_us);
		return due > now + MJD_AHEAD_US ? now : due;
	}
	return now;
}

/* Decoder thread: a decoded picture. Widths that want it get it once it is
 * due; the wait is the stream's pace, cut short by stopping. */
static GstFlowReturn
mjd_new_raw(GstAppSink *sink, gpointer user)
{
	struct mjd_slot *s = user;
	GstSample *sample = gst_app_sink_pull_sample(sink);
	GstFlowReturn ret = GST_FLOW_OK;
	GstBuffer *buf;
	struct timespec ts;
	int64_t pts, now, due;
	bool any = false;

	if (sample == NULL)
		return GST_FLOW_FLUSHING;
	buf = gst_sample_get_buffer(sample);
	if (buf == NULL || !GST_BUFFER_PTS_IS_VALID(buf)) {
		gst_sample_unref(sample);
		return GST_FLOW_OK;
	}
	pts = (int64_t)(GST_BUFFER_PTS(buf) / 1000);
	pthread_mutex_lock(&s->lock);
	s->decoded_pts = pts;
	for (int k = 0; k < MJPEG_DEC_WIDTHS; k++)
		any |= mjd_due(s->enc[k], pts);
	now = proc_mono_us();
	due = mjd_due_at(s, pts, now);
	/* Late (the first second of a start, a stall): skipped, so that the
	 * stream catches up rather than bursts; yet one a second passes. */
	if (any && due < now - MJD_LATE_US && now - s->last_pass_us < MJD_LATE_KEEP)
		any = false;
	while (any && !s->stopping && now < due) {
		ts.tv_sec = due / 1000000;
		ts.tv_nsec = (long)(due % 1000000) * 1000;
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		now = proc_mono_us();
	}
	if (s->stopping) {
		ret = GST_FLOW_FLUSHING;
	} else if (any) {
		s->last_pass_us = now;
		/* The widths may have changed during the wait: asked again. */
		for (int k = 0; k < MJPEG_DEC_WIDTHS; k++) {
			struct mjd_enc *e = s->enc[k];

			if (!mjd_due(e, pts))
				continue;
			mjpeg_pace_take(&e->pace, pts);
			if (gst_app_src_push_sample(GST_APP_SRC(e->src), sample) != GST_FLOW_OK)
				log_debug("mjpeg: encoder of width %d refused a picture", e->width);
		}
	}
	pthread_mutex_unlock(&s->lock);
	gst_sample_unref(sample);
	return ret;
}

/* Posting thread: the decoder's first error is kept for the worker, which
 * restarts it; every message is dropped (see snapshot.c's snap_bus_sync). */
static GstBusSyncReply
mjd_bus(GstBus *bus, GstMessage *msg, gpointer user)
{
	struct mjd_slot *s = user;

	if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
		char why[200];
		int err = snapshot_gst_error(msg, why, sizeof(why));

		pthread_mutex_lock(&s->lock);
		if (s->err == 0) {
			s->err = err;
			snprintf(s->why, sizeof(s->why), "%s", why);
		}
		pthread_mutex_unlock(&s->lock);
	}
	gst_message_unref(msg);
	return GST_BUS_DROP;
}

/* ---- started and stopped by the worker ---- */

void
mjd_stop(struct mjpeg_dec *d, struct mjd_slot *s)
{
	struct mjd_enc *enc[MJPEG_DEC_WIDTHS];
	struct hbuf *old[MJPEG_DEC_WIDTHS];
	int n_enc = 0;

	if (!s->running)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* The decoder thread first (it feeds the encoders), then the encoders. */
	gst_element_set_state(s->pipe, GST_STATE_NULL);
	gst_object_unref(s->src);
	gst_object_unref(s->pipe);
	s->pipe = s->src = NULL;
	pthread_mutex_lock(&s->lock);
	for (int k = 0; k < MJPEG_DEC_WIDTHS; k++) {
		enc[k] = s->enc[k];
		n_enc += enc[k] != NULL;
		s->enc[k] = NULL;
	}
	s->stopping = false;
	s->err = 0;
	s->n_rec = 0;
	pthread_mutex_unlock(&s->lock);
	for (int k = 0; k < MJPEG_DEC_WIDTHS; k++)
		mjd_enc_free(enc[k]);
	s->running = false;
	pthread_mutex_lock(&d->lock);
	for (int k = 0; k < MJPEG_DEC_WIDTHS; k++) {
		old[k] = s->out[k].jpeg;
		s->out[k].jpeg = NULL;
	}
	d->stats.decoders--;
	d->stats.encoders -= (uint64_t)n_enc;
	pthread_mutex_unlock(&d->lock);
	for (int k = 0; k < MJPEG_DEC_WIDTHS; k++)
		hbuf_unref(old[k]);
}

int
mjd_start(struct mjpeg_dec *d, struct mjd_slot *s, const struct mjpeg_dec_want *want)
{
	GstAppSinkCallbacks cbs = { .new_sample = mjd_new_raw };
	struct ring_sentinel rs;
	struct ring_seg m;
	const void *data;
	GstElement *sink = NULL;
	GstBuffer *init;
	GstBus *bus;
	uint64_t join;
	int r;

	r = ring_sentinel_get(d->ring, want->ring_slot, &rs, d->init_buf, d->init_max);
	if (r < 0 || memcmp(rs.session, want->session, 16) != 0 || rs.init_len == 0)
		return -EAGAIN;
	r = snapshot_check_init(d->init_buf, rs.init_len, &s->init);
	if (r < 0)
		return r;
	s->cursor = ring_head(d->ring);
	if (ring_find_join(d->ring, want->ring_slot, want->session, true, &join) == 0 &&
	    ring_peek(d->ring, join, &m, &data) == 0 && m.init_gen == rs.init_gen)
		s->cursor = join;
	s->need_key = true;
	s->ring_slot = want->ring_slot; /* read by the pipelines' threads from now on */
	memcpy(s->session, want->session, 16);
	s->last_pass_us = 0; /* the decoder thread does not run yet */
	s->decoded_pts = INT64_MIN;
	r = snapshot_gst_decoder("appsrc name=src format=bytes caps=video/quicktime",
				 "appsink name=sink sync=false enable-last-sample=false", &s->pipe);
	if (r < 0)
		return r;
	s->src = gst_bin_get_by_name(GST_BIN(s->pipe), "src");
	sink = gst_bin_get_by_name(GST_BIN(s->pipe), "sink");
	bus = gst_element_get_bus(s->pipe);
	if (s->src == NULL || sink == NULL || bus == NULL) {
		r = -EIO;
		goto fail;
	}
	gst_bus_set_sync_handler(bus, mjd_bus, s, NULL);
	gst_object_unref(bus);
	bus = NULL;
	gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cbs, s, NULL);
	gst_object_unref(sink);
	sink = NULL;
	if (gst_element_set_state(s->pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
		r = -EIO;
		goto fail_playing;
	}
	init = gst_buffer_new_memdup(d->init_buf, rs.init_len);
	if (init == NULL || gst_app_src_push_buffer(GST_APP_SRC(s->src), init) != GST_FLOW_OK) {
		r = -EIO;
		goto fail_playing;
	}
	s->init_gen = rs.init_gen;
	s->running = true;
	pthread_mutex_lock(&d->lock);
	d->stats.decoders++;
	d->stats.starts++;
	pthread_mutex_unlock(&d->lock);
	return 0;
fail_playing:
	gst_element_set_state(s->pipe, GST_STATE_NULL);
fail:
	if (bus != NULL)
		gst_object_unref(bus);
	if (sink != NULL)
		gst_object_unref(sink);
	if (s->src != NULL)
		gst_object_unref(s->src);
	gst_object_unref(s->pipe);
	s->pipe = s->src = NULL;
	return r;
}
