/* sentinel_seg: cuts the muxer's output into what the protocol sends: the init
 * segment, and media segments that each start with a keyframe and say when
 * their first frame was captured, how long they last and whether they are a
 * join point. In legacy mode each JPEG frame is passed on as it is.
 *
 * Where fragments are cut (measured with GStreamer 1.22): mp4mux starts a new
 * fragment at every keyframe, and also whenever a fragment would exceed
 * fragment-duration, keyframe or not (gstqtmux.c, fragment_add_buffer). With
 * fragment-duration=1000 and keyframes 40 frames apart at 15 fps, two fragments
 * in three started with a P-frame; at 0.2 fps every fragment is one frame and
 * x264's key-int-max counts frames, so most did too. So keyframes alone cut
 * fragments here: a pad probe on the encoder's input forces a key unit on the
 * frame nearest to one second after the previous one (and on request), x264's
 * own key-int-max is only a backstop above that, and fragment-duration is
 * raised so that mp4mux's duration rule never fires between two keyframes.
 * Every segment then starts with an IDR frame and lasts about a second (one
 * frame when the rate is below 1 fps).
 *
 * mp4mux writes a fragment out when the frame after it arrives (it needs that
 * frame's timestamp for the last sample's duration), so a segment leaves one
 * frame interval after its last frame: 67 ms at 15 fps, 5 s at 0.2 fps. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

#include "mp4split.h"
#include "proc.h"
#include "sentinel_enc.h"

/* A sanity bound on one init or segment: mp4mux's output never comes near it. */
#define SNT_SEG_UNIT_MAX ((size_t)256 << 20)

/* The encoder's streaming thread, before each raw frame enters x264enc. */
static GstPadProbeReturn
snt_seg_key_probe(GstPad *pad, GstPadProbeInfo *info, gpointer opaque)
{
	struct snt_enc *e = opaque;
	GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
	GstClockTime pts = GST_BUFFER_PTS(buf), dur = GST_BUFFER_DURATION(buf);
	bool force = atomic_exchange(&e->force_key, false);

	if (!GST_CLOCK_TIME_IS_VALID(pts))
		return GST_PAD_PROBE_OK;
	if (!GST_CLOCK_TIME_IS_VALID(dur))
		dur = 0;
	/* The frame nearest to one second after the last keyframe. */
	if (!GST_CLOCK_TIME_IS_VALID(e->last_key) || pts < e->last_key ||
	    pts + dur / 2 >= e->last_key + GST_SECOND)
		force = true;
	if (force) {
		/* Serialized, so the encoder sees it before this very frame. */
		gst_pad_send_event(pad, gst_video_event_new_downstream_force_key_unit(
						GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE,
						GST_CLOCK_TIME_NONE, FALSE, 0));
		e->last_key = pts;
	}
	return GST_PAD_PROBE_OK;
}

static bool
snt_seg_buffer_equal(GstBuffer *a, GstBuffer *b)
{
	GstMapInfo map;
	bool eq;

	if (gst_buffer_get_size(a) != gst_buffer_get_size(b))
		return false;
	if (!gst_buffer_map(b, &map, GST_MAP_READ))
		return false;
	eq = gst_buffer_memcmp(a, 0, map.data, map.size) == 0;
	gst_buffer_unmap(b, &map);
	return eq;
}

/* The encoder's streaming thread, on the parser's output: a caps event whose
 * codec_data differs means new SPS/PPS (x264 restarts when the rate changes),
 * and the init segment must change at the first frame after it. Changes are
 * queued with that frame's running time, as several may happen before the
 * muxer writes the next fragment out. */
