/* wss: the stages' WebSocket server: the upgrade read by http1 and answered
 * (or refused with its HTTP status) here, frames parsed and built by wslay,
 * the message rules of RFC 6455 (masking, fragments, control frames, UTF-8,
 * the close handshake) and vigil's (size limits, the register deadline, the
 * idle rule) enforced here, bytes moved by srv. Runs in the loop thread. */
#include <errno.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "b64.h"
#include "bytes.h"
#include "env.h"
#include "http1.h"
#include "log.h"
#include "mp.h"
#include "net.h"
#include "proc.h"
#include "srv.h"
#include "wss.h"

#define WSS_REPLIES_MAX 256          /* queued replies per connection */
#define WSS_RX_KEEP     (1u << 20)   /* a larger receive buffer is freed after use */
#define WSS_DRAIN_MS    2000         /* at stop: time for clients to get their close */
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
	struct wss_conn *conns;
	size_t n_open;
	struct wss_framer framer;
	struct wss_stats stats;
};

/* ---- buffers and frames ---- */

struct wss_buf *
wss_buf_new(size_t len, bool binary)
{
	struct wss_buf *b = malloc(sizeof(*b) + WSS_PRE + len);

	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->binary = binary;
	b->hdr_len = 0;
	b->len = len;
	return b;
}

uint8_t *
wss_buf_data(struct wss_buf *b)
{
	return b->data + WSS_PRE;
}

void
wss_buf_ref(struct wss_buf *b)
{
	b->refs++;
}

void
wss_buf_unref(struct wss_buf *b)
{
	if (b != NULL && --b->refs == 0)
		free(b);
}

/* The framer's "socket": the first call is the header, then the payload,
 * copied only for control frames. */
static ssize_t
wss_framer_send(const uint8_t *data, size_t len, int flags, void *user)
{
	struct wss_framer *f = user;

	if (!f->header_done || f->copy_payload) {
		if (f->len + len > sizeof(f->out))
			return -1;
		memcpy(f->out + f->len, data, len);
		f->len += len;
	}
	f->header_done = true;
	return (ssize_t)len;
}

/* A server frame (final, unmasked) into f->out: the header alone, or the
 * header and the payload of a control frame (copy_payload). */
static int
wss_frame(struct wss_framer *f, uint8_t opcode, const uint8_t *payload, size_t len,
	  bool copy_payload)
{
	struct wslay_frame_iocb io = { .fin = 1,
				       .opcode = opcode,
				       .payload_length = len,
				       .data = payload,
				       .data_length = len };

	if (copy_payload && len > 125)
		return -EINVAL;
	f->len = 0;
	f->header_done = false;
	f->copy_payload = copy_payload;
	return wslay_frame_send(f->fr, &io) == (ssize_t)len ? 0 : -EIO;
}

/* The header goes once into the headroom of the shared buffer, so that every
 * proctor's copy is one chunk. */
static int
wss_buf_frame(struct wss *w, struct wss_buf *b)
{
	if (b->hdr_len != 0)
		return 0;
	if (wss_frame(&w->framer, b->binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
		      wss_buf_data(b), b->len, false) < 0 ||
	    w->framer.len > WSS_PRE)
		return -EIO;
	b->hdr_len = (uint8_t)w->framer.len;
	memcpy(wss_buf_data(b) - b->hdr_len, w->framer.out, b->hdr_len);
	return 0;
}

static int
wss_send_control(struct wss_conn *c, uint8_t opcode, const uint8_t *payload, size_t len)
{
	struct wss_framer *f = &c->w->framer;

	if (wss_frame(f, opcode, payload, len, true) < 0)
		return -EIO;
	return srv_conn_write_copy(c->sc, f->out, f->len);
}

/* ---- tokens and revocation ---- */

int
wss_conn_check_token(struct wss_conn *c, const struct tok_store *store,
		     const msgpack_object *payload, enum cfg_role role,
		     const struct tok_info **ret_info)
{
	const struct tok_info *info;
	const char *secret;
	size_t len;
	int r;

	r = mp_get_str(payload, "token", &secret, &len);
	if (r == 0)
		r = tok_check(store, secret, len, tok_mask_for(role), time(NULL), &info);
	if (r == 0)
		r = tok_digest(secret, len, c->token);
	if (r < 0)
		return r;
	c->has_token = true;
	*ret_info = info;
	return 0;
}

