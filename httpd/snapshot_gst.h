/* snapshot_gst: what snapshot.c's one-picture pipeline shares with every other
 * pipeline of vigil-httpd that decodes a sentinel's fMP4 (mjpeg_dec.c): the
 * checks common/fmp4 makes before GStreamer sees a byte, the decoding chain,
 * how a pipeline is built and how its errors become errno values, and the
 * JPEG out of a jpegenc sample. GStreamer types: only for files that run a
 * pipeline (STYLE.md); snap.c and mjpeg.c see snapshot.h and mjpeg_dec.h. */
#ifndef VIGIL_SNAPSHOT_GST_H
#define VIGIL_SNAPSHOT_GST_H

#include <stdbool.h>
#include <stddef.h>

#include <gst/gst.h>

#include "fmp4.h"
#include "snapshot.h"

/* An init segment as the pipeline may see it: parses (-EBADMSG) with a size
 * within SNAPSHOT_DIM_MAX (-EFBIG). ret may be NULL. */
int snapshot_check_init(const void *init, size_t len, struct fmp4_init *ret);
/* A media segment of that init: parses (-EBADMSG); with need_key, starts
 * with a keyframe (-ENOENT otherwise). */
int snapshot_check_segment(const void *seg, size_t len, const struct fmp4_init *init,
			   bool need_key);

/* gst_init_check, then the pipeline "src ! DECODE ! sink" from gst-launch
 * descriptions, where DECODE takes fMP4 (video/quicktime: an init, then
 * moof+mdat pairs) to raw pictures: qtdemux, h264parse, avdec_h264. The
 * decoder's input is limited to SNAPSHOT_DIM_MAX so that a stream whose SPS
 * claims more is refused before a frame is allocated; it runs one thread
 * (frame threads only add latency) and drops corrupt output rather than
 * passing it on. -ENOPKG when an element is missing, -EIO otherwise; the
 * reason at debug level. */
int snapshot_gst_decoder(const char *src, const char *sink, GstElement **ret_pipeline);
/* An ERROR message as -errno: -ENOPKG (missing plugin or codec), -EBADMSG
 * (the stream: demux, decode, format, caps), -ENOMEM, -EIO; why names the
 * element and GStreamer's text. */
int snapshot_gst_error(GstMessage *msg, char *why, size_t size);
/* The JPEG of a jpegenc sample, mapped for reading: a JFIF image of at most
 * SNAPSHOT_JPEG_MAX bytes (-EFBIG), else -EIO. On success unmap ret_map from
 * *ret_buf (gst_buffer_unmap) once the bytes are copied; ret_width and
 * ret_height (may be NULL) give the picture's size. */
int snapshot_gst_jpeg(GstSample *sample, GstBuffer **ret_buf, GstMapInfo *ret_map, int *ret_width,
		      int *ret_height);

#endif
