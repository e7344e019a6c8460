/* ingest: internal interfaces of vigil-ingest, the sentinels' WebSocket
 * server and the ring's only writer.
 *
 *   server.c   setup, ticks and figures around common/wss.h, which serves the
 *              WebSockets (listening socket from vigild, rx limits, tx queue,
 *              close codes, register and idle timers)
 *   session.c  the protocol of PROTOCOL.md section 4 for one connection:
 *              register, init, segment, ping, bye, legacy frames
 *   registry.c the sentinels: ring table slots, who is online, replacement,
 *              bus announcements, control messages from the bus
 *   keyframe.c the keyframe requests of every relay worker, one a second at
 *              most per sentinel, asked again while no join point follows
 *   jpeg.c     legacy JPEG sentinels: a GStreamer pipeline per sentinel
 *   jpeg_clock.c  when each legacy JPEG frame was taken (no GStreamer)
 * All of it runs in the one lws service thread, except the GStreamer
 * streaming threads of jpeg.c, which only hand buffers over.
 */
#ifndef VIGIL_INGEST_H
#define VIGIL_INGEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "env.h"
#include "fmp4.h"
#include "id.h"
#include "ring.h"
#include "stage.h"
#include "tok.h"
#include "wss.h"

struct ingest_jpeg;
struct ingest_kf;

/* The most frames one sentinel.frame may carry (docs/protocol.md): a second
 * at 1000 fps, ten at 100. A batch of more is refused whole. */
#define INGEST_JPEG_BATCH_MAX 1000

/* server.error codes (documented in docs/protocol.md) */
enum ingest_err {
	INGEST_ERR_BAD_REQUEST = 400,  /* bytes or fields that do not parse */
	INGEST_ERR_NOT_FOUND = 404,    /* unknown message type */
	INGEST_ERR_CONFLICT = 409,     /* sequence not above the last one, already registered */
	INGEST_ERR_PRECONDITION = 412, /* segment before any init */
	INGEST_ERR_TOO_LARGE = 413,    /* init larger than the ring keeps, too many frames */
	INGEST_ERR_INTERNAL = 500,
};

struct ingest_stats {
	uint64_t registered_total, rejected_total, replaced_total;
	uint64_t segments, segment_bytes, inits, errors, frames, ring_errors;
	/* legacy JPEG: connections paused for the encoder's backlog, encoded
	 * segments dropped because the loop fell behind (never, by design) */
	uint64_t jpeg_pauses, jpeg_dropped;
	/* last byte received -> visible in the ring, microseconds, since the last heartbeat */
	uint32_t lat_us[4096];
	uint32_t n_lat;
};

/* The per-connection protocol state, owned by session.c. */
struct ingest_sess {
	bool registered;
	bool legacy; /* has sent sentinel.frame */
	uint8_t id[16], session[16];
	char id_str[ID_STR_LEN], session_str[ID_STR_LEN];
	uint32_t slot;
	struct ring_sentinel entry; /* what the ring table says of us, kept in sync */
	struct fmp4_init init;
	bool has_init;
	bool has_seq;
	int64_t last_seq;
	int64_t started_ms;
	int64_t reg_sent_ms; /* the register's envelope timestamp (unix ms), -1 without one */
	/* legacy frames: the highest index encoded, which later frames must pass */
	bool has_index;
	int64_t last_index;
	struct ingest_jpeg *jpeg;
	int64_t token_expires;
};

/* The stage's state, shared by its files. */
struct ingest {
	struct stage *st;
	const struct cfg *cfg;
	struct ring *ring;
	struct tok_store *tokens;
	struct wss *wss;
	struct ingest_stats stats;
	/* registry.c */
	struct wss_conn **by_slot; /* the registered connection of each ring slot */
	int64_t *last_seen_ms;     /* when each slot's sentinel was last online */
	uint32_t n_slots;
	unsigned online;
	/* keyframe.c: the throttle's state of each ring slot */
	struct ingest_kf *kf;
	/* jpeg.c: encoders post their output here from their streaming threads */
	pthread_mutex_t jpeg_lock;
	struct ingest_jpeg *jpegs;
};