int
wss_revoke(struct wss *w, struct tok_store *store, const msgpack_object *body)
{
	uint8_t digest[TOK_DIGEST_LEN];
	const char *secret;
	size_t len;
	int r, n = 0;

	if (mp_get_str(body, "token", &secret, &len) < 0 || len == 0)
		return -EINVAL;
	r = tok_revoke(store, secret, len);
	if (r < 0)
		return r;
	r = tok_digest(secret, len, digest);
	if (r < 0)
		return r;
	for (struct wss_conn *c = w->conns; c != NULL; c = c->next) {
		if (c->has_token && !c->closing &&
		    CRYPTO_memcmp(c->token, digest, sizeof(digest)) == 0) {
			wss_conn_close(c, 3004, "Token revoked");
			n++;
		}
	}
	log_info("a token was revoked: %d connection%s closed", n, n == 1 ? "" : "s");
	return n;
}

/* ---- accessors ---- */

void *
wss_conn_data(struct wss_conn *c)
{
	return c->data;
}

struct wss_conn *
wss_conn_of(void *data)
{
	return (struct wss_conn *)((char *)data - offsetof(struct wss_conn, data));
}

struct wss_conn *
wss_first(struct wss *w)
{
	return w->conns;
}

struct wss_conn *
wss_next(struct wss_conn *c)
{
	return c->next;
}

void
wss_conn_pause(struct wss_conn *c, bool paused)
{
	srv_conn_pause(c->sc, paused);
}

bool
wss_conn_closing(const struct wss_conn *c)
{
	return c->closing || c->state != WSS_C_OPEN;
}

const struct wss_stats *
wss_stats(const struct wss *w)
{
	return &w->stats;
}

void
wss_pack_listener(const struct wss *w, msgpack_packer *pk)
{
	srv_pack_listener(w->srv, pk);
}

void
wss_set_cfg(struct wss *w, const struct cfg *cfg)
{
	w->cfg = cfg;
	srv_set_caps(w->srv, cfg->max_connections_per_ip, cfg->max_handshakes);
}

void
wss_wake(struct wss *w)
{
	srv_wake(w->srv);
}

/* ---- the send queue ---- */

int
wss_conn_queue(struct wss_conn *c, struct wss_buf *b, const struct wss_tx_info *info)
{
	struct wss_tx *tx;

	if (c->closing || c->state != WSS_C_OPEN)
		return -ESHUTDOWN;
	if (info->owner == NULL && c->replies >= WSS_REPLIES_MAX)
		return -ENOBUFS;
	if (wss_buf_frame(c->w, b) < 0)
		return -EIO;
	tx = malloc(sizeof(*tx));
	if (tx == NULL)
		return -ENOMEM;
	wss_buf_ref(b);
	tx->next = NULL;
	tx->buf = b;
	tx->info = *info;
	if (info->owner == NULL)
		c->replies++;
	if (c->tx_tail != NULL)
		c->tx_tail->next = tx;
	else
		c->tx_head = tx;
	c->tx_tail = tx;
	srv_conn_want_write(c->sc);
	return 0;
}

int
wss_conn_send(struct wss_conn *c, const void *mp, size_t len)
{
	static const struct wss_tx_info reply = { .owner = NULL, .seq = -1 };
	struct wss_buf *b;
	char *json;
	size_t jlen;
	int r;

	if (c->closing || c->state != WSS_C_OPEN)
		return -ESHUTDOWN;
	r = env_msgpack_to_json(mp, len, &json, &jlen);
	if (r < 0)
		return r;
	b = wss_buf_new(jlen, false);
	if (b == NULL) {
		free(json);
		return -ENOMEM;
	}
	memcpy(wss_buf_data(b), json, jlen);
	free(json);
	r = wss_conn_queue(c, b, &reply);
	wss_buf_unref(b);
	return r;
}

static void
wss_tx_done(struct wss_conn *c, struct wss_tx *tx)
{
	if (tx->info.owner == NULL)
		c->replies--;
	else if (c->w->ops->tx_done != NULL)
		c->w->ops->tx_done(c->w->ctx, c, &tx->info);
	wss_buf_unref(tx->buf);
	free(tx);
}

