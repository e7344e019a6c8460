/* sentinel: the internal interfaces of vigil-sentinel, the reference exam-machine
 * client and load generator. Files and prefixes: sentinel.c (main), sentinel_enc.c
 * (snt_enc_, the GStreamer pipeline), sentinel_mp4.c (snt_mp4_, fMP4 boxes),
 * sentinel_msg.c (snt_blob_, snt_msg_, outgoing messages), sentinel_net.c and
 * sentinel_conn.c (snt_net_, snt_conn_, libwebsockets), sentinel_jpeg.c
 * (snt_jpeg_, legacy frame batches), sentinel_state.c (snt_state_, the id file).
 * No GStreamer or libwebsockets type appears here. */
#ifndef VIGIL_SENTINEL_H
#define VIGIL_SENTINEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "id.h"
#include "log.h"

#define SNT_FPS_MIN   0.1
#define SNT_FPS_MAX   60.0
#define SNT_COUNT_MAX 10000
#define SNT_NAME_MAX  128
/* The protocol version sent in sentinel.register. */
#define SNT_PROTOCOL_VERSION 1

/* The command line, parsed (sentinel.c). */
struct snt_opts {
	const char *url;
	const char *token; /* NULL: no token in register */
	const char *name;  /* the base name; with count > 1 each is "<name>-<i>" */
	const char *state; /* --state, NULL for the default place */
	unsigned count;    /* simulated sentinels sharing one encoder */
	double fps;
	unsigned bitrate; /* kbit/s */
	unsigned width, height;
	int64_t duration_ms; /* 0: until SIGINT or SIGTERM */
	bool json;           /* JSON text frames instead of MessagePack */
	bool legacy_jpeg;    /* sentinel.frame with JPEG instead of fMP4 */
	const char *camera;  /* v4l2 device, or NULL */
	bool screen;         /* ximagesrc */
};

/* --- blobs (sentinel_msg.c) ---------------------------------------------------
 * Media bytes shared by every connection: one copy, reference counted. A blob is
 * created by the encoder thread with one reference that travels through the
 * hand-over queue; from then on only the lws thread touches it, so the count is
 * not atomic. */
struct snt_blob {
	unsigned refs;
	size_t len;
	char *b64; /* base64 of data, made on first use by a JSON message */
	size_t b64_len;
	uint8_t data[];
};

struct snt_blob *snt_blob_new(const void *data, size_t len);
struct snt_blob *snt_blob_ref(struct snt_blob *b);
void snt_blob_unref(struct snt_blob *b);

/* --- outgoing messages (sentinel_msg.c) -----------------------------------------
 * One WebSocket message of one connection, as a list of byte ranges: the
 * connection's own envelope bytes around the shared blobs, which are referenced
 * rather than copied. A segment for 200 connections is 200 small envelopes and
 * one blob. */
enum snt_msg_kind {
	SNT_MSG_CONTROL, /* register, ping, bye: never dropped */
	SNT_MSG_INIT,    /* never dropped */
	SNT_MSG_MEDIA,   /* segment or frame batch: dropped when the queue is full */
};

struct snt_part {
	const uint8_t *p;
	size_t len;
};

struct snt_msg {
	struct snt_msg *next;
	enum snt_msg_kind kind;
	bool text;           /* a JSON text frame, else a MessagePack binary frame */
	int64_t duration_ms; /* media: what the queue budget counts */
	size_t total;        /* bytes on the wire, without framing */
	struct snt_part *parts;
	size_t n_parts;
	struct snt_blob **refs;
	size_t n_refs;
	uint8_t *own; /* the bytes of the envelope that are not blobs */
	char type[32];
};

/* Builds one envelope: begin, pack the payload map's n entries through pk (blobs
 * with snt_mb_blob), end. */
struct snt_mb {
	msgpack_sbuffer sb;
	msgpack_packer pk;
	bool json;
	char type[32];
	struct snt_blob **blobs;
	size_t *at; /* offset in sb after each blob's bin header */
	size_t n, cap;
	bool failed;
};

void snt_mb_begin(struct snt_mb *mb, bool json, const char *type, uint32_t n);
/* Packs key: the blob's bytes (base64 in JSON), taking a reference. */
void snt_mb_blob(struct snt_mb *mb, const char *key, struct snt_blob *b);
/* The message, or NULL (-ENOMEM, or an envelope JSON cannot hold) with errno. */
struct snt_msg *snt_mb_end(struct snt_mb *mb, enum snt_msg_kind kind);
void snt_msg_free(struct snt_msg *m);

