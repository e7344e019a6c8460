/* jpeg: legacy sentinels (seed 000) send JPEG frames; each such sentinel gets
 * its own GStreamer pipeline that encodes them into H.264 fMP4, whose init and
 * segments then enter the ring like any sentinel's:
 *
 *   appsrc (image/jpeg) ! jpegdec ! videoconvert ! x264enc tune=zerolatency
 *     ! h264parse ! mp4mux fragment-duration=1000 streamable ! appsink
 *
 * Every frame is coded as an IDR (key-int-max=1): legacy sentinels send a few
 * frames a second at most, and so every segment is a join point and a
 * keyframe request has nothing left to do. The appsink callback runs in a
 * GStreamer streaming thread: it only queues the units and wakes the lws loop,
 * which writes them into the ring (ingest_jpeg_drain). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include "ingest.h"
#include "log.h"
#include "mp4split.h"
#include "proc.h"

#define JPEG_QUEUE_MAX 64 /* units waiting for the loop; the oldest go first when full */

struct jpeg_unit {
	struct jpeg_unit *next;
	bool is_init;
	size_t len;
	uint8_t data[];
};

struct ingest_jpeg {
	struct ingest_jpeg *next; /* in ing->jpegs, under ing->jpeg_lock */
	struct ingest *ing;
	struct wss_conn *conn;
	GstElement *pipeline, *src;
	struct mp4split *split;        /* streaming thread only */
	struct jpeg_unit *head, *tail; /* under ing->jpeg_lock */
	unsigned queued;
	int64_t seq; /* service thread only */
	GstClockTime last_pts;
	int64_t first_ms, last_ms;
	uint64_t pushed;
};

/* Streaming thread: one complete init or segment from the muxer. */
static void
jpeg_unit_cb(void *ctx, bool is_init, const uint8_t *data, size_t len)
{
	struct ingest_jpeg *j = ctx;
	struct jpeg_unit *u = malloc(sizeof(*u) + len);

	if (u == NULL)
		return;
	u->next = NULL;
	u->is_init = is_init;
	u->len = len;
	memcpy(u->data, data, len);
	pthread_mutex_lock(&j->ing->jpeg_lock);
	if (j->queued >= JPEG_QUEUE_MAX && j->head != NULL && !j->head->is_init) {
		struct jpeg_unit *old = j->head;

		j->head = old->next;
		if (j->head == NULL)
			j->tail = NULL;
		j->queued--;
		free(old);
	}
	if (j->tail != NULL)
		j->tail->next = u;
	else
		j->head = u;
	j->tail = u;
	j->queued++;
	pthread_mutex_unlock(&j->ing->jpeg_lock);
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

struct ingest_jpeg *
ingest_jpeg_new(struct ingest *ing, struct wss_conn *c)
{
	static const char desc[] =
		"appsrc name=src is-live=true format=time "
		"caps=image/jpeg,framerate=0/1 ! jpegdec ! videoconvert ! "
		"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=1 ! "
		"video/x-h264,profile=constrained-baseline ! h264parse ! "
		"mp4mux fragment-duration=1000 streamable=true ! "
		"appsink name=sink sync=false";
	GstAppSinkCallbacks cbs = { .new_sample = jpeg_new_sample };
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
	if (gst_element_set_state(j->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
		log_error(0, "JPEG pipeline would not start");
		goto err_free;
	}
	pthread_mutex_lock(&ing->jpeg_lock);
	j->next = ing->jpegs;
	ing->jpegs = j;
	pthread_mutex_unlock(&ing->jpeg_lock);
	log_info("sentinel %s: legacy JPEG frames, encoding to H.264", ingest_conn_sess(c)->id_str);
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
	free(j);
}

int
ingest_jpeg_push(struct ingest_jpeg *j, const void *jpeg, size_t len)
{
	GstBuffer *buf = gst_buffer_new_allocate(NULL, len, NULL);
	GstClock *clock;
	GstClockTime now, pts;

	if (buf == NULL)
		return -ENOMEM;
	gst_buffer_fill(buf, 0, jpeg, len);
	/* Frames of one message arrive together: stamp them on arrival, one
	 * millisecond apart at least, so that timestamps always increase. */
	clock = gst_element_get_clock(j->pipeline);
	now = clock != NULL ? gst_clock_get_time(clock) - gst_element_get_base_time(j->pipeline)
			    : 0;
	if (clock != NULL)
		gst_object_unref(clock);
	pts = j->pushed > 0 && now <= j->last_pts + GST_MSECOND ? j->last_pts + GST_MSECOND : now;
	GST_BUFFER_PTS(buf) = pts;
	GST_BUFFER_DTS(buf) = pts;
	j->last_pts = pts;
	j->pushed++;
	return gst_app_src_push_buffer(GST_APP_SRC(j->src), buf) == GST_FLOW_OK ? 0 : -EIO;
}

void
ingest_jpeg_force_key(struct ingest_jpeg *j)
{
	/* Every frame is an IDR already (key-int-max=1). */
	(void)j;
}

/* Service thread: woken by wss_wake from the streaming threads. */
void
ingest_jpeg_drain(struct ingest *ing)
{
	struct ingest_jpeg *j;
	char err[200];

	for (;;) {
		struct jpeg_unit *u = NULL;
		struct wss_conn *c = NULL;

		pthread_mutex_lock(&ing->jpeg_lock);
		for (j = ing->jpegs; j != NULL && u == NULL; j = j->next) {
			if (j->head != NULL) {
				u = j->head;
				j->head = u->next;
				if (j->head == NULL)
					j->tail = NULL;
				j->queued--;
				c = j->conn;
				break;
			}
		}
		pthread_mutex_unlock(&ing->jpeg_lock);
		if (u == NULL)
			return;
		if (u->is_init) {
			if (ingest_sess_put_init(ing, c, u->data, u->len, err, sizeof(err)) < 0)
				log_warn(0, "JPEG encoder init refused: %s", err);
		} else if (ingest_sess_put_segment(ing, c, j->seq, u->data, u->len, -1, -1, -1, err,
						   sizeof(err)) == 0) {
			j->seq++;
		} else {
			log_warn(0, "JPEG encoder segment refused: %s", err);
		}
		free(u);
	}
}