void
wss_conn_drop(struct wss_conn *c, void *owner, int64_t *ret_from, int64_t *ret_to)
{
	struct wss_tx **pp = &c->tx_head, *tx;
	int64_t from = -1, to = -1;

	c->tx_tail = NULL;
	while ((tx = *pp) != NULL) {
		if (tx->info.owner != owner || owner == NULL) {
			c->tx_tail = tx;
			pp = &tx->next;
			continue;
		}
		if (tx->info.seq >= 0) {
			if (from < 0)
				from = tx->info.seq;
			to = tx->info.seq;
		}
		*pp = tx->next;
		wss_tx_done(c, tx);
	}
	if (ret_from != NULL)
		*ret_from = from;
	if (ret_to != NULL)
		*ret_to = to;
}

/* srv took a chunk: a message, whole. */
static void
wss_on_sent(void *ctx, struct srv_conn *sc, void *tag, bool written)
{
	struct wss *w = ctx;
	struct wss_conn *c = srv_conn_data(sc);
	struct wss_tx *tx = tag;

	c->inflight--;
	if (written) {
		w->stats.sent_messages++;
		if (tx->info.stamp_us != 0)
			lat_add(&w->stats.tx_latency, proc_unix_us() - tx->info.stamp_us);
	}
	wss_tx_done(c, tx);
}

static void wss_conn_forget(struct wss_conn *c);

static void
wss_send_close_frame(struct wss_conn *c)
{
	uint8_t p[2 + sizeof(c->close_reason)];
	size_t rl = strlen(c->close_reason);

	p[0] = (uint8_t)(c->close_code >> 8);
	p[1] = (uint8_t)c->close_code;
	memcpy(p + 2, c->close_reason, rl);
	c->close_queued = true;
	c->state = WSS_C_CLOSING;
	/* The stage is done with the connection (a sentinel's session has ended)
	 * before the client reads the close. */
	wss_conn_forget(c);
	if (wss_send_control(c, WSLAY_CONNECTION_CLOSE, p, 2 + rl) < 0) {
		srv_conn_abort(c->sc);
		return;
	}
	srv_conn_shutdown(c->sc, WSS_LINGER_MS);
}

/* srv's queue is empty: the next batch of messages, or the close once all
 * of them are out. */
static void
wss_on_writable(void *ctx, struct srv_conn *sc)
{
	struct wss_conn *c = srv_conn_data(sc);
	size_t bytes = 0;
	unsigned n = 0;

	if (c->state != WSS_C_OPEN)
		return;
	while (c->tx_head != NULL && bytes < WSS_BATCH_BYTES && n < WSS_BATCH_N) {
		struct wss_tx *tx = c->tx_head;
		struct wss_buf *b = tx->buf;

		c->tx_head = tx->next;
		if (c->tx_head == NULL)
			c->tx_tail = NULL;
		if (srv_conn_write(sc, wss_buf_data(b) - b->hdr_len, b->hdr_len + b->len, tx) < 0) {
			wss_tx_done(c, tx);
			srv_conn_abort(sc);
			return;
		}
		c->inflight++;
		bytes += b->hdr_len + b->len;
		n++;
	}
	if (c->tx_head != NULL)
		srv_conn_want_write(sc);
	else if (c->closing && c->inflight == 0)
		wss_send_close_frame(c);
	else if (c->closing)
		srv_conn_want_write(sc);
}

void
wss_conn_close(struct wss_conn *c, int code, const char *reason)
{
	if (c->closing || c->state == WSS_C_GONE)
		return;
	c->closing = true;
	c->close_code = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	if (c->state == WSS_C_OPEN)
		srv_conn_want_write(c->sc);
}

/* A violation of the frame or message rules: what is queued is dropped (the
 * stream cannot be trusted), the close goes out at once. */
