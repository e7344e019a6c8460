/* sentinel_enc: what the pipeline (sentinel_enc.c) and the cutting of its
 * output into segments (sentinel_seg.c) share. GStreamer types: only the files
 * that run the pipeline include this. */
#ifndef VIGIL_SENTINEL_ENC_H
#define VIGIL_SENTINEL_ENC_H

#include <pthread.h>
#include <stdatomic.h>

#include <gst/gst.h>

#include "fmp4.h"
#include "sentinel.h"

/* Media waiting for the lws thread; more means it is stuck, and media is dropped. */
#define SNT_ENC_QUEUE_MAX 64
/* Codec changes not yet reached by a segment (rate changes in quick succession). */
#define SNT_ENC_CHANGES_MAX 8

/* Fields by thread: the lock guards the queue and the codec changes; the
 * encoder's streaming thread alone uses last_key and codec_seen, the muxer's
 * (the appsink callback) the split, init, codec and seg_rt. */
struct snt_enc {
	const struct snt_opts *o;
	bool jpeg;
	snt_wake_fn wake;
	void *opaque;
	GstElement *pipe, *pin, *caps, *sink, *clock_overlay;
	GstPad *enc_in, *mux_in; /* the encoder's sink pad, the parser's source pad */
	GstClock *clock;         /* realtime: base_time + running time is unix time */
	GstClockTime base;

	pthread_mutex_t lock;
	struct snt_media q[SNT_ENC_QUEUE_MAX];
	size_t q_head, q_len;
	uint64_t dropped;
	/* Codec data (avcC) from the parser's caps, in order, each with the running
	 * time of its first frame once that frame has passed. */
	struct {
		GstBuffer *codec;
		GstClockTime rt;
	} changes[SNT_ENC_CHANGES_MAX];
	size_t n_changes;
	GstBuffer *codec_seen; /* the newest caps' codec data (encoder's thread) */
	GstBuffer *codec;      /* the one in the init segment sent last (muxer's) */

	/* The encoder's streaming thread (input probe). */
	atomic_bool force_key;
	GstClockTime last_key;

	/* The muxer's streaming thread (appsink). */
	struct mp4split *split;
	uint8_t *init;
	size_t init_len;
	struct fmp4_init init_info; /* of the init mp4mux wrote: track, timescale, trex */
	GstClockTime seg_rt;        /* running time of the open segment's first sample */
};

/* Any streaming thread: queues media and wakes the lws thread. */
void snt_enc_push_blob(struct snt_enc *e, enum snt_media_kind kind, const void *data, size_t len,
		       int64_t start_ms, int64_t duration_ms, bool keyframe);
void snt_enc_push_error(struct snt_enc *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* sentinel_seg.c: the probes on the encoder's input and the parser's output, and
 * the appsink callback. -ENOMEM, -ENOENT (err says which pad is missing). */
int snt_seg_attach(struct snt_enc *e, char *err, size_t errlen);
/* Releases what the segmenter holds; the pipeline is stopped. */
void snt_seg_clear(struct snt_enc *e);

#endif
