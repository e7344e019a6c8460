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
 *   jpeg.c     legacy JPEG sentinels: a GStreamer pipeline per sentinel
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

/* server.error codes (documented in docs/protocol.md) */
enum ingest_err {
	INGEST_ERR_BAD_REQUEST = 400,  /* bytes or fields that do not parse */
	INGEST_ERR_NOT_FOUND = 404,    /* unknown message type */
	INGEST_ERR_CONFLICT = 409,     /* sequence not above the last one, already registered */
	INGEST_ERR_PRECONDITION = 412, /* segment before any init */
	INGEST_ERR_TOO_LARGE = 413,    /* init larger than the ring keeps */
	INGEST_ERR_INTERNAL = 500,
};

struct ingest_stats {
	uint64_t registered_total, rejected_total, replaced_total;
	uint64_t segments, segment_bytes, inits, errors, frames, ring_errors;
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

/* jpeg.c */
struct ingest_jpeg *ingest_jpeg_new(struct ingest *ing, struct wss_conn *c);
void ingest_jpeg_free(struct ingest_jpeg *j);
int ingest_jpeg_push(struct ingest_jpeg *j, const void *jpeg, size_t len);
/* The next segment the encoder makes starts with a keyframe. */
void ingest_jpeg_force_key(struct ingest_jpeg *j);
/* In the service thread: moves what the encoder produced into the ring. */
void ingest_jpeg_drain(struct ingest *ing);

#endif
