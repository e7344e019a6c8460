/* snapshot: init + keyframe segment -> one JPEG, through a pipeline built per call:
 *
 *   appsrc (video/quicktime: init and segment as one buffer, then EOS)
 *     ! qtdemux ! h264parse ! video/x-h264 within SNAPSHOT_DIM_MAX
 *     ! avdec_h264 ! videoconvert ! jpegenc ! appsink
 *
 * The input is checked by common/fmp4 first, so GStreamer's demuxer and decoder
 * only see what parses as fragmented H.264 and starts at a keyframe. The first
 * picture ends the run: the appsink callback keeps it and answers EOS, the
 * calling thread waits for it (or an error, or EOS without a picture) against
 * a deadline, then stops the pipeline, which joins its streaming threads.
 * The pieces every decoding pipeline of httpd needs (snapshot_gst.h: checks,
 * the decoder chain, errors, the JPEG of a sample) are defined here too. */
#include "snapshot_gst.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include "fmp4.h"
#include "log.h"

/* What one run has come to; the streaming threads and the caller share it. */
struct snap_run {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* on CLOCK_MONOTONIC */
	bool done;
	int err;           /* when done: 0 (sample set) or -errno */
	GstSample *sample; /* the first JPEG */
	char why[200];     /* for the debug log */
};

/* Any thread: the first outcome wins, later ones are dropped. Takes sample. */
static void
snap_finish(struct snap_run *run, int err, GstSample *sample, const char *why)
{
	pthread_mutex_lock(&run->lock);
	if (!run->done) {
		run->done = true;
		run->err = err;
		run->sample = sample;
		sample = NULL;
		snprintf(run->why, sizeof(run->why), "%s", why);
		pthread_cond_signal(&run->cond);
	}
	pthread_mutex_unlock(&run->lock);
	if (sample != NULL)
		gst_sample_unref(sample);
}

/* Streaming thread: one JPEG from jpegenc. EOS stops the stream after the first. */
static GstFlowReturn
snap_new_sample(GstAppSink *sink, gpointer user)
{
	GstSample *sample = gst_app_sink_pull_sample(sink);

	if (sample != NULL)
		snap_finish(user, 0, sample, "");
	return GST_FLOW_EOS;
}

/* Streaming thread: the stream ended and no picture came out (a decoder that
 * refuses to output corrupt frames, a segment without a decodable frame). */
static void
snap_eos(GstAppSink *sink, gpointer user)
{
	snap_finish(user, -ENODATA, NULL, "end of stream without a picture");
}

int
snapshot_gst_error(GstMessage *msg, char *why, size_t size)
{
	GError *gerr = NULL;
	int err;

	gst_message_parse_error(msg, &gerr, NULL);
	if (gerr == NULL) {
		snprintf(why, size, "%s: unknown error", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)));
		return -EIO;
	}
	if (g_error_matches(gerr, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN) ||
	    g_error_matches(gerr, GST_STREAM_ERROR, GST_STREAM_ERROR_CODEC_NOT_FOUND))
		err = -ENOPKG;
	else if (gerr->domain == GST_STREAM_ERROR)
		err = -EBADMSG; /* demux, decode, format, not-negotiated (the size filter) */
	else if (gerr->domain == GST_RESOURCE_ERROR &&
		 gerr->code == GST_RESOURCE_ERROR_NO_SPACE_LEFT)
		err = -ENOMEM;
	else
		err = -EIO;
	snprintf(why, size, "%s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)), gerr->message);
	g_error_free(gerr);
	return err;
}

/* Posting thread (a streaming thread, or the caller's during state changes):
 * errors end the run; nothing else is kept, so nothing accumulates. A sync
 * handler that answers GST_BUS_DROP owns the message: each one holds its
 * source element, so a message not unref'ed keeps the whole pipeline alive. */