/* --- media handed from the encoder to the lws thread (sentinel_enc.c) --------- */
enum snt_media_kind {
	SNT_MEDIA_INIT,    /* ftyp + moov */
	SNT_MEDIA_SEGMENT, /* one or more moof + mdat */
	SNT_MEDIA_FRAME,   /* one JPEG image (legacy) */
	SNT_MEDIA_ERROR,   /* the pipeline failed: text in err */
};

struct snt_media {
	enum snt_media_kind kind;
	struct snt_blob *blob; /* owned by whoever holds the struct; NULL for errors */
	int64_t start_ms;      /* unix ms of the capture of the first frame, -1 unknown */
	int64_t duration_ms;   /* -1 unknown */
	bool keyframe;
	char err[256];
};

struct snt_enc;
/* Called from a GStreamer streaming thread after media was queued. */
typedef void (*snt_wake_fn)(void *opaque);

/* Builds the pipeline for o (fMP4 or JPEG, test source, camera or screen). NULL
 * with errno set, and a line in err, when an element is missing. */
struct snt_enc *snt_enc_new(const struct snt_opts *o, snt_wake_fn wake, void *opaque, char *err,
			    size_t errlen);
int snt_enc_start(struct snt_enc *e);
/* Stops the pipeline (state NULL); queued media stays until snt_enc_free(). */
void snt_enc_stop(struct snt_enc *e);
void snt_enc_free(struct snt_enc *e);
/* lws thread: the next queued media into *ret (ownership moves), -EAGAIN when none. */
int snt_enc_pop(struct snt_enc *e, struct snt_media *ret);
/* Thread-safe: the next frame into the encoder becomes a keyframe, so the
 * next segment starts with it. */
void snt_enc_request_keyframe(struct snt_enc *e);
/* Thread-safe: clamps fps to SNT_FPS_MIN..SNT_FPS_MAX, changes the rate on the
 * fly and returns the value applied. */
double snt_enc_set_fps(struct snt_enc *e, double fps);
/* Media the hand-over queue dropped because the lws thread fell behind. */
uint64_t snt_enc_dropped(struct snt_enc *e);

/* --- fMP4 (sentinel_mp4.c) ------------------------------------------------------
 * Cutting mp4mux's output is common/mp4split.h's job, reading the timescale,
 * durations and keyframes common/fmp4.h's. */
/* A copy of init whose avcC box holds avcc instead; *ret_init is malloc'ed.
 * -EBADMSG when init has no moov/trak/.../avc1/avcC, -ENOMEM. */
int snt_mp4_replace_avcc(const uint8_t *init, size_t len, const uint8_t *avcc, size_t avcc_len,
			 uint8_t **ret_init, size_t *ret_len);

/* --- the state file (sentinel_state.c) --------------------------------------------- */
/* The file that keeps the sentinelId of sentinel index (1-based) of count.
 * -ENAMETOOLONG, -ENOENT when no default place can be found (no HOME). */
int snt_state_path(const struct snt_opts *o, unsigned index, const char *name, char *buf,
		   size_t size);
/* Reads a valid UUID from path: 0, -ENOENT, -EBADMSG, -errno. */
int snt_state_load(const char *path, char id[ID_STR_LEN]);
/* Writes id atomically (temporary file and rename), creating the directory. */
int snt_state_save(const char *path, const char id[ID_STR_LEN]);

/* --- the lws side (sentinel_net.c) ---------------------------------------------------- */
struct snt_net;

/* Creates the lws context and the count connections (not yet connecting); takes
 * signal_fd (a signalfd for SIGINT and SIGTERM), closed by snt_net_free().
 * NULL with errno; EINVAL for a URL that is not ws:// or wss://. */
struct snt_net *snt_net_new(const struct snt_opts *o, int signal_fd);
/* Any thread: wakes the lws loop to take media from the encoder. */
void snt_net_wake(void *net);
/* Runs the loop with media from enc until the end; returns the exit status. */
int snt_net_run(struct snt_net *n, struct snt_enc *enc);
void snt_net_free(struct snt_net *n);

#endif
