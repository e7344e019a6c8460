/* wss_internal.h: what the three parts of the WebSocket server share:
 * wss.c (buffers, the send queue, closes, messages, deadlines and srv's
 * callbacks), wss_rx.c (frames read with wslay, the RFC 6455 rules) and
 * wss_http.c (the upgrade, the server's life, and the embedded form that
 * httpd's /api/ws uses). Not for the stages: they see wss.h. */
#ifndef VIGIL_WSS_INTERNAL_H
#define VIGIL_WSS_INTERNAL_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <wslay/wslay.h>

#include "bytes.h"
#include "http1.h"
#include "srv.h"
#include "wss.h"

#define WSS_REPLIES_MAX 256          /* queued replies per connection */
#define WSS_RX_KEEP     (1u << 20)   /* a larger receive buffer is freed after use */
#define WSS_DRAIN_MS    2000         /* at stop: time for clients to get their close */
#define WSS_PACE_MS     10           /* a restarting worker's 1012s: a batch this often */
#define WSS_PACE_ROUNDS 100          /* ... in at most this many batches */
#define WSS_LINGER_MS   2000         /* after our close: time for the client's */
#define WSS_PREREG_MAX  (64u << 10)  /* a message before the register */
#define WSS_BATCH_BYTES (256u << 10) /* handed to srv at once; the rest stays droppable */
#define WSS_BATCH_N     32
#define WSS_PRE         16 /* headroom before a message: its frame header goes there */
#define WSS_GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct wss_buf {
	unsigned refs;
	bool binary;
	uint8_t hdr_len; /* 0 until the frame header is written before data */
	size_t len;
	alignas(16) unsigned char data[]; /* WSS_PRE bytes, then the message */
};

struct wss_tx {
	struct wss_tx *next;
	struct wss_buf *buf;
	struct wss_tx_info info;
};

/* A connection's protocol states:
 *
 *   HEAD --upgrade answered 101--> OPEN --wss_conn_close / peer's close--> CLOSING
 *     |                                                                      |
 *     +--refused (4xx answered, linger)                 close frame sent, linger
 */
enum wss_state {
	WSS_C_HEAD = 0,
	WSS_C_OPEN,
	WSS_C_CLOSING,
	WSS_C_GONE,
};

/* Lives in srv's data area of the connection (zeroed at accept). */
struct wss_conn {
	struct wss_conn *next, **pprev; /* open connections, for wss_first */
	struct srv_conn *sc;
	struct wss *w;
	enum wss_state state;
	struct http1 *head;
	wslay_frame_context_ptr fr;
	const uint8_t *in;
	size_t in_len;
	/* the frame being read */
	bool frame_open;
	uint8_t frame_op;
	uint64_t frame_left;
	uint8_t ctl[125];
	size_t ctl_len;
	/* the message being read */
	bool in_msg, rx_binary;
	struct bytes rx;
	/* queued, and handed to srv */
	struct wss_tx *tx_head, *tx_tail;
	unsigned replies, inflight;
	bool closing, close_queued;
	int close_code;
	char close_reason[124];
	bool registered;
	bool has_token;
	bool held;                        /* wss_conn_hold: a revocation leaves it to its owner */
	uint8_t token[TOK_DIGEST_LEN];    /* digest of the token it registered with */
	alignas(16) unsigned char data[]; /* the stage's per-connection state */
};

/* Builds a frame header (and a control frame's payload) with wslay. */
struct wss_framer {
	wslay_frame_context_ptr fr;
	uint8_t out[WSS_PRE + 125];
	size_t len;
	bool header_done, copy_payload;
};

struct wss {
	struct stage *st;
	const struct cfg *cfg;
	const struct cfg_listen *addr;
	const struct wss_ops *ops;
	void *ctx;
	struct srv *srv;
	bool embedded; /* srv is another layer's (wss_embed) */
	struct wss_conn *conns;
	size_t n_open;
	struct wss_framer framer;
	struct wss_stats stats;
	int64_t shutdown_at_ms; /* unix ms of the announced stop; 0 none */
	bool closing_all;       /* wss_close_all: a connection upgraded now is closed too */
};

/* wss.c */
ssize_t wss_framer_send(const uint8_t *data, size_t len, int flags, void *user);
int wss_send_control(struct wss_conn *c, uint8_t opcode, const uint8_t *payload, size_t len);
void wss_fail(struct wss_conn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void wss_tx_done(struct wss_conn *c, struct wss_tx *tx);
/* Drops every queued message that has an owner (media), replies stay. */
void wss_conn_drop_owned(struct wss_conn *c);
/* The stage forgets the connection: its queue is released and ops->closed
 * runs, once. */
void wss_conn_forget(struct wss_conn *c);
extern const struct srv_ops wss_srv_ops;

/* wss_rx.c */
extern const struct wslay_frame_callbacks wss_frame_in, wss_frame_out;
/* Bytes after the upgrade: frames, messages, control frames. */
void wss_frames(struct wss_conn *c, const uint8_t *buf, size_t len);

/* wss_http.c */
/* Bytes before the upgrade: the request head, then the 101 or the refusal. */
void wss_head(struct wss_conn *c, const uint8_t *buf, size_t len);

#endif