/* server.c */
struct ingest *ingest_new(struct stage *st);
void ingest_free(struct ingest *ing);
int ingest_run(struct ingest *ing);

/* The session of a sentinel connection (wss's per-connection data). */
static inline struct ingest_sess *
ingest_conn_sess(struct wss_conn *c)
{
	return wss_conn_data(c);
}

/* session.c */
/* Handles one complete message (buf stays valid until it returns). */
void ingest_sess_message(struct ingest *ing, struct wss_conn *c, const void *buf, size_t len,
			 bool binary, int64_t rx_done_us);
void ingest_sess_closed(struct ingest *ing, struct wss_conn *c);
/* Puts an accepted init (from the wire or from jpeg.c) into the ring. */
int ingest_sess_put_init(struct ingest *ing, struct wss_conn *c, const void *data, size_t len,
			 char *err, size_t errlen);
/* Writes an accepted media segment into the ring. */
int ingest_sess_put_segment(struct ingest *ing, struct wss_conn *c, int64_t sequence,
			    const void *data, size_t len, int64_t start_ms, int64_t duration_ms,
			    int keyframe, char *err, size_t errlen);

/* registry.c */
int ingest_reg_init(struct ingest *ing);
void ingest_reg_free(struct ingest *ing);
/* Finds or allocates the ring slot, replaces an older connection, announces online.
 * -EBUSY when limits.max_sentinels are online. */
int ingest_reg_online(struct ingest *ing, struct wss_conn *c);
void ingest_reg_offline(struct ingest *ing, struct wss_conn *c, const char *reason);
unsigned ingest_reg_count(const struct ingest *ing);
void ingest_reg_bus(void *ctx, const struct bus_msg *msg);
void ingest_reg_check_tokens(struct ingest *ing, int64_t now);
/* Asks the sentinel of c for a keyframe now (server.keyframe.request; a JPEG
 * sentinel's encoder makes one). keyframe.c decides when. */
void ingest_reg_keyframe(struct ingest *ing, struct wss_conn *c);

/* keyframe.c */
int ingest_kf_init(struct ingest *ing);
void ingest_kf_free(struct ingest *ing);
/* A relay worker asked (bus keyframe.request) for the sentinel of slot. */
void ingest_kf_request(struct ingest *ing, uint32_t slot);
/* The sentinel of slot went offline: nothing waits for it any more. */
void ingest_kf_offline(struct ingest *ing, uint32_t slot);
/* A segment of slot entered the ring: a keyframe ends the wait for one. */
void ingest_kf_segment(struct ingest *ing, uint32_t slot, bool keyframe, uint32_t dur_ms);
/* Every tick: merged requests whose second is over, requests to repeat. */
void ingest_kf_tick(struct ingest *ing);

/* jpeg.c */
struct ingest_frame {
	int64_t index;
	uint32_t pos; /* in the message's frames array */
	const void *data;
	size_t len;
};
struct ingest_jpeg *ingest_jpeg_new(struct ingest *ing, struct wss_conn *c);
void ingest_jpeg_free(struct ingest_jpeg *j);
/* Encodes the n frames of one batch, in this order, spread over the time the
 * batch covers (jpeg_clock.h): sent_ms is the envelope's timestamp (unix ms,
 * -1 without one), rx_ms its arrival (unix ms). Pauses the connection while
 * the encoder's backlog is over its bound. -EIO when the pipeline refused. */
int ingest_jpeg_push(struct ingest_jpeg *j, const struct ingest_frame *frames, uint32_t n,
		     int64_t sent_ms, int64_t rx_ms);
/* The next segment the encoder makes starts with a keyframe (each one does). */
void ingest_jpeg_force_key(struct ingest_jpeg *j);
/* In the service thread: moves what the encoders produced into the ring,
 * resumes connections whose backlog went down, closes those whose encoder
 * failed (3005). */
void ingest_jpeg_drain(struct ingest *ing);
/* At the session's end, before it goes offline: the encoder finishes (at most
 * 2 s) and its last segment enters the ring. */
void ingest_jpeg_finish(struct ingest *ing, struct ingest_jpeg *j);

#endif