static GstPadProbeReturn
snt_seg_codec_probe(GstPad *pad, GstPadProbeInfo *info, gpointer opaque)
{
	struct snt_enc *e = opaque;

	if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
		GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
		GstEvent *ev;
		const GstSegment *seg;

		pthread_mutex_lock(&e->lock);
		if (e->n_changes > 0 && !GST_CLOCK_TIME_IS_VALID(e->changes[e->n_changes - 1].rt) &&
		    (ev = gst_pad_get_sticky_event(pad, GST_EVENT_SEGMENT, 0)) != NULL) {
			gst_event_parse_segment(ev, &seg);
			e->changes[e->n_changes - 1].rt =
				gst_segment_to_running_time(seg, GST_FORMAT_TIME,
							    GST_BUFFER_PTS(buf));
			log_debug("new codec data from running time %" GST_TIME_FORMAT,
				  GST_TIME_ARGS(e->changes[e->n_changes - 1].rt));
			gst_event_unref(ev);
		}
		pthread_mutex_unlock(&e->lock);
	} else if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_CAPS) {
		GstCaps *caps;
		const GValue *v;
		GstBuffer *codec;

		gst_event_parse_caps(GST_PAD_PROBE_INFO_EVENT(info), &caps);
		v = gst_structure_get_value(gst_caps_get_structure(caps, 0), "codec_data");
		if (v == NULL || !GST_VALUE_HOLDS_BUFFER(v))
			return GST_PAD_PROBE_OK;
		codec = gst_value_get_buffer(v);
		if (e->codec_seen != NULL && snt_seg_buffer_equal(e->codec_seen, codec))
			return GST_PAD_PROBE_OK;
		pthread_mutex_lock(&e->lock);
		if (e->codec_seen == NULL) {
			/* The first caps: what mp4mux writes into the moov. */
			e->codec = gst_buffer_ref(codec);
		} else {
			if (e->n_changes == SNT_ENC_CHANGES_MAX) {
				gst_buffer_unref(e->changes[0].codec);
				memmove(&e->changes[0], &e->changes[1],
					sizeof(e->changes[0]) * --e->n_changes);
			}
			e->changes[e->n_changes].codec = gst_buffer_ref(codec);
			e->changes[e->n_changes++].rt = GST_CLOCK_TIME_NONE;
		}
		gst_clear_buffer(&e->codec_seen);
		e->codec_seen = gst_buffer_ref(codec);
		pthread_mutex_unlock(&e->lock);
	}
	return GST_PAD_PROBE_OK;
}

/* The muxer's streaming thread: before a segment that starts at or after the
 * first frame of a codec change, an init segment with that avcC. */
static void
snt_seg_update_init(struct snt_enc *e)
{
	GstBuffer *codec = NULL;
	GstMapInfo map;
	uint8_t *init;
	size_t len;
	int r;

	pthread_mutex_lock(&e->lock);
	while (e->n_changes > 0 && GST_CLOCK_TIME_IS_VALID(e->changes[0].rt) &&
	       GST_CLOCK_TIME_IS_VALID(e->seg_rt) && e->seg_rt + GST_MSECOND >= e->changes[0].rt) {
		gst_clear_buffer(&codec);
		codec = e->changes[0].codec;
		memmove(&e->changes[0], &e->changes[1], sizeof(e->changes[0]) * --e->n_changes);
	}
	pthread_mutex_unlock(&e->lock);
	if (codec == NULL)
		return;
	if (e->codec != NULL && snt_seg_buffer_equal(e->codec, codec)) {
		gst_buffer_unref(codec);
		return;
	}
	if (!gst_buffer_map(codec, &map, GST_MAP_READ)) {
		gst_buffer_unref(codec);
		return;
	}
	r = snt_mp4_replace_avcc(e->init, e->init_len, map.data, map.size, &init, &len);
	gst_buffer_unmap(codec, &map);
	if (r < 0) {
		gst_buffer_unref(codec);
		log_warn(r, "init segment not updated for the new codec data");
		return;
	}
	gst_clear_buffer(&e->codec);
	e->codec = codec;
	free(e->init);
	e->init = init;
	e->init_len = len;
	log_info("encoder restarted with new parameters: new init segment (%zu bytes)", len);
	snt_enc_push_blob(e, SNT_MEDIA_INIT, init, len, -1, -1, false);
}

/* The muxer's streaming thread: one group cut by the splitter. */
static void
snt_seg_on_group(void *opaque, bool is_init, const uint8_t *data, size_t len)
{
	struct snt_enc *e = opaque;
	struct fmp4_seg seg;
	int64_t start_ms = -1;
	char err[200];

	if (is_init) {
		struct fmp4_init info;
		uint8_t *copy;

		if (fmp4_parse_init(data, len, &info, err, sizeof(err)) < 0) {
			snt_enc_push_error(e,
					   "mp4mux wrote an init segment that cannot be read: %s",
					   err);
			return;
		}
		copy = malloc(len);
		if (copy == NULL) {
			snt_enc_push_error(e, "no memory for an init segment of %zu bytes", len);
			return;
		}
		memcpy(copy, data, len);
		free(e->init);
		e->init = copy;
		e->init_len = len;
		e->init_info = info;
		snt_enc_push_blob(e, SNT_MEDIA_INIT, data, len, -1, -1, false);
		return;
	}
	if (e->init == NULL)
		return;
	log_debug("segment from running time %" GST_TIME_FORMAT, GST_TIME_ARGS(e->seg_rt));
	snt_seg_update_init(e);
	/* The track, timescale and trex stay when only the avcC was replaced. */
	if (fmp4_parse_segment(data, len, &e->init_info, &seg, err, sizeof(err)) < 0) {
		log_warn(-EBADMSG, "segment of %zu bytes dropped: %s", len, err);
		e->seg_rt = GST_CLOCK_TIME_NONE;
		return;
	}
	if (GST_CLOCK_TIME_IS_VALID(e->seg_rt))
		start_ms = (int64_t)((e->base + e->seg_rt) / GST_MSECOND);
	e->seg_rt = GST_CLOCK_TIME_NONE;
	snt_enc_push_blob(e, SNT_MEDIA_SEGMENT, data, len, start_ms, seg.duration_ms, seg.keyframe);
}

