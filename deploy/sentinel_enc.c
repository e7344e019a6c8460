/* sentinel_enc: the one GStreamer pipeline of vigil-sentinel, shared by every
 * simulated sentinel. Captures (a test pattern with the name and the clock
 * burnt in, a camera or the screen), scales to --size and --fps, encodes H.264
 * into fragmented MP4 (or JPEG frames in legacy mode), and hands what
 * sentinel_seg.c cuts from it to the lws thread through a mutex-protected queue,
 * waking that thread with the given callback. Frame rate changes and keyframe
 * requests come from the lws thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>

#include "sentinel_enc.h"

/* mp4mux's duration cut, kept only as a bound should keyframes stop coming
 * (sentinel_seg.c tells why keyframes alone cut fragments). */
#define SNT_ENC_FRAGMENT_MS 10000
/* Twice the highest frame rate: x264 never cuts a GOP before the probe does. */
#define SNT_ENC_KEYINT_MAX (2 * (int)SNT_FPS_MAX)

/* Any streaming thread: queues m (ownership moves) and wakes the lws thread.
 * When the queue is full the oldest media goes, never an init or an error. */
static void
snt_enc_push(struct snt_enc *e, struct snt_media *m)
{
	pthread_mutex_lock(&e->lock);
	if (e->q_len == SNT_ENC_QUEUE_MAX) {
		size_t i;

		for (i = 0; i < e->q_len; i++) {
			struct snt_media *old = &e->q[(e->q_head + i) % SNT_ENC_QUEUE_MAX];

			if (old->kind == SNT_MEDIA_SEGMENT || old->kind == SNT_MEDIA_FRAME)
				break;
		}
		if (i == e->q_len) {
			pthread_mutex_unlock(&e->lock);
			snt_blob_unref(m->blob);
			return;
		}
		snt_blob_unref(e->q[(e->q_head + i) % SNT_ENC_QUEUE_MAX].blob);
		for (; i > 0; i--)
			e->q[(e->q_head + i) % SNT_ENC_QUEUE_MAX] =
				e->q[(e->q_head + i - 1) % SNT_ENC_QUEUE_MAX];
		e->q_head = (e->q_head + 1) % SNT_ENC_QUEUE_MAX;
		e->q_len--;
		e->dropped++;
	}
	e->q[(e->q_head + e->q_len++) % SNT_ENC_QUEUE_MAX] = *m;
	pthread_mutex_unlock(&e->lock);
	e->wake(e->opaque);
}

void
snt_enc_push_blob(struct snt_enc *e, enum snt_media_kind kind, const void *data, size_t len,
		  int64_t start_ms, int64_t duration_ms, bool keyframe)
{
	struct snt_media m = {
		.kind = kind, .start_ms = start_ms, .duration_ms = duration_ms, .keyframe = keyframe
	};

	m.blob = snt_blob_new(data, len);
	if (m.blob == NULL) {
		log_warn(-ENOMEM, "media of %zu bytes dropped", len);
		return;
	}
	snt_enc_push(e, &m);
}

void
snt_enc_push_error(struct snt_enc *e, const char *fmt, ...)
{
	struct snt_media m = { .kind = SNT_MEDIA_ERROR };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m.err, sizeof(m.err), fmt, ap);
	va_end(ap);
	snt_enc_push(e, &m);
}

int
snt_enc_pop(struct snt_enc *e, struct snt_media *ret)
{
	int r = -EAGAIN;

	pthread_mutex_lock(&e->lock);
	if (e->q_len > 0) {
		*ret = e->q[e->q_head];
		e->q_head = (e->q_head + 1) % SNT_ENC_QUEUE_MAX;
		e->q_len--;
		r = 0;
	}
	pthread_mutex_unlock(&e->lock);
	return r;
}

uint64_t
snt_enc_dropped(struct snt_enc *e)
{
	uint64_t n;

	pthread_mutex_lock(&e->lock);
	n = e->dropped;
	pthread_mutex_unlock(&e->lock);
	return n;
}

void
snt_enc_request_keyframe(struct snt_enc *e)
{
	atomic_store(&e->force_key, true);
}

/* The caps every source is converted to: I420 (x264 would otherwise pick 4:4:4
 * or 10 bits, which browsers cannot decode), --size, and the rate. */