static void wss_fail(struct wss_conn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
wss_fail(struct wss_conn *c, int code, const char *fmt, ...)
{
	char reason[124];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	log_debug("closing a connection from %s with %d: %s", srv_conn_peer(c->sc), code, reason);
	for (struct wss_tx *tx; (tx = c->tx_head) != NULL;) {
		c->tx_head = tx->next;
		wss_tx_done(c, tx);
	}
	c->tx_tail = NULL;
	c->closing = false;
	wss_conn_close(c, code, reason);
}

/* ---- messages ---- */

struct env *
wss_decode(struct wss_conn *c, const void *buf, size_t len, bool binary)
{
	char err[160], reason[124];
	struct env *env;
	int r;

	r = env_decode(buf, len, binary ? ENV_MSGPACK : ENV_JSON, &env, err, sizeof(err));
	if (r == 0)
		return env;
	c->w->stats.closes_3006++;
	/* A close reason holds 123 bytes: the error is cut to fit. */
	snprintf(reason, sizeof(reason), "Malformed envelope: %.100s", err);
	wss_conn_close(c, r == -ENOMEM ? 3005 : 3006, reason);
	return NULL;
}

void
wss_msg_begin(struct wss_msg *m, const char *type, uint32_t n_payload)
{
	msgpack_sbuffer_init(&m->sb);
	msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
	env_pack_header(&m->pk, type, time(NULL));
	msgpack_pack_map(&m->pk, n_payload);
}

int
wss_msg_send(struct wss_conn *c, struct wss_msg *m)
{
	int r = wss_conn_send(c, m->sb.data, m->sb.size);

	/* A client that reads nothing, or one being closed, loses replies only. */
	if (r < 0 && r != -ENOBUFS && r != -ESHUTDOWN)
		log_warn(r, "reply not queued");
	msgpack_sbuffer_destroy(&m->sb);
	return r;
}

void
wss_send_error(struct wss_conn *c, int code, const char *reason, const char *ref)
{
	struct wss_msg m;

	wss_msg_begin(&m, "server.error", 3);
	mp_pack_kv_int(&m.pk, "code", code);
	mp_pack_kv_str(&m.pk, "reason", reason);
	mp_pack_kv_str(&m.pk, "ref", ref);
	wss_msg_send(c, &m);
}

void
wss_send_errorf(struct wss_conn *c, int code, const char *ref, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	log_debug("server.error %d (%s): %s", code, ref, reason);
	wss_send_error(c, code, reason, ref);
}

void
wss_send_pong(struct wss_conn *c)
{
	struct wss_msg m;

	wss_msg_begin(&m, "server.pong", 1);
	mp_pack_kv_int(&m.pk, "time", proc_now_ms());
	wss_msg_send(c, &m);
}

void
wss_reject(struct wss_conn *c, int code, const char *reason)
{
	struct wss_msg m;

	wss_msg_begin(&m, "server.registration.reject", 1);
	mp_pack_kv_str(&m.pk, "reason", reason);
	wss_msg_send(c, &m);
	wss_conn_close(c, code, reason);
}

/* ---- deadlines ---- */

void
wss_conn_registered(struct wss_conn *c)
{
	c->registered = true;
	srv_conn_established(c->sc);
	srv_conn_deadline(c->sc, proc_mono_ms() + c->w->cfg->timeout_idle_ms);
}

/* Before the upgrade: the head took too long (408). After it: the register
 * deadline, then the idle rule; any byte from the client counts, WebSocket
 * pings included. */
static void
wss_on_expired(void *ctx, struct srv_conn *sc)
{
	struct wss *w = ctx;
	struct wss_conn *c = srv_conn_data(sc);
	int64_t idle = w->cfg->timeout_idle_ms, quiet;
	char reason[96];

	if (c->state == WSS_C_HEAD) {
		char *ans;
		size_t len;

		if (http1_error_answer(408, NULL, "the request head did not arrive in time", &ans,
				       &len) == 0) {
			srv_conn_write_copy(sc, ans, len);
			free(ans);
		}
		c->state = WSS_C_GONE;
		srv_conn_shutdown(sc, WSS_LINGER_MS);
		return;
	}
	if (c->closing || c->state != WSS_C_OPEN)
		return;
	if (!c->registered) {
		snprintf(reason, sizeof(reason), "No %s within %lld ms", w->ops->register_type,
			 (long long)w->cfg->timeout_register_ms);
		wss_conn_close(c, 3003, reason);
		return;
	}
	quiet = proc_mono_ms() - srv_conn_last_rx(sc);
	if (quiet < idle) {
		srv_conn_deadline(sc, srv_conn_last_rx(sc) + idle + 10);
		return;
	}
	w->stats.idle_closes++;
	snprintf(reason, sizeof(reason), "Nothing received for %lld ms", (long long)idle);
	wss_conn_close(c, 3003, reason);
}

/* ---- receiving frames ---- */

static ssize_t
wss_frame_recv(uint8_t *buf, size_t len, int flags, void *user)
{
	struct wss_conn *c = user;
	size_t n = len < c->in_len ? len : c->in_len;

	if (n == 0)
		return -1; /* wslay: want more */
	memcpy(buf, c->in, n);
	c->in += n;
	c->in_len -= n;
	return (ssize_t)n;
}

static ssize_t
wss_frame_nosend(const uint8_t *data, size_t len, int flags, void *user)
{
	return -1; /* this context only reads */
}

static ssize_t
wss_frame_norecv(uint8_t *buf, size_t len, int flags, void *user)
{
	return -1; /* this context only writes */
}

static int
wss_genmask(uint8_t *buf, size_t len, void *user)
{
	return -1; /* servers do not mask */
}

static const struct wslay_frame_callbacks wss_frame_in = { wss_frame_nosend, wss_frame_recv,
							   wss_genmask };
static const struct wslay_frame_callbacks wss_frame_out = { wss_framer_send, wss_frame_norecv,
							    wss_genmask };

static bool
wss_close_code_ok(unsigned code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
	       (code >= 3000 && code <= 4999);
}

static void
wss_on_close_frame(struct wss_conn *c)
{
	unsigned code = 1000;

	if (c->ctl_len == 1) {
		wss_fail(c, 1002, "A close frame of one byte");
		return;
	}
	if (c->ctl_len >= 2) {
		code = (unsigned)c->ctl[0] << 8 | c->ctl[1];
		if (!wss_close_code_ok(code)) {
			wss_fail(c, 1002, "Close code %u is not one a client may send", code);
			return;
		}
		if (!env_utf8_valid(c->ctl + 2, c->ctl_len - 2)) {
			wss_fail(c, 1007, "The close reason is not valid UTF-8");
			return;
		}
	}
	wss_conn_close(c, (int)code, "Closing as the client asked");
}

static void
wss_on_control(struct wss_conn *c)
{
	switch (c->frame_op) {
	case WSLAY_PING:
		if (wss_send_control(c, WSLAY_PONG, c->ctl, c->ctl_len) < 0)
			srv_conn_abort(c->sc);
		break;
	case WSLAY_CONNECTION_CLOSE:
		wss_on_close_frame(c);
		break;
	default: /* a pong: activity, nothing else */
		break;
	}
}

static void
wss_on_message(struct wss_conn *c)
{
	struct wss *w = c->w;

	c->in_msg = false;
	if (!c->rx_binary && !env_utf8_valid(c->rx.p, c->rx.len)) {
		wss_fail(c, 1007, "Text message is not valid UTF-8");
		return;
	}
	w->ops->message(w->ctx, c, c->rx.p, c->rx.len, c->rx_binary, proc_mono_us());
	bytes_reset(&c->rx, WSS_RX_KEEP);
}

/* The first chunk of a frame: its header is checked against the rules that
 * wslay leaves to its caller. false: the connection is being failed. */
static bool
wss_frame_start(struct wss_conn *c, const struct wslay_frame_iocb *io)
{
	struct wss *w = c->w;
	uint64_t max = w->cfg->max_message_bytes;

	c->frame_open = true;
	c->frame_op = io->opcode;
	c->frame_left = io->payload_length;
	c->ctl_len = 0;
	if (!io->mask) {
		wss_fail(c, 1002, "A client frame must be masked (RFC 6455 section 5.1)");
		return false;
	}
	if (io->rsv != 0) {
		wss_fail(c, 1002, "Reserved bits are set: no extension was negotiated");
		return false;
	}
	switch (io->opcode) {
	case WSLAY_CONTINUATION_FRAME:
		if (!c->in_msg) {
			wss_fail(c, 1002, "A continuation frame with no message to continue");
			return false;
		}
		break;
	case WSLAY_TEXT_FRAME:
	case WSLAY_BINARY_FRAME:
		if (c->in_msg) {
			wss_fail(c, 1002, "A new message began before the last one was finished");
			return false;
		}
		c->in_msg = true;
		c->rx_binary = io->opcode == WSLAY_BINARY_FRAME;
		c->rx.len = 0;
		break;
	case WSLAY_CONNECTION_CLOSE:
	case WSLAY_PING:
	case WSLAY_PONG:
		return true;
	default:
		wss_fail(c, 1002, "Unknown opcode %u", io->opcode);
		return false;
	}
	if (!c->registered && max > WSS_PREREG_MAX)
		max = WSS_PREREG_MAX;
	if (c->rx.len + io->payload_length > max) {
		w->stats.closes_1009++;
		wss_fail(c, 1009,
			 "Message of at least %llu bytes exceeds the limit of %llu bytes%s",
			 (unsigned long long)(c->rx.len + io->payload_length),
			 (unsigned long long)max, c->registered ? "" : " before the register");
		return false;
	}
	return true;
}

static bool
wss_rx_append(struct wss_conn *c, const uint8_t *p, size_t n)
{
	if (bytes_append(&c->rx, p, n) < 0) {
		wss_fail(c, 3005, "Out of memory");
		return false;
	}
	return true;
}

static void
wss_frames(struct wss_conn *c, const uint8_t *buf, size_t len)
{
	c->in = buf;
	c->in_len = len;
	while (c->state == WSS_C_OPEN && !c->closing) {
		struct wslay_frame_iocb io;
		ssize_t r;

		memset(&io, 0, sizeof(io));
		r = wslay_frame_recv(c->fr, &io);
		if (r == WSLAY_ERR_WANT_READ)
			break;
		if (r < 0) {
			wss_fail(c, 1002,
				 "Malformed frame header (a length that is not minimal or "
				 "has its top bit set, or a control frame over 125 bytes or "
				 "fragmented)");
			break;
		}
		if (!c->frame_open && !wss_frame_start(c, &io))
			break;
		if (c->frame_op & 0x8) {
			memcpy(c->ctl + c->ctl_len, io.data, io.data_length);
			c->ctl_len += io.data_length;
		} else if (io.data_length > 0 && !wss_rx_append(c, io.data, io.data_length)) {
			break;
		}
		c->frame_left -= io.data_length;
		if (c->frame_left > 0)
			continue;
		c->frame_open = false;
		if (c->frame_op & 0x8)
			wss_on_control(c);
		else if (io.fin)
			wss_on_message(c);
	}
	c->in = NULL;
	c->in_len = 0;
}

/* ---- the upgrade ---- */

static void wss_refuse(struct wss_conn *c, int status, const char *extra, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
wss_refuse(struct wss_conn *c, int status, const char *extra, const char *fmt, ...)
{
	char reason[256], *ans;
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	log_debug("%d to %s: %s", status, srv_conn_peer(c->sc), reason);
	c->state = WSS_C_GONE;
	if (http1_error_answer(status, extra, reason, &ans, &len) == 0) {
		/* The answer to a HEAD has the headers only (RFC 9110 section 9.3.2). */
		if (c->head != NULL && http1_state(c->head) == HTTP1_DONE &&
		    strcmp(http1_method(c->head), "HEAD") == 0)
			len = (size_t)(strstr(ans, "\r\n\r\n") + 4 - ans);
		srv_conn_write_copy(c->sc, ans, len);
		free(ans);
	}
	srv_conn_shutdown(c->sc, WSS_LINGER_MS);
}

static int
wss_accept_key(const char *key, char out[29])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	char in[64 + sizeof(WSS_GUID)];
	char *b;
	size_t n;

	snprintf(in, sizeof(in), "%s%s", key, WSS_GUID);
	SHA1((const unsigned char *)in, strlen(in), md);
	if (b64_encode(md, sizeof(md), &b, &n) < 0 || n != 28) {
		free(b);
		return -ENOMEM;
	}
	memcpy(out, b, 29);
	free(b);
	return 0;
}

/* The request head is complete: a WebSocket upgrade to our path, or the
 * HTTP answer that says why not (RFC 6455 section 4.2). */
static bool
wss_upgrade(struct wss_conn *c)
{
	const struct wss_ops *ops = c->w->ops;
	struct http1 *h = c->head;
	const char *key = http1_header(h, "sec-websocket-key");
	const char *ver = http1_header(h, "sec-websocket-version");
	uint8_t raw[B64_DECODED_MAX(64)];
	char path[256], accept[29], *resp;
	size_t rawlen;
	bool proto;
	int r;

	r = http1_path(h, path, sizeof(path));
	if (r < 0 || strcmp(path, ops->path) != 0) {
		wss_refuse(c, r == -EINVAL ? 400 : 404, NULL,
			   r == -EINVAL ? "malformed request-target" : "nothing here but %s",
			   ops->path);
		return false;
	}
	if (http1_version(h) < 11) {
		wss_refuse(c, 400, NULL,
			   "a WebSocket upgrade needs HTTP/1.1 (RFC 6455 section 4.1)");
		return false;
	}
	if (strcmp(http1_method(h), "GET") != 0) {
		wss_refuse(c, 405, "Allow: GET\r\n", "%s takes a GET with a WebSocket upgrade",
			   ops->path);
		return false;
	}
	if (!http1_header_has(h, "upgrade", "websocket") ||
	    !http1_header_has(h, "connection", "upgrade")) {
		wss_refuse(c, 426, "Upgrade: websocket\r\nConnection: Upgrade\r\n",
			   "%s is a WebSocket endpoint: upgrade to websocket", ops->path);
		return false;
	}
	if (http1_header_count(h, "sec-websocket-version") != 1 || strcmp(ver, "13") != 0) {
		wss_refuse(c, 426, "Sec-WebSocket-Version: 13\r\n",
			   "WebSocket version 13 only (RFC 6455)");
		return false;
	}
	if (http1_header_count(h, "sec-websocket-key") != 1 || strlen(key) != 24 ||
	    b64_decode_to(key, 24, raw, &rawlen) < 0 || rawlen != 16) {
		wss_refuse(c, 400, NULL, "Sec-WebSocket-Key must be 16 bytes in base64");
		return false;
	}
	if (http1_close_after(h) && http1_header(h, "content-length") != NULL) {
		wss_refuse(c, 400, NULL, "an upgrade request carries no body");
		return false;
	}
	if (wss_accept_key(key, accept) < 0) {
		srv_conn_abort(c->sc);
		return false;
	}
	/* The client's subprotocol is taken when it offers ours; others are not
	 * answered (RFC 6455 section 4.2.2), and no extension is negotiated. */
	proto = http1_header_has(h, "sec-websocket-protocol", ops->protocol);
	if (asprintf(&resp,
		     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
		     accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? ops->protocol : "",
		     proto ? "\r\n" : "") < 0) {
		srv_conn_abort(c->sc);
		return false;
	}
	r = srv_conn_write_copy(c->sc, resp, strlen(resp));
	free(resp);
	if (r < 0 || wslay_frame_context_init(&c->fr, &wss_frame_in, c) != 0) {
		srv_conn_abort(c->sc);
		return false;
	}
	http1_free(c->head);
	c->head = NULL;
	c->state = WSS_C_OPEN;
	c->next = c->w->conns;
	if (c->next != NULL)
		c->next->pprev = &c->next;
	c->pprev = &c->w->conns;
	c->w->conns = c;
	c->w->n_open++;
	c->w->stats.connections_total++;
	srv_conn_deadline(c->sc, srv_conn_accepted_ms(c->sc) + c->w->cfg->timeout_register_ms);
	if (ops->opened != NULL)
		ops->opened(c->w->ctx, c);
	return true;
}

static void
wss_head(struct wss_conn *c, const uint8_t *buf, size_t len)
{
	size_t used;

	if (c->head == NULL && (c->head = http1_new()) == NULL) {
		srv_conn_abort(c->sc);
		return;
	}
	used = http1_feed(c->head, buf, len);
	switch (http1_state(c->head)) {
	case HTTP1_MORE:
		return;
	case HTTP1_BAD:
		wss_refuse(c, http1_status(c->head), NULL, "%s", http1_reason(c->head));
		return;
	case HTTP1_DONE:
		if (wss_upgrade(c) && used < len)
			wss_frames(c, buf + used, len - used); /* frames sent with the request */
		return;
	}
}

/* ---- srv's callbacks ---- */

static void
wss_on_opened(void *ctx, struct srv_conn *sc)
{
	struct wss *w = ctx;
	struct wss_conn *c = srv_conn_data(sc);

	c->sc = sc;
	c->w = w;
	srv_conn_deadline(sc, proc_mono_ms() + w->cfg->timeout_register_ms);
}

static void
wss_on_data(void *ctx, struct srv_conn *sc, const uint8_t *buf, size_t len)
{
	struct wss_conn *c = srv_conn_data(sc);

	if (len == 0) { /* the client closed its side: nothing more can come */
		srv_conn_abort(sc);
		return;
	}
	if (c->state == WSS_C_HEAD)
		wss_head(c, buf, len);
	else if (c->state == WSS_C_OPEN && !c->closing)
		wss_frames(c, buf, len);
}

/* The stage forgets the connection: its queue is released and ops->closed
 * runs, once. */
static void
wss_conn_forget(struct wss_conn *c)
{
	struct wss *w = c->w;
	struct wss_tx *tx, *next;

	for (tx = c->tx_head; tx != NULL; tx = next) {
		next = tx->next;
		wss_tx_done(c, tx);
	}
	c->tx_head = c->tx_tail = NULL;
	if (c->pprev == NULL)
		return;
	w->ops->closed(w->ctx, c);
	*c->pprev = c->next;
	if (c->next != NULL)
		c->next->pprev = c->pprev;
	c->pprev = NULL;
	w->n_open--;
}

static void
wss_on_closed(void *ctx, struct srv_conn *sc)
{
	struct wss_conn *c = srv_conn_data(sc);

	wss_conn_forget(c);
	http1_free(c->head);
	c->head = NULL;
	if (c->fr != NULL)
		wslay_frame_context_free(c->fr);
	c->fr = NULL;
	bytes_free(&c->rx);
	c->state = WSS_C_GONE;
	c->closing = true;
}

static void
wss_on_wake(void *ctx)
{
	struct wss *w = ctx;

	if (w->ops->wake != NULL)
		w->ops->wake(w->ctx);
}

static void
wss_on_tick(void *ctx)
{
	struct wss *w = ctx;
	const struct srv_stats *ss = srv_stats(w->srv);

	w->stats.partial_writes = ss->partial_writes;
	w->stats.open = ss->open;
	w->stats.handshaking = ss->handshaking;
	w->stats.refused_per_ip = ss->refused_per_ip;
	w->stats.refused_handshakes = ss->refused_handshakes;
	srv_take_loop(w->srv, stage_metrics(w->st));
	w->ops->tick(w->ctx);
}

static const struct srv_ops wss_srv_ops = {
	.opened = wss_on_opened,
	.data = wss_on_data,
	.writable = wss_on_writable,
	.sent = wss_on_sent,
	.expired = wss_on_expired,
	.closed = wss_on_closed,
	.wake = wss_on_wake,
	.tick = wss_on_tick,
};

struct wss *
wss_new(struct stage *st, const struct cfg_listen *addr, const struct wss_ops *ops, void *ctx)
{
	struct wss *w = calloc(1, sizeof(*w));
	const struct cfg *cfg = stage_cfg(st);
	struct srv_params p = { 0 };
	int lfd, r;

	if (w == NULL)
		return NULL;
	w->st = st;
	w->cfg = cfg;
	w->addr = addr;
	w->ops = ops;
	w->ctx = ctx;
	lfd = stage_listen_fd(st, addr);
	if (lfd < 0) {
		log_error(lfd, "no listening socket for %s:%u", addr->host, addr->port);
		r = lfd;
		goto err;
	}
	if (wslay_frame_context_init(&w->framer.fr, &wss_frame_out, &w->framer) != 0) {
		r = -ENOMEM;
		goto err;
	}
	p.listen_fd = lfd;
	p.tls_cert = cfg->tls_cert;
	p.tls_key = cfg->tls_key;
	p.conn_size = sizeof(struct wss_conn) + ops->conn_size;
	p.sndbuf = ops->sndbuf;
	p.max_per_ip = cfg->max_connections_per_ip;
	p.max_handshakes = cfg->max_handshakes;
	w->srv = srv_new(st, &p, &wss_srv_ops, w);
	if (w->srv == NULL) {
		r = -errno;
		goto err;
	}
	return w;

err:
	log_error(r, "the WebSocket server did not start");
	wss_free(w);
	errno = -r;
	return NULL;
}

void
wss_free(struct wss *w)
{
	if (w == NULL)
		return;
	srv_free(w->srv);
	if (w->framer.fr != NULL)
		wslay_frame_context_free(w->framer.fr);
	free(w);
}

int
wss_service(struct wss *w, int timeout_ms)
{
	return srv_once(w->srv, timeout_ms);
}

size_t
wss_conn_count(const struct wss *w)
{
	return srv_conn_count(w->srv);
}

int
wss_run(struct wss *w)
{
	bool restart;
	int64_t deadline;
	char lis[64] = "?";
	int r;

	net_local_name(stage_listen_fd(w->st, w->addr), lis, sizeof(lis), NULL);
	log_info("accepting WebSockets on %s://%s%s", w->cfg->tls_cert != NULL ? "wss" : "ws", lis,
		 w->ops->path);
	while (!stage_stopping(w->st)) {
		r = srv_once(w->srv, 1000);
		if (r < 0) {
			log_error(r, "epoll_wait() failed");
			return r;
		}
	}
	/* Clients learn why they are dropped: 1012 to come back soon, 1001 otherwise. */
	restart = stage_restarting(w->st);
	for (struct wss_conn *c = w->conns; c != NULL; c = c->next)
		wss_conn_close(c, restart ? 1012 : 1001,
			       restart ? w->ops->restart_text : "Server shutting down");
	deadline = proc_mono_ms() + WSS_DRAIN_MS;
	while (w->n_open > 0 && proc_mono_ms() < deadline)
		srv_once(w->srv, 50);
	return 0;
}