/* The muxer's (or jpegenc's) streaming thread: one buffer into the appsink. */
static GstFlowReturn
snt_seg_new_sample(GstAppSink *sink, gpointer opaque)
{
	struct snt_enc *e = opaque;
	GstSample *sample = gst_app_sink_pull_sample(sink);
	GstBuffer *buf;
	GstClockTime rt = GST_CLOCK_TIME_NONE;
	GstMapInfo map;
	int r;

	if (sample == NULL)
		return GST_FLOW_EOS;
	buf = gst_sample_get_buffer(sample);
	if (buf == NULL || !gst_buffer_map(buf, &map, GST_MAP_READ)) {
		gst_sample_unref(sample);
		return GST_FLOW_OK;
	}
	/* jpegenc's output is in a time segment; mp4mux's is a byte segment whose
	 * buffers carry the samples' running times as their timestamps. */
	if (GST_BUFFER_PTS_IS_VALID(buf)) {
		const GstSegment *seg = gst_sample_get_segment(sample);

		rt = GST_BUFFER_PTS(buf);
		if (seg != NULL && seg->format == GST_FORMAT_TIME)
			rt = gst_segment_to_running_time(seg, GST_FORMAT_TIME, rt);
	}
	if (e->jpeg) {
		int64_t ms = GST_CLOCK_TIME_IS_VALID(rt) ? (int64_t)((e->base + rt) / GST_MSECOND)
							 : proc_now_ms();

		snt_enc_push_blob(e, SNT_MEDIA_FRAME, map.data, map.size, ms, -1, true);
	} else {
		/* The first timed buffer after a moof is the segment's first sample. */
		if (mp4split_in_segment(e->split) && !GST_CLOCK_TIME_IS_VALID(e->seg_rt))
			e->seg_rt = rt;
		r = mp4split_feed(e->split, map.data, map.size, snt_seg_on_group, e);
		if (r < 0)
			snt_enc_push_error(e, "mp4mux output is not a sequence of boxes: %s",
					   strerror(-r));
	}
	gst_buffer_unmap(buf, &map);
	gst_sample_unref(sample);
	return GST_FLOW_OK;
}

static GstPad *
snt_seg_pad(GstElement *pipe, const char *element, const char *pad)
{
	GstElement *el = gst_bin_get_by_name(GST_BIN(pipe), element);
	GstPad *p = el ? gst_element_get_static_pad(el, pad) : NULL;

	if (el != NULL)
		gst_object_unref(el);
	return p;
}

int
snt_seg_attach(struct snt_enc *e, char *err, size_t errlen)
{
	/* Not const: gst_app_sink_set_callbacks() takes a plain pointer (and copies). */
	static GstAppSinkCallbacks cbs = { .new_sample = snt_seg_new_sample };

	e->last_key = GST_CLOCK_TIME_NONE;
	e->seg_rt = GST_CLOCK_TIME_NONE;
	if (!e->jpeg) {
		e->split = mp4split_new(SNT_SEG_UNIT_MAX);
		if (e->split == NULL)
			return -ENOMEM;
		e->enc_in = snt_seg_pad(e->pipe, "enc", "sink");
		e->mux_in = snt_seg_pad(e->pipe, "parse", "src");
		if (e->enc_in == NULL || e->mux_in == NULL) {
			snprintf(err, errlen, "GStreamer pipeline: no encoder or parser pad");
			return -ENOENT;
		}
		gst_pad_add_probe(e->enc_in, GST_PAD_PROBE_TYPE_BUFFER, snt_seg_key_probe, e, NULL);
		gst_pad_add_probe(e->mux_in,
				  GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
				  snt_seg_codec_probe, e, NULL);
	}
	gst_app_sink_set_callbacks(GST_APP_SINK(e->sink), &cbs, e, NULL);
	return 0;
}

void
snt_seg_clear(struct snt_enc *e)
{
	if (e->enc_in != NULL)
		gst_object_unref(e->enc_in);
	if (e->mux_in != NULL)
		gst_object_unref(e->mux_in);
	e->enc_in = NULL;
	e->mux_in = NULL;
	gst_clear_buffer(&e->codec);
	gst_clear_buffer(&e->codec_seen);
	for (size_t i = 0; i < e->n_changes; i++)
		gst_buffer_unref(e->changes[i].codec);
	e->n_changes = 0;
	mp4split_free(e->split);
	e->split = NULL;
	free(e->init);
	e->init = NULL;
}
