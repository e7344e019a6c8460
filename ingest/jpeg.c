/* jpeg: legacy sentinels (seed 000) send JPEG frames in batches; each such
 * sentinel gets its own GStreamer pipeline that encodes them into H.264 fMP4,
 * whose init and segments then enter the ring like any sentinel's:
 *
 *   appsrc (image/jpeg) ! jpegdec ! videoconvert ! x264enc tune=zerolatency
 *     ! h264parse ! mp4mux fragment-duration=(an hour) streamable ! appsink
 *
 * Timestamps: jpeg_clock.h spreads each batch's frames over the time the
 * batch covers; the frames carry those as PTS and duration.
 *
 * Segments of about a second, each a join point, as vigil-sentinel makes them
 * (docs/sentinel.md): mp4mux starts a fragment at every keyframe, and also
 * when one would pass fragment-duration, keyframe or not. So a probe before
 * the encoder forces a keyframe on the frame nearest one second after the
 * last one, and fragment-duration is far above that: keyframes alone cut.
 * One IDR a second is cheap, and every segment starting with one means a
 * keyframe request has nothing left to do. mp4mux writes a fragment out when
 * the next keyframe arrives, so a segment leaves with the next batch; at the
 * session's end an EOS flushes the last one (ingest_jpeg_finish).
 *
 * Backpressure: when more than JPEG_BACKLOG_BYTES or _FRAMES wait for the
 * encoder, the connection is paused (wss_conn_pause) until half of that is
 * left: a sentinel that sends faster than its frames are encoded is slowed
 * down by TCP, memory stays bounded and no frame is dropped. The bound also
 * keeps the wait at the session's end short (a few hundred frames).
 *
 * Threads: the appsink callback, the probe and the bus handler run in
 * GStreamer's threads; they only queue units, read atomics and wake the lws
 * loop, which writes into the ring (ingest_jpeg_drain). */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "ingest.h"
#include "jpeg_clock.h"
#include "log.h"
#include "mp4split.h"

#define JPEG_BACKLOG_BYTES  (2u << 20) /* JPEG bytes waiting for the encoder: pause above */
#define JPEG_BACKLOG_FRAMES 200u       /* frames waiting for the encoder: pause above */
/* Units waiting for the loop. What the encoder puts out is bounded by what
 * waits for it (the backlog, plus the message and read buffer that passed
 * it), a unit per frame at most; this backstop is never reached by that,
 * and when it is, the oldest segments go first. */
#define JPEG_QUEUE_MAX 4096
#define JPEG_FLUSH_MS  2000 /* the longest wait for the last segment at the end */
#define JPEG_DURS      64   /* frames inside x264enc and h264parse (1 at most) */

struct jpeg_unit {
	struct jpeg_unit *next;
	bool is_init;
	size_t len;
	uint8_t data[];
};

struct ingest_jpeg {
	struct ingest_jpeg *next; /* in ing->jpegs: changed by the service thread only */
	struct ingest *ing;
	struct wss_conn *conn;
	GstElement *pipeline, *src;
	struct mp4split *split;        /* appsink's thread only */
	struct jpeg_unit *head, *tail; /* under ing->jpeg_lock */
	unsigned queued;               /* under ing->jpeg_lock */
	uint64_t dropped;              /* under ing->jpeg_lock */
	GstClockTime last_key;         /* the encoder's thread only */
	/* the durations of the frames inside x264enc and h264parse, oldest first */
	GMutex dur_lock;
	GstClockTime durs[JPEG_DURS];
	unsigned dur_head, n_durs;
	atomic_bool paused; /* the connection is paused for the backlog */
	atomic_bool failed; /* the pipeline posted an error */
	bool failure_seen;  /* service thread only, as below */
	struct jpeg_clock clock;
	int64_t seq;
	uint64_t pushed;
};

/* appsink's thread: one complete init or segment from the muxer. */
static void
jpeg_unit_cb(void *ctx, bool is_init, const uint8_t *data, size_t len)
{
	struct ingest_jpeg *j = ctx;
	struct jpeg_unit *u = malloc(sizeof(*u) + len), *old = NULL;

	if (u == NULL)
		return;
	u->next = NULL;
	u->is_init = is_init;
	u->len = len;
	memcpy(u->data, data, len);
	pthread_mutex_lock(&j->ing->jpeg_lock);
	if (j->queued >= JPEG_QUEUE_MAX && j->head != NULL && !j->head->is_init) {
		old = j->head;
		j->head = old->next;
		if (j->head == NULL)
			j->tail = NULL;
		j->queued--;
		j->dropped++;
	}
	if (j->tail != NULL)
		j->tail->next = u;
	else
		j->head = u;
	j->tail = u;
	j->queued++;
	pthread_mutex_unlock(&j->ing->jpeg_lock);
	free(old);
	wss_wake(j->ing->wss);
}