double
snt_enc_set_fps(struct snt_enc *e, double fps)
{
	GstCaps *caps;
	gint n, d;

	if (!(fps >= SNT_FPS_MIN))
		fps = SNT_FPS_MIN;
	if (fps > SNT_FPS_MAX)
		fps = SNT_FPS_MAX;
	gst_util_double_to_fraction(fps, &n, &d);
	caps = gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, "I420", "width",
				   G_TYPE_INT, (int)e->o->width, "height", G_TYPE_INT,
				   (int)e->o->height, "framerate", GST_TYPE_FRACTION, n, d,
				   "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
	/* capsfilter takes new caps in any state; videorate renegotiates when the
	 * slot it is filling ends, so the change shows one old frame interval later
	 * at most (5 s at 0.2 fps). */
	g_object_set(e->caps, "caps", caps, NULL);
	gst_caps_unref(caps);
	atomic_store(&e->force_key, true);
	return fps;
}

/* The posting thread: errors end the program, warnings are logged. */
static GstBusSyncReply
snt_enc_bus(GstBus *bus, GstMessage *msg, gpointer opaque)
{
	struct snt_enc *e = opaque;
	GError *err = NULL;
	gchar *dbg = NULL;

	switch (GST_MESSAGE_TYPE(msg)) {
	case GST_MESSAGE_ERROR:
		gst_message_parse_error(msg, &err, &dbg);
		snt_enc_push_error(e, "%s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)),
				   err->message);
		log_debug("pipeline error detail: %s", dbg ? dbg : "none");
		break;
	case GST_MESSAGE_WARNING:
		gst_message_parse_warning(msg, &err, &dbg);
		log_warn(0, "%s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)), err->message);
		break;
	case GST_MESSAGE_EOS:
		snt_enc_push_error(e, "the video source ended");
		break;
	default:
		break;
	}
	g_clear_error(&err);
	g_free(dbg);
	return GST_BUS_DROP;
}

/* The source's streaming thread, once: the caps the source negotiated become
 * the only caps it may have. A later rate change then stops at videorate
 * instead of renegotiating the source: a live source asked for 0.2 fps sleeps
 * up to 5 s in a clock wait before it hears of the next change, then catches up
 * with frames stamped in the past. */
static GstPadProbeReturn
snt_enc_pin_probe(GstPad *pad, GstPadProbeInfo *info, gpointer opaque)
{
	struct snt_enc *e = opaque;
	GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
	GstCaps *caps;

	if (GST_EVENT_TYPE(ev) != GST_EVENT_CAPS)
		return GST_PAD_PROBE_OK;
	gst_event_parse_caps(ev, &caps);
	g_object_set(e->pin, "caps", caps, NULL);
	return GST_PAD_PROBE_REMOVE;
}

/* The pipeline's description; element properties that come from the user (the
 * name, the device) are set afterwards, never parsed. */
static gchar *
snt_enc_describe(const struct snt_opts *o)
{
	unsigned font = o->height / 20 < 8 ? 8 : o->height / 20;
	const char *src = o->camera   ? "v4l2src name=src"
			  : o->screen ? "ximagesrc name=src use-damage=false"
				      : "videotestsrc name=src is-live=true";
	gchar *overlay, *tail, *desc;

	/* The clock is the capture time as wall time: base_time + running time, the
	 * running time of each frame being when it was captured. */
	overlay = o->camera || o->screen
			  ? g_strdup("")
			  : g_strdup_printf(
				    " ! textoverlay name=label valignment=top halignment=left "
				    "shaded-background=true font-desc=\"Sans %u\""
				    " ! timeoverlay name=clock valignment=bottom halignment=right "
				    "shaded-background=true font-desc=\"Monospace %u\" "
				    "time-mode=running-time show-times-as-dates=true "
				    "datetime-format=\"%%Y-%%m-%%d %%H:%%M:%%S.%%f\"",
				    font, font);
	/* key-int-max is a backstop only: x264enc cannot change it while playing,
	 * so a key-int-max of the starting rate would cut 0.5 s fragments after a
	 * change to twice that rate (measured). sentinel_seg.c forces one keyframe
	 * a second at any rate. */
	if (o->legacy_jpeg)
		tail = g_strdup("jpegenc");
	else
		tail = g_strdup_printf("x264enc name=enc tune=zerolatency speed-preset=ultrafast "
				       "bitrate=%u key-int-max=%d ! h264parse name=parse ! "
				       "mp4mux fragment-duration=%u streamable=true",
				       o->bitrate, SNT_ENC_KEYINT_MAX, SNT_ENC_FRAGMENT_MS);
	desc = g_strdup_printf("%s ! capsfilter name=pin ! videorate ! videoscale ! videoconvert ! "
			       "capsfilter name=caps"
			       "%s ! %s ! appsink name=sink sync=false",
			       src, overlay, tail);
	g_free(overlay);
	g_free(tail);
	return desc;
}

struct snt_enc *
snt_enc_new(const struct snt_opts *o, snt_wake_fn wake, void *opaque, char *err, size_t errlen)
{
	struct snt_enc *e = calloc(1, sizeof(*e));
	GError *gerr = NULL;
	GstElement *label, *src;
	GstPad *src_pad;
	GstBus *bus;
	gchar *desc;

	if (e == NULL)
		return NULL;
	e->o = o;
	e->jpeg = o->legacy_jpeg;
	e->wake = wake;
	e->opaque = opaque;
	pthread_mutex_init(&e->lock, NULL);

	desc = snt_enc_describe(o);
	log_debug("pipeline: %s", desc);
	e->pipe = gst_parse_launch(desc, &gerr);
	g_free(desc);
	if (e->pipe == NULL || gerr != NULL) {
		/* A missing element is a partial pipeline plus an error. */
		snprintf(err, errlen, "GStreamer pipeline: %s", gerr ? gerr->message : "failed");
		g_clear_error(&gerr);
		errno = ENOENT;
		goto fail;
	}
	e->pin = gst_bin_get_by_name(GST_BIN(e->pipe), "pin");
	e->caps = gst_bin_get_by_name(GST_BIN(e->pipe), "caps");
	e->sink = gst_bin_get_by_name(GST_BIN(e->pipe), "sink");
	e->clock_overlay = gst_bin_get_by_name(GST_BIN(e->pipe), "clock");
	src = gst_bin_get_by_name(GST_BIN(e->pipe), "src");
	src_pad = gst_element_get_static_pad(src, "src");
	gst_pad_add_probe(src_pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, snt_enc_pin_probe, e, NULL);
	gst_object_unref(src_pad);
	if (o->camera != NULL)
		g_object_set(src, "device", o->camera, NULL);
	gst_object_unref(src);
	label = gst_bin_get_by_name(GST_BIN(e->pipe), "label");
	if (label != NULL) {
		gchar *text = o->count > 1
				      ? g_strdup_printf("%s-1 .. %s-%u", o->name, o->name, o->count)
				      : g_strdup(o->name);

		g_object_set(label, "text", text, NULL);
		g_free(text);
		gst_object_unref(label);
	}
	if (snt_seg_attach(e, err, errlen) < 0)
		goto fail;
	bus = gst_element_get_bus(e->pipe);
	gst_bus_set_sync_handler(bus, snt_enc_bus, e, NULL);
	gst_object_unref(bus);

	e->clock = g_object_new(GST_TYPE_SYSTEM_CLOCK, "clock-type", GST_CLOCK_TYPE_REALTIME, NULL);
	gst_pipeline_use_clock(GST_PIPELINE(e->pipe), e->clock);
	snt_enc_set_fps(e, o->fps);
	return e;

fail:
	snt_enc_free(e);
	return NULL;
}

int
snt_enc_start(struct snt_enc *e)
{
	/* The base time is chosen here rather than by the pipeline so that the
	 * clock overlay can be given the wall time of running time 0. */
	gst_element_set_start_time(e->pipe, GST_CLOCK_TIME_NONE);
	e->base = gst_clock_get_time(e->clock);
	gst_element_set_base_time(e->pipe, e->base);
	if (e->clock_overlay != NULL) {
		GDateTime *t0 = g_date_time_new_from_unix_local((gint64)(e->base / GST_SECOND));
		GDateTime *t = g_date_time_add(t0, (GTimeSpan)(e->base % GST_SECOND / 1000));

		g_object_set(e->clock_overlay, "datetime-epoch", t, NULL);
		g_date_time_unref(t);
		g_date_time_unref(t0);
	}
	if (gst_element_set_state(e->pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
		return -EIO;
	return 0;
}

void
snt_enc_stop(struct snt_enc *e)
{
	/* NULL-safe, and idempotent: setting NULL twice is a no-op. */
	if (e != NULL && e->pipe != NULL)
		gst_element_set_state(e->pipe, GST_STATE_NULL);
}

void
snt_enc_free(struct snt_enc *e)
{
	struct snt_media m;

	if (e == NULL)
		return;
	snt_enc_stop(e);
	if (e->pin != NULL)
		gst_object_unref(e->pin);
	if (e->caps != NULL)
		gst_object_unref(e->caps);
	if (e->sink != NULL)
		gst_object_unref(e->sink);
	if (e->clock_overlay != NULL)
		gst_object_unref(e->clock_overlay);
	if (e->pipe != NULL)
		gst_object_unref(e->pipe);
	if (e->clock != NULL)
		gst_object_unref(e->clock);
	snt_seg_clear(e);
	while (snt_enc_pop(e, &m) == 0)
		snt_blob_unref(m.blob);
	pthread_mutex_destroy(&e->lock);
	free(e);
}
