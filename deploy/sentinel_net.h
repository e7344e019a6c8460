/* sentinel_net: the lws side of vigil-sentinel, shared by sentinel_net.c (the
 * context, the loop, fan-out of media) and sentinel_conn.c (one WebSocket
 * connection per simulated sentinel). Everything here runs in the lws thread. */
#ifndef VIGIL_SENTINEL_NET_H
#define VIGIL_SENTINEL_NET_H

#include <limits.h>

#include <libwebsockets.h>

#include "sentinel.h"

/* Bytes copied (and masked, as a client must) per lws_write(). */
#define SNT_CHUNK (64 * 1024)
/* Media a connection may have waiting before the oldest is dropped. */
#define SNT_QUEUE_MS 3000
#define SNT_PING_MS  10000
/* Reconnect backoff: doubles from min to max, with jitter; reset once a session
 * has lasted SNT_STABLE_MS. */
#define SNT_BACKOFF_MIN_MS 500
#define SNT_BACKOFF_MAX_MS 10000
#define SNT_STABLE_MS      10000
/* No answer to sentinel.register within this closes and retries. */
#define SNT_REGISTER_MS 10000
/* Largest message accepted from the server. */
#define SNT_RX_MAX (1024 * 1024)
/* How long shutdown waits for the server to close after sentinel.bye. */
#define SNT_BYE_MS 3000

/* One connection's life:
 *
 *   WAIT --timer--> CONNECTING --established--> REGISTERING --ack--> READY
 *    ^                 |                            |                  |
 *    +----- closed, error, reject 3007 (backoff) ---+------------------+
 *
 * READY or REGISTERING --stop--> BYE --closed--> DONE; a reject 3001/3002 or a
 * close 3008 leads to DONE as well. */
enum snt_conn_state {
	SNT_CONN_WAIT,
	SNT_CONN_CONNECTING,
	SNT_CONN_REGISTERING,
	SNT_CONN_READY,
	SNT_CONN_BYE,
	SNT_CONN_DONE,
};

struct snt_stats {
	uint64_t segments; /* media messages sent whole */
	uint64_t bytes;    /* bytes of messages sent */
	uint64_t drops;    /* media dropped because the connection was slow */
	uint64_t offline;  /* media not sent because the connection was not ready */
	uint64_t reconnects;
};

struct snt_net;

struct snt_conn {
	struct snt_net *net;
	unsigned index; /* 1-based */
	struct lws *wsi;
	enum snt_conn_state state;
	char name[SNT_NAME_MAX + 16];
	char state_path[PATH_MAX];
	char id[ID_STR_LEN]; /* "" until known */
	char session[ID_STR_LEN];
	int64_t seq;          /* next sentinel.segment sequence in this session */
	unsigned init_gen;    /* the init generation sent in this session, 0: none */
	uint32_t frame_index; /* legacy frames sent */
	uint64_t max_message; /* from the ack */
	int64_t heartbeat_ms;

	struct snt_msg *q_head; /* waiting, the one being written excluded */
	int64_t q_media_ms;
	struct snt_msg *cur; /* being written */
	size_t cur_part, cur_off;
	bool cur_started;

	uint8_t *rx;
	size_t rx_len, rx_cap;
	bool rx_overflow;

	lws_sorted_usec_list_t sul_retry, sul_ping, sul_register;
	int64_t backoff_ms;
	int64_t ready_at; /* monotonic ms */
	char reject[128]; /* reason of a server.registration.reject, "" none */
	int close_code;   /* from the server's close frame, 0: none */
	struct snt_stats st;
};

struct snt_net {
	const struct snt_opts *o;
	struct lws_context *ctx;
	struct snt_enc *enc;
	struct snt_conn *conns;
	unsigned n_conns;
	char host[256];
	char host_header[272];
	char path[1024];
	int port;
	bool tls;
	uint8_t *scratch; /* LWS_PRE + SNT_CHUNK, shared: writes are sequential */

	struct snt_blob *init;   /* the newest init segment */
	unsigned init_gen;       /* counts init segments, 0: none yet */
	struct snt_blob **batch; /* legacy: the JPEG frames of the current second */
	size_t batch_n, batch_cap, batch_bytes;

	lws_sorted_usec_list_t sul_progress, sul_duration, sul_deadline, sul_batch;
	int signal_fd;
	bool signal_owned; /* until lws adopts it */
	bool stopping;     /* bye sent or being sent, no more media */
	bool finished;     /* leave the loop */
	int exit_code;
	struct snt_stats last; /* totals at the previous progress line */
	int64_t last_ms;       /* and when it was written (monotonic) */
};

/* sentinel_conn.c */
void snt_conn_init(struct snt_conn *c, struct snt_net *n, unsigned index);
/* Frees what c holds; its timers were cancelled and its wsi closed before. */
void snt_conn_fini(struct snt_conn *c);
/* Connects now (WAIT -> CONNECTING), or schedules a retry when that fails. */
void snt_conn_connect(struct snt_conn *c);
/* The lws callback's events for this connection. */
void snt_conn_established(struct snt_conn *c);
int snt_conn_receive(struct snt_conn *c, const void *in, size_t len);
void snt_conn_peer_close(struct snt_conn *c, const uint8_t *in, size_t len);
void snt_conn_closed(struct snt_conn *c, const char *why);
/* Queues media for this connection when it is ready (the init first when it
 * has not had the newest), else counts it as offline. */
void snt_conn_media(struct snt_conn *c, const struct snt_media *m);
/* Queues a legacy sentinel.frame with the frames of one second. */
void snt_conn_frames(struct snt_conn *c, struct snt_blob *const *frames, size_t n);
/* Starts a clean end: sentinel.bye when registered, else straight to DONE. */
void snt_conn_stop(struct snt_conn *c, const char *reason);

/* sentinel_out.c */
/* Queues m (ownership moves) and asks for a writeable callback. */
void snt_out_push(struct snt_conn *c, struct snt_msg *m);
/* The writeable callback: the next chunk of the current message; -1 closes. */
int snt_out_writeable(struct snt_conn *c);
/* Drops the waiting media (not the message being written). */
void snt_out_drop_media(struct snt_conn *c);
/* Drops everything, the message being written included. */
void snt_out_clear(struct snt_conn *c);

/* sentinel_net.c */
/* A connection reached DONE; status is the exit code it asks for (0 or 1). */
void snt_net_conn_done(struct snt_net *n, struct snt_conn *c, int status);
/* The whole program ends with status (sentinel.bye on every connection). */
void snt_net_stop(struct snt_net *n, int status, const char *reason);

#endif