static GstBusSyncReply
snap_bus_sync(GstBus *bus, GstMessage *msg, gpointer user)
{
	char why[200];
	int err;

	if (GST_MESSAGE_TYPE(msg) != GST_MESSAGE_ERROR) {
		gst_message_unref(msg);
		return GST_BUS_DROP;
	}
	err = snapshot_gst_error(msg, why, sizeof(why));
	gst_message_unref(msg);
	snap_finish(user, err, NULL, why);
	return GST_BUS_DROP;
}

int
snapshot_check_init(const void *init, size_t len, struct fmp4_init *ret)
{
	struct fmp4_init fi;
	char err[200] = "";

	if (fmp4_parse_init(init, len, &fi, err, sizeof(err)) < 0) {
		log_debug("snapshot: init refused: %s", err);
		return -EBADMSG;
	}
	if (fi.width == 0 || fi.height == 0 || fi.width > SNAPSHOT_DIM_MAX ||
	    fi.height > SNAPSHOT_DIM_MAX) {
		log_debug("snapshot: init says %" PRIu32 "x%" PRIu32 ", limit %d", fi.width,
			  fi.height, SNAPSHOT_DIM_MAX);
		return fi.width == 0 || fi.height == 0 ? -EBADMSG : -EFBIG;
	}
	if (ret != NULL)
		*ret = fi;
	return 0;
}

int
snapshot_check_segment(const void *seg, size_t len, const struct fmp4_init *init, bool need_key)
{
	struct fmp4_seg fs;
	char err[200] = "";

	if (fmp4_parse_segment(seg, len, init, &fs, err, sizeof(err)) < 0) {
		log_debug("snapshot: segment refused: %s", err);
		return -EBADMSG;
	}
	if (need_key && !fs.keyframe) {
		log_debug("snapshot: segment does not start with a keyframe");
		return -ENOENT;
	}
	return 0;
}

/* fMP4 checks before any GStreamer element sees the bytes; the init's size. */
static int
snap_check(const void *init, size_t init_len, const void *seg, size_t seg_len,
	   struct fmp4_init *ret)
{
	int r = snapshot_check_init(init, init_len, ret);

	return r < 0 ? r : snapshot_check_segment(seg, seg_len, ret, true);
}

int
snapshot_gst_decoder(const char *src, const char *sink, GstElement **ret_pipeline)
{
	char desc[1024];
	GError *gerr = NULL;
	GstElement *p;
	int r;

	/* gst_init would exit the process when GStreamer cannot start; this returns. */
	if (!gst_init_check(NULL, NULL, NULL))
		return -EIO;
	r = snprintf(desc, sizeof(desc),
		     "%s ! qtdemux ! h264parse ! video/x-h264,width=(int)[1,%d],height=(int)[1,%d] "
		     "! avdec_h264 max-threads=1 output-corrupt=false ! %s",
		     src, SNAPSHOT_DIM_MAX, SNAPSHOT_DIM_MAX, sink);
	if (r < 0 || (size_t)r >= sizeof(desc))
		return -EINVAL;
	p = gst_parse_launch_full(desc, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &gerr);
	if (p == NULL || gerr != NULL) {
		r = g_error_matches(gerr, GST_PARSE_ERROR, GST_PARSE_ERROR_NO_SUCH_ELEMENT)
			    ? -ENOPKG
			    : -EIO;
		log_debug("pipeline: %s", gerr != NULL ? gerr->message : "failed");
		g_clear_error(&gerr);
		if (p != NULL)
			gst_object_unref(p);
		return r;
	}
	*ret_pipeline = p;
	return 0;
}