static GstFlowReturn
jpeg_new_sample(GstAppSink *sink, gpointer user)
{
	struct ingest_jpeg *j = user;
	GstSample *sample = gst_app_sink_pull_sample(sink);
	GstBuffer *buf;
	GstMapInfo map;

	if (sample == NULL)
		return GST_FLOW_EOS;
	buf = gst_sample_get_buffer(sample);
	if (buf != NULL && gst_buffer_map(buf, &map, GST_MAP_READ)) {
		if (mp4split_feed(j->split, map.data, map.size, jpeg_unit_cb, j) < 0)
			log_warn(0, "JPEG encoder output could not be split into boxes");
		gst_buffer_unmap(buf, &map);
	}
	gst_sample_unref(sample);
	return GST_FLOW_OK;
}

/* Any thread: whether the encoder's backlog is down to half the bound. */
static bool
jpeg_backlog_low(struct ingest_jpeg *j)
{
	GstAppSrc *src = GST_APP_SRC(j->src);

	return gst_app_src_get_current_level_bytes(src) <= JPEG_BACKLOG_BYTES / 2 &&
	       gst_app_src_get_current_level_buffers(src) <= JPEG_BACKLOG_FRAMES / 2;
}

/* The encoder's thread, before each raw frame enters x264enc: forces the
 * keyframes that cut segments, and wakes the loop when a paused connection's
 * backlog has halved (the frame has left appsrc's queue by now). */
static GstPadProbeReturn
jpeg_enc_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
	struct ingest_jpeg *j = user;
	GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
	GstClockTime pts = GST_BUFFER_PTS(buf), dur = GST_BUFFER_DURATION(buf);

	if (atomic_load(&j->paused) && jpeg_backlog_low(j))
		wss_wake(j->ing->wss);
	g_mutex_lock(&j->dur_lock);
	j->durs[(j->dur_head + j->n_durs) % JPEG_DURS] = dur;
	if (j->n_durs < JPEG_DURS)
		j->n_durs++;
	else
		j->dur_head = (j->dur_head + 1) % JPEG_DURS;
	g_mutex_unlock(&j->dur_lock);
	if (!GST_CLOCK_TIME_IS_VALID(pts))
		return GST_PAD_PROBE_OK;
	if (!GST_CLOCK_TIME_IS_VALID(dur))
		dur = 0;
	/* The frame nearest to one second after the last keyframe. */
	if (!GST_CLOCK_TIME_IS_VALID(j->last_key) || pts < j->last_key ||
	    pts + dur / 2 >= j->last_key + GST_SECOND) {
		/* Serialized, so the encoder sees it before this very frame.
		 * GstVideoEncoder ignores such a request while an earlier one
		 * waits for its frame to leave the encoder: x264 must hold no
		 * frame (see the pipeline), or of two keyframes in a row (frames
		 * of a second or more) the second would be a P-frame. */
		gst_pad_send_event(pad, gst_video_event_new_downstream_force_key_unit(
						GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE,
						GST_CLOCK_TIME_NONE, FALSE, 0));
		j->last_key = pts;
	}
	return GST_PAD_PROBE_OK;
}

/* The encoder's thread, on each frame h264parse puts out: h264parse drops
 * the frames' durations (1 ns without a frame rate), and mp4mux then gives
 * the last frame before the EOS a duration of 0. Frames leave x264enc and
 * h264parse in the order they went in, one for one (no B-frames, no
 * lookahead with tune=zerolatency), so the oldest duration kept is this
 * frame's. */
static GstPadProbeReturn
jpeg_dur_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
	struct ingest_jpeg *j = user;
	GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
	GstClockTime dur = GST_CLOCK_TIME_NONE;

	(void)pad;
	g_mutex_lock(&j->dur_lock);
	if (j->n_durs > 0) {
		dur = j->durs[j->dur_head];
		j->dur_head = (j->dur_head + 1) % JPEG_DURS;
		j->n_durs--;
	}
	g_mutex_unlock(&j->dur_lock);
	if (GST_CLOCK_TIME_IS_VALID(dur) && GST_BUFFER_DURATION(buf) != dur) {
		buf = gst_buffer_make_writable(buf);
		GST_BUFFER_DURATION(buf) = dur;
		GST_PAD_PROBE_INFO_DATA(info) = buf;
	}
	return GST_PAD_PROBE_OK;
}

