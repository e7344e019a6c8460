/* mjpeg_dec: live.mjpeg's worker thread and pipelines (see mjpeg_dec.h).
 *
 * Locks: d->lock guards what the loop and the worker exchange (wants, the
 * newest JPEGs, the figures); each slot's lock guards what its decoder thread
 * shares with the worker (encoders, segment times, errors, stopping). No lock
 * is held across a state change, which joins streaming threads that may be
 * waiting for one of them. Worker thread unless a function says otherwise. */
#include "mjpeg_dec.h"

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
#include "proc.h"
#include "snapshot_gst.h"

#define MJD_RECS      16            /* segment times kept per decoder */
#define MJD_LATE_US   200000        /* a picture this late is skipped, */
#define MJD_LATE_KEEP 1000000       /* unless none passed for this long */
#define MJD_AHEAD_US  3000000       /* a picture due later than this: a clock jump */
#define MJD_BACKLOG   (16ull << 20) /* bytes waiting for the demuxer: behind, restart; */
#define MJD_BEHIND_US 4000000       /* so is this much stream time not yet decoded */
#define MJD_RETRY_US  1000000       /* first restart delay after a failure, */
#define MJD_RETRY_MAX 10000000      /* doubling up to this */

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
	int64_t retry_at_us, retry_us;
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

static int64_t
mjd_us(int64_t v, uint32_t timescale)
{
	/* v * 1e6 / timescale without overflow for tfdt values of any size */
	return (int64_t)((uint64_t)v / timescale * 1000000 +
			 (uint64_t)v % timescale * 1000000 / timescale);
}

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
	if (e->width > 0 && e->width < w) {
		h = (int)(((int64_t)h * e->width + w / 2) / w + 1) & ~1;
		w = e->width;
		if (h < 2)
			h = 2;
	}
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

/* Makes the slot's encoders what the want says: a width that changed gets a
 * new pipeline, an interval is just updated. */
static void
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

/* ---- the worker ---- */

static void
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

/* The decoder for the want's session, fed from its newest join point of the
 * current init (or from the next one). -EAGAIN: not possible yet (the ring
 * does not show that session), else a failure to retry later. */
static int
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
		goto fail;
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

/* Whether more than MJD_BEHIND_US of pushed segments wait for the decoder
 * (known when segments carry tfdt and a picture came out). */
static bool
mjd_behind(struct mjd_slot *s)
{
	bool behind;

	pthread_mutex_lock(&s->lock);
	behind = s->n_rec > 0 && s->decoded_pts != INT64_MIN &&
		 s->rec[(s->n_rec - 1) % MJD_RECS].end_us - s->decoded_pts > MJD_BEHIND_US;
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