/* The decoder, then one JPEG at the video's own size, or scaled to w x h. */
static int
snap_pipeline(int w, int h, GstElement **ret_pipeline)
{
	char sink[300];

	if (w > 0)
		snprintf(sink, sizeof(sink),
			 "videoscale ! videoconvert ! video/x-raw,format=I420,width=%d,height=%d ! "
			 "jpegenc ! appsink name=sink sync=false max-buffers=1 "
			 "enable-last-sample=false",
			 w, h);
	else
		snprintf(sink, sizeof(sink),
			 "videoconvert ! jpegenc ! appsink name=sink sync=false "
			 "max-buffers=1 enable-last-sample=false");
	return snapshot_gst_decoder("appsrc name=src format=bytes caps=video/quicktime", sink,
				    ret_pipeline);
}

/* Waits for the run's outcome until deadline (CLOCK_MONOTONIC); -ETIMEDOUT then. */
static void
snap_wait(struct snap_run *run, const struct timespec *deadline)
{
	pthread_mutex_lock(&run->lock);
	while (!run->done) {
		if (pthread_cond_timedwait(&run->cond, &run->lock, deadline) == ETIMEDOUT &&
		    !run->done) {
			run->done = true;
			run->err = -ETIMEDOUT;
			snprintf(run->why, sizeof(run->why), "no picture within %d ms",
				 SNAPSHOT_TIMEOUT_MS);
		}
	}
	pthread_mutex_unlock(&run->lock);
}

int
snapshot_gst_jpeg(GstSample *sample, GstBuffer **ret_buf, GstMapInfo *ret_map, int *ret_width,
		  int *ret_height)
{
	GstBuffer *buf = gst_sample_get_buffer(sample);
	GstCaps *caps = gst_sample_get_caps(sample);
	GstStructure *st;
	GstMapInfo map;
	int w = 0, h = 0;

	if (buf == NULL || caps == NULL || gst_caps_get_size(caps) == 0)
		return -EIO;
	st = gst_caps_get_structure(caps, 0);
	if (!gst_structure_get_int(st, "width", &w) || !gst_structure_get_int(st, "height", &h) ||
	    w <= 0 || h <= 0)
		return -EIO;
	if (!gst_buffer_map(buf, &map, GST_MAP_READ))
		return -EIO;
	if (map.size > SNAPSHOT_JPEG_MAX) {
		gst_buffer_unmap(buf, &map);
		return -EFBIG;
	}
	/* jpegenc writes whole JFIF images; anything else is a bug worth an error, not a file. */
	if (map.size < 4 || map.data[0] != 0xff || map.data[1] != 0xd8) {
		gst_buffer_unmap(buf, &map);
		return -EIO;
	}
	*ret_buf = buf;
	*ret_map = map;
	if (ret_width != NULL)
		*ret_width = w;
	if (ret_height != NULL)
		*ret_height = h;
	return 0;
}

/* The JPEG and its size out of the appsink's sample, copied. */
static int
snap_take(GstSample *sample, unsigned char **ret_jpeg, size_t *ret_len, int *ret_width,
	  int *ret_height)
{
	GstBuffer *buf;
	GstMapInfo map;
	unsigned char *copy;
	int r = snapshot_gst_jpeg(sample, &buf, &map, ret_width, ret_height);

	if (r < 0)
		return r;
	copy = malloc(map.size);
	if (copy != NULL) {
		memcpy(copy, map.data, map.size);
		*ret_jpeg = copy;
		*ret_len = map.size;
	}
	gst_buffer_unmap(buf, &map);
	return copy != NULL ? 0 : -ENOMEM;
}

int
snapshot_jpeg(const void *init, size_t init_len, const void *seg, size_t seg_len,
	      unsigned char **ret_jpeg, size_t *ret_len, int *ret_width, int *ret_height)
{
	return snapshot_jpeg_scaled(init, init_len, seg, seg_len, 0, ret_jpeg, ret_len, ret_width,
				    ret_height);
}