/* The posting element's thread: keeps EOS and errors for the service thread
 * and drops the rest, which nobody reads (a corrupt JPEG posts a warning, and
 * a bus that keeps every message grows with each). */
static GstBusSyncReply
jpeg_bus_sync(GstBus *bus, GstMessage *m, gpointer user)
{
	struct ingest_jpeg *j = user;
	GError *gerr = NULL;

	(void)bus;
	if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS)
		return GST_BUS_PASS;
	if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
		gst_message_parse_error(m, &gerr, NULL);
		log_warn(0, "JPEG encoder of %s failed in %s: %s",
			 ingest_conn_sess(j->conn)->id_str, GST_OBJECT_NAME(GST_MESSAGE_SRC(m)),
			 gerr != NULL ? gerr->message : "?");
		g_clear_error(&gerr);
		atomic_store(&j->failed, true);
		wss_wake(j->ing->wss);
		return GST_BUS_PASS;
	}
	return GST_BUS_DROP;
}

/* Service thread: the probes around the encoder, the bus handler. */
static int
jpeg_hook(struct ingest_jpeg *j)
{
	GstElement *enc = gst_bin_get_by_name(GST_BIN(j->pipeline), "enc");
	GstElement *parse = gst_bin_get_by_name(GST_BIN(j->pipeline), "parse");
	GstBus *bus = gst_element_get_bus(j->pipeline);
	GstPad *in = NULL, *out = NULL;
	int r = -EIO;

	if (enc == NULL || parse == NULL || bus == NULL)
		goto out;
	in = gst_element_get_static_pad(enc, "sink");
	out = gst_element_get_static_pad(parse, "src");
	if (in == NULL || out == NULL)
		goto out;
	gst_pad_add_probe(in, GST_PAD_PROBE_TYPE_BUFFER, jpeg_enc_probe, j, NULL);
	gst_pad_add_probe(out, GST_PAD_PROBE_TYPE_BUFFER, jpeg_dur_probe, j, NULL);
	gst_bus_set_sync_handler(bus, jpeg_bus_sync, j, NULL);
	r = 0;
out:
	if (in != NULL)
		gst_object_unref(in);
	if (out != NULL)
		gst_object_unref(out);
	if (bus != NULL)
		gst_object_unref(bus);
	if (parse != NULL)
		gst_object_unref(parse);
	if (enc != NULL)
		gst_object_unref(enc);
	return r;
}

struct ingest_jpeg *
ingest_jpeg_new(struct ingest *ing, struct wss_conn *c)
{
	static const char desc[] =
		"appsrc name=src is-live=true format=time max-bytes=0 ! jpegdec ! videoconvert ! "
		/* Frames leave x264 as they enter: threads=1 (x264enc's own
		 * sliced-threads=false undoes zerolatency's, and frame threads
		 * hold frames back) and a fixed frame rate (jpeg_caps; x264
		 * holds a frame back to time variable ones). Constant quality:
		 * a frame's size does not depend on that rate. */
		"x264enc name=enc tune=zerolatency speed-preset=ultrafast threads=1 "
		"pass=qual quantizer=23 key-int-max=600 ! "
		"video/x-h264,profile=constrained-baseline ! h264parse name=parse ! "
		/* 90 kHz: whole ms and 1/30 s exactly. Fragments are cut at
		 * keyframes, and at this duration (an hour) whatever comes: a
		 * frame can last long (the frames after it did not decode). */
		"mp4mux fragment-duration=3600000 streamable=true trak-timescale=90000 ! "
		"appsink name=sink sync=false";
	GstAppSinkCallbacks cbs = { .new_sample = jpeg_new_sample };
	struct ingest_sess *s = ingest_conn_sess(c);
	struct ingest_jpeg *j;
	GstElement *sink;
	GError *gerr = NULL;

	if (!gst_is_initialized())
		gst_init(NULL, NULL);
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return NULL;
	j->ing = ing;
	j->conn = c;
	j->last_key = GST_CLOCK_TIME_NONE;
	g_mutex_init(&j->dur_lock);
	jpeg_clock_init(&j->clock, s->reg_sent_ms, s->started_ms);
	j->split = mp4split_new(ing->cfg->max_message_bytes);
	j->pipeline = gst_parse_launch(desc, &gerr);
	if (j->split == NULL || j->pipeline == NULL) {
		log_error(0, "JPEG pipeline: %s", gerr != NULL ? gerr->message : "out of memory");
		g_clear_error(&gerr);
		goto err_free;
	}
	j->src = gst_bin_get_by_name(GST_BIN(j->pipeline), "src");
	sink = gst_bin_get_by_name(GST_BIN(j->pipeline), "sink");
	gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cbs, j, NULL);
	gst_object_unref(sink);
	if (jpeg_hook(j) < 0) {
		log_error(0, "JPEG pipeline: no encoder pad to watch");
		goto err_free;
	}
	if (gst_element_set_state(j->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
		log_error(0, "JPEG pipeline would not start");
		goto err_free;
	}
	pthread_mutex_lock(&ing->jpeg_lock);
	j->next = ing->jpegs;
	ing->jpegs = j;
	pthread_mutex_unlock(&ing->jpeg_lock);
	log_info("sentinel %s: legacy JPEG frames, encoding to H.264", s->id_str);
	return j;

err_free:
	ingest_jpeg_free(j);
	return NULL;
}

