/* wss: the stages' WebSocket server: the upgrade read by http1 and answered
 * (or refused with its HTTP status) here, frames parsed and built by wslay,
 * the message rules of RFC 6455 (masking, fragments, control frames, UTF-8,
 * the close handshake) and vigil's (size limits, the register deadline, the
 * idle rule) enforced here, bytes moved by srv. Runs in the loop thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wslay/wslay.h>

#include "log.h"
#include "mp.h"
#include "proc.h"
#include "wss_internal.h"

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

size_t
wss_buf_len(const struct wss_buf *b)
{
	return b->len;
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
ssize_t
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

int
wss_send_control(struct wss_conn *c, uint8_t opcode, const uint8_t *payload, size_t len)
{
	struct wss_framer *f = &c->w->framer;

	if (wss_frame(f, opcode, payload, len, true) < 0)
		return -EIO;
	return srv_conn_write_copy(c->sc, f->out, f->len);
}

const char *
wss_conn_peer(const struct wss_conn *c)
{
	return srv_conn_peer(c->sc);
}

/* ---- tokens and revocation ---- */

int
wss_conn_check_token(struct wss_conn *c, const struct tok_store *store,
		     const msgpack_object *payload, enum cfg_role role,
		     const struct tok_info **ret_info)
{
	const struct tok_info *info = NULL;
	const char *secret;
	size_t len;
	int r;

	r = mp_get_str(payload, "token", &secret, &len);
	if (r == 0)
		r = tok_check(store, secret, len, tok_mask_for(role), time(NULL), &info);
	if (r == 0)
		r = tok_digest(secret, len, c->token);
	*ret_info = info;
	if (r < 0)
		return r;
	c->has_token = true;
	return 0;
}

bool
wss_conn_revoked(const struct wss_conn *c, const struct tok_store *store)
{
	return c->has_token && tok_digest_revoked(store, c->token);
}

void
wss_conn_hold(struct wss_conn *c)
{
	c->held = true;
}

/* Closes every connection (but the held ones) whose token is on store's
 * revocation list. */
static int
wss_close_revoked(struct wss *w, const struct tok_store *store)
{
	int n = 0;

	for (struct wss_conn *c = w->conns; c != NULL; c = c->next) {
		if (!c->held && !c->closing && wss_conn_revoked(c, store)) {
			wss_conn_close(c, 3004, "Token revoked");
			n++;
		}
	}
	return n;
}

int
wss_revoke(struct wss *w, struct tok_store *store, const msgpack_object *body)
{
	const char *secret;
	size_t len;
	int r, n;

	if (mp_get_str(body, "token", &secret, &len) < 0 || len == 0)
		return -EINVAL;
	r = tok_revoke(store, secret, len);
	if (r < 0)
		return r;
	n = wss_close_revoked(w, store);
	log_info("a token was revoked: %d connection%s closed", n, n == 1 ? "" : "s");
	return n;
}

int
wss_revoke_list(struct wss *w, struct tok_store *store, const uint8_t *digests, size_t n)
{
	int r = tok_set_revoked(store, digests, n);

	if (r < 0)
		return r;
	r = wss_close_revoked(w, store);
	if (r > 0)
		log_info("%d connection%s of revoked tokens closed", r, r == 1 ? "" : "s");
	return r;
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
	srv_set_proxies(w->srv, cfg->trusted_proxies, cfg->n_trusted_proxies);
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

void
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

void
wss_conn_drop_owned(struct wss_conn *c)
{
	struct wss_tx **pp = &c->tx_head, *tx;

	c->tx_tail = NULL;
	while ((tx = *pp) != NULL) {
		if (tx->info.owner == NULL) {
			c->tx_tail = tx;
			pp = &tx->next;
			continue;
		}
		*pp = tx->next;
		wss_tx_done(c, tx);
	}
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
void
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

int
wss_check_version(const msgpack_object *payload, char *reason, size_t size)
{
	int64_t version;
	int r = mp_get_int(payload, "version", &version);

	if (r == -ENOENT || (r == 0 && version == 1))
		return 0;
	if (r == 0)
		snprintf(reason, size, "Unsupported version %lld (this server speaks 1)",
			 (long long)version);
	else
		snprintf(reason, size, "version must be the integer 1");
	return -1;
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

static void
wss_send_shutdown(struct wss_conn *c, int64_t at_ms)
{
	struct wss_msg m;

	wss_msg_begin(&m, "server.shutdown", 1);
	mp_pack_kv_int(&m.pk, "at", at_ms);
	wss_msg_send(c, &m);
}

void
wss_conn_registered(struct wss_conn *c)
{
	c->registered = true;
	srv_conn_established(c->sc);
	srv_conn_deadline(c->sc, proc_mono_ms() + c->w->cfg->timeout_idle_ms);
	/* A client that comes in after the notice learns of the stop too. */
	if (c->w->shutdown_at_ms > 0)
		wss_send_shutdown(c, c->w->shutdown_at_ms);
}

void
wss_shutdown_notice(struct wss *w, int64_t at_ms)
{
	if (at_ms <= 0)
		return;
	w->shutdown_at_ms = at_ms;
	for (struct wss_conn *c = w->conns; c != NULL; c = c->next) {
		if (c->registered && !wss_conn_closing(c))
			wss_send_shutdown(c, at_ms);
	}
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

void
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
	w->ops->tick(w->ctx);
}

const struct srv_ops wss_srv_ops = {
	.opened = wss_on_opened,
	.data = wss_on_data,
	.writable = wss_on_writable,
	.sent = wss_on_sent,
	.expired = wss_on_expired,
	.closed = wss_on_closed,
	.wake = wss_on_wake,
	.tick = wss_on_tick,
};