int
snapshot_jpeg_scaled(const void *init, size_t init_len, const void *seg, size_t seg_len, int width,
		     unsigned char **ret_jpeg, size_t *ret_len, int *ret_width, int *ret_height)
{
	GstAppSinkCallbacks cbs = { .eos = snap_eos, .new_sample = snap_new_sample };
	struct snap_run run = { .done = false };
	pthread_condattr_t ca;
	struct timespec deadline;
	struct fmp4_init fi;
	GstElement *pipeline = NULL, *src = NULL, *sink = NULL;
	GstBus *bus = NULL;
	GstBuffer *buf;
	int r, w = 0, h = 0;

	if (init == NULL || seg == NULL || ret_jpeg == NULL || ret_len == NULL || init_len == 0 ||
	    seg_len == 0 || width < 0)
		return -EINVAL;
	if (init_len > SNAPSHOT_INPUT_MAX || seg_len > SNAPSHOT_INPUT_MAX - init_len)
		return -EFBIG;
	r = snap_check(init, init_len, seg, seg_len, &fi);
	if (r < 0)
		return r;
	if (width > 0 && width < (int)fi.width)
		snapshot_scale((int)fi.width, (int)fi.height, width, &w, &h);

	if (pthread_condattr_init(&ca) != 0)
		return -ENOMEM;
	r = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (r == 0)
		r = -pthread_cond_init(&run.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (r < 0)
		return r;
	r = -pthread_mutex_init(&run.lock, NULL);
	if (r < 0)
		goto out_cond;

	r = snap_pipeline(w, h, &pipeline);
	if (r < 0)
		goto out_lock;
	src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
	sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
	bus = gst_element_get_bus(pipeline);
	if (src == NULL || sink == NULL || bus == NULL) {
		r = -EIO;
		goto out_pipeline;
	}
	gst_bus_set_sync_handler(bus, snap_bus_sync, &run, NULL);
	gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cbs, &run, NULL);

	if (clock_gettime(CLOCK_MONOTONIC, &deadline) < 0) {
		r = -errno;
		goto out_pipeline;
	}
	deadline.tv_sec += SNAPSHOT_TIMEOUT_MS / 1000;
	deadline.tv_nsec += (long)(SNAPSHOT_TIMEOUT_MS % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
		snap_finish(&run, -EIO, NULL, "pipeline would not start");
		goto out_stop;
	}
	/* One buffer: qtdemux sees moov then moof+mdat, as it would from a file. */
	buf = gst_buffer_new_allocate(NULL, init_len + seg_len, NULL);
	if (buf == NULL) {
		snap_finish(&run, -ENOMEM, NULL, "out of memory");
		goto out_stop;
	}
	gst_buffer_fill(buf, 0, init, init_len);
	gst_buffer_fill(buf, init_len, seg, seg_len);
	if (gst_app_src_push_buffer(GST_APP_SRC(src), buf) != GST_FLOW_OK ||
	    gst_app_src_end_of_stream(GST_APP_SRC(src)) != GST_FLOW_OK)
		snap_finish(&run, -EIO, NULL, "appsrc refused the input");
	snap_wait(&run, &deadline);

out_stop:
	/* Joins the streaming threads: no callback runs on run after this. */
	gst_element_set_state(pipeline, GST_STATE_NULL);
	gst_bus_set_sync_handler(bus, NULL, NULL, NULL);
	r = run.err;
	if (r == 0)
		r = snap_take(run.sample, ret_jpeg, ret_len, ret_width, ret_height);
	if (r < 0)
		log_msg(LOG_LVL_DEBUG, r, "snapshot: %s",
			run.why[0] != '\0' ? run.why : "no usable JPEG from jpegenc");
	if (run.sample != NULL)
		gst_sample_unref(run.sample);
out_pipeline:
	if (bus != NULL)
		gst_object_unref(bus);
	if (sink != NULL)
		gst_object_unref(sink);
	if (src != NULL)
		gst_object_unref(src);
	gst_object_unref(pipeline);
out_lock:
	pthread_mutex_destroy(&run.lock);
out_cond:
	pthread_cond_destroy(&run.cond);
	return r;
}