void
ingest_jpeg_free(struct ingest_jpeg *j)
{
	struct jpeg_unit *u, *next;
	struct ingest_jpeg **pp;

	if (j == NULL)
		return;
	/* Stopping the pipeline joins its streaming threads: no callback runs after it. */
	if (j->pipeline != NULL) {
		gst_element_set_state(j->pipeline, GST_STATE_NULL);
		gst_object_unref(j->pipeline);
	}
	if (j->src != NULL)
		gst_object_unref(j->src);
	pthread_mutex_lock(&j->ing->jpeg_lock);
	for (pp = &j->ing->jpegs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	pthread_mutex_unlock(&j->ing->jpeg_lock);
	for (u = j->head; u != NULL; u = next) {
		next = u->next;
		free(u);
	}
	mp4split_free(j->split);
	g_mutex_clear(&j->dur_lock);
	free(j);
}

/* The caps of appsrc, set before the first frame: a frame rate is declared
 * (the first batch's) so that x264 holds no frame back; the timestamps
 * remain what says when each frame is shown. */
static void
jpeg_caps(struct ingest_jpeg *j, int64_t dur_ns)
{
	gint num, den;
	GstCaps *caps;

	gst_util_double_to_fraction(1e9 / (double)dur_ns, &num, &den);
	if (num <= 0 || den <= 0 || (gint64)num * 10 < den || num > 120 * (gint64)den) {
		num = 1;
		den = 1;
	}
	caps = gst_caps_new_simple("image/jpeg", "framerate", GST_TYPE_FRACTION, num, den, NULL);
	gst_app_src_set_caps(GST_APP_SRC(j->src), caps);
	gst_caps_unref(caps);
}

int
ingest_jpeg_push(struct ingest_jpeg *j, const struct ingest_frame *frames, uint32_t n,
		 int64_t sent_ms, int64_t rx_ms)
{
	struct jpeg_span span;
	GstBufferList *list;

	if (n == 0)
		return 0;
	list = gst_buffer_list_new_sized(n);
	jpeg_clock_batch(&j->clock, sent_ms, rx_ms, n, &span);
	if (j->pushed == 0)
		jpeg_caps(j, span.dur_ns);
	if (span.jumped)
		log_info("sentinel %s: frame batch at %lld ms does not follow the last one; "
			 "its frames keep the stream's pace",
			 ingest_conn_sess(j->conn)->id_str, (long long)sent_ms);
	for (uint32_t i = 0; i < n; i++) {
		GstBuffer *buf = gst_buffer_new_memdup(frames[i].data, frames[i].len);

		GST_BUFFER_PTS(buf) = (GstClockTime)(span.pts_ns + (int64_t)i * span.dur_ns);
		GST_BUFFER_DTS(buf) = GST_BUFFER_PTS(buf);
		GST_BUFFER_DURATION(buf) = (GstClockTime)span.dur_ns;
		gst_buffer_list_add(list, buf);
	}
	j->pushed += n;
	if (gst_app_src_push_buffer_list(GST_APP_SRC(j->src), list) != GST_FLOW_OK)
		return -EIO;
	if (jpeg_backlog_low(j) || atomic_load(&j->paused))
		return 0;
	/* Paused first, then looked again: the probe wakes the loop for a
	 * backlog that shrinks after this, and one that shrank before it is
	 * seen here. */
	atomic_store(&j->paused, true);
	wss_conn_pause(j->conn, true);
	j->ing->stats.jpeg_pauses++;
	if (jpeg_backlog_low(j)) {
		atomic_store(&j->paused, false);
		wss_conn_pause(j->conn, false);
	}
	return 0;
}

void
ingest_jpeg_force_key(struct ingest_jpeg *j)
{
	/* Every segment starts with a keyframe already. */
	(void)j;
}

/* Service thread: the ring's word for one unit of j's. */
static void
jpeg_put(struct ingest *ing, struct ingest_jpeg *j, const struct jpeg_unit *u)
{
	struct ingest_sess *s = ingest_conn_sess(j->conn);
	struct fmp4_seg seg;
	int64_t start_ms = -1;
	char err[200];

	/* Replaced by a newer connection: the slot is not ours any more. */
	if (!s->registered)
		return;
	if (u->is_init) {
		if (ingest_sess_put_init(ing, j->conn, u->data, u->len, err, sizeof(err)) < 0)
			log_warn(0, "JPEG encoder init refused: %s", err);
		return;
	}
	/* startTime: the clock's origin plus the segment's media time. */
	if (s->has_init && s->init.timescale > 0 &&
	    fmp4_parse_segment(u->data, u->len, &s->init, &seg, NULL, 0) == 0 &&
	    seg.has_decode_time) {
		uint64_t ts = s->init.timescale;

		start_ms =
			jpeg_clock_origin_ms(&j->clock) +
			(int64_t)(seg.decode_time / ts * 1000 + seg.decode_time % ts * 1000 / ts);
	}
	if (ingest_sess_put_segment(ing, j->conn, j->seq, u->data, u->len, start_ms, -1, -1, err,
				    sizeof(err)) == 0)
		j->seq++;
	else
		log_warn(0, "JPEG encoder segment refused: %s", err);
}

/* Service thread: resumes a paused connection whose backlog halved; closes
 * one whose encoder failed (the sentinel reconnects to a fresh one). */
static void
jpeg_check(struct ingest_jpeg *j)
{
	if (atomic_load(&j->failed) && !j->failure_seen) {
		j->failure_seen = true;
		wss_conn_close(j->conn, 3005, "The JPEG encoder failed");
	}
	if (atomic_load(&j->paused) && jpeg_backlog_low(j)) {
		atomic_store(&j->paused, false);
		wss_conn_pause(j->conn, false);
	}
}

/* Service thread: j's oldest unit, NULL when none waits. */
static struct jpeg_unit *
jpeg_take(struct ingest *ing, struct ingest_jpeg *j)
{
	struct jpeg_unit *u;
	uint64_t dropped;

	pthread_mutex_lock(&ing->jpeg_lock);
	u = j->head;
	if (u != NULL) {
		j->head = u->next;
		if (j->head == NULL)
			j->tail = NULL;
		j->queued--;
	}
	dropped = j->dropped;
	j->dropped = 0;
	pthread_mutex_unlock(&ing->jpeg_lock);
	if (dropped > 0) {
		ing->stats.jpeg_dropped += dropped;
		log_warn(0, "sentinel %s: %llu encoded segments dropped: the loop fell behind",
			 ingest_conn_sess(j->conn)->id_str, (unsigned long long)dropped);
	}
	return u;
}

/* Service thread: woken by wss_wake from the streaming threads. The list of
 * encoders changes in this thread only, so it is walked without the lock. */
void
ingest_jpeg_drain(struct ingest *ing)
{
	for (struct ingest_jpeg *j = ing->jpegs; j != NULL; j = j->next) {
		struct jpeg_unit *u;

		jpeg_check(j);
		while ((u = jpeg_take(ing, j)) != NULL) {
			jpeg_put(ing, j, u);
			free(u);
		}
	}
}

void
ingest_jpeg_finish(struct ingest *ing, struct ingest_jpeg *j)
{
	GstMessage *m;
	GstBus *bus;

	if (j == NULL || j->pushed == 0 || atomic_load(&j->failed))
		return;
	if (gst_app_src_end_of_stream(GST_APP_SRC(j->src)) != GST_FLOW_OK)
		return;
	bus = gst_element_get_bus(j->pipeline);
	m = gst_bus_timed_pop_filtered(bus, JPEG_FLUSH_MS * GST_MSECOND,
				       GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
	if (m == NULL)
		log_warn(0,
			 "sentinel %s: the JPEG encoder did not finish in %d ms; its last "
			 "frames are lost",
			 ingest_conn_sess(j->conn)->id_str, JPEG_FLUSH_MS);
	else
		gst_message_unref(m);
	gst_object_unref(bus);
	ingest_jpeg_drain(ing);
}
