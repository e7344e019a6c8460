/* wss: the stages' WebSocket server on libwebsockets. The listening socket
 * from vigild is adopted as a raw fd and each accepted connection handed to
 * lws; the bus and signal fds share the loop. Runs in the service thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <openssl/crypto.h>

#include "env.h"
#include "log.h"
#include "lwsfd.h"
#include "mp.h"
#include "net.h"
#include "proc.h"
#include "wss.h"

#define WSS_REPLIES_MAX 256        /* queued replies per connection */
#define WSS_RX_KEEP     (1u << 20) /* a larger receive buffer is freed after use */
#define WSS_DRAIN_MS    2000       /* at stop: time for clients to get their close */
#define WSS_TICK_US     (250 * LWS_US_PER_MS)

#define WSS_TX_PACKET (1u << 20)

struct wss_buf {
	unsigned refs;
	bool binary;
	size_t len;
	alignas(16) unsigned char data[]; /* LWS_PRE bytes, then the message */
};

struct wss_tx {
	struct wss_tx *next;
	struct wss_buf *buf;
	struct wss_tx_info info;
};

/* lws allocates one per WebSocket (per_session_data_size) and zeroes it. */
struct wss_conn {
	struct wss_conn *next, **pprev;
	struct lws *wsi;
	struct wss *w;
	uint8_t *rx;
	size_t rx_len, rx_cap;
	bool rx_binary;
	struct wss_tx *tx_head, *tx_tail;
	unsigned replies;
	bool closing;
	int close_code;
	char close_reason[124];
	lws_sorted_usec_list_t sul;
	bool registered;
	int64_t sending_stamp_us; /* stamp of a message lws still holds part of */
	bool has_token;
	uint8_t token[TOK_DIGEST_LEN];    /* digest of the token it registered with */
	alignas(16) unsigned char data[]; /* the stage's per-connection state */
};

struct wss {
	struct stage *st;
	const struct cfg *cfg;
	const struct cfg_listen *addr;
	const struct wss_ops *ops;
	void *ctx;
	struct lws_context *lws;
	struct lws_vhost *vh;
	struct lws_protocols protocols[4];
	struct lws_protocol_vhost_options pvo, pvo_default;
	lws_sorted_usec_list_t sul_tick;
	struct wss_conn *conns;
	struct wss_stats stats;
};

enum wss_fd_kind {
	WSS_FD_LISTEN = 1,
	WSS_FD_STAGE,
};

struct wss_buf *
wss_buf_new(size_t len, bool binary)
{
	struct wss_buf *b = malloc(sizeof(*b) + LWS_PRE + len);

	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->binary = binary;
	b->len = len;
	return b;
}

uint8_t *
wss_buf_data(struct wss_buf *b)
{
	return b->data + LWS_PRE;
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

void *
wss_conn_data(struct wss_conn *c)
{
	return c->data;
}

struct wss_conn *
wss_conn_of(void *data)
{
	return lws_container_of(data, struct wss_conn, data);
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

bool
wss_conn_closing(const struct wss_conn *c)
{
	return c->closing;
}

const struct wss_stats *
wss_stats(const struct wss *w)
{
	return &w->stats;
}

void
wss_set_cfg(struct wss *w, const struct cfg *cfg)
{
	w->cfg = cfg;
}

void
wss_wake(struct wss *w)
{
	lws_cancel_service(w->lws);
}

int
wss_conn_queue(struct wss_conn *c, struct wss_buf *b, const struct wss_tx_info *info)
{
	struct wss_tx *tx;

	if (c->closing)
		return -ESHUTDOWN;
	if (info->owner == NULL && c->replies >= WSS_REPLIES_MAX)
		return -ENOBUFS;
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
	lws_callback_on_writable(c->wsi);
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

	if (c->closing)
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

void
wss_conn_close(struct wss_conn *c, int code, const char *reason)
{
	if (c->closing)
		return;
	c->closing = true;
	c->close_code = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	lws_callback_on_writable(c->wsi);
}

/* Register deadline first, then the idle check. TCP_INFO's tcpi_last_data_recv
 * counts every byte from the client, WebSocket pings included, which lws does
 * not report to the protocol callback. */
static void
wss_conn_timer(lws_sorted_usec_list_t *sul)
{
	struct wss_conn *c = lws_container_of(sul, struct wss_conn, sul);
	const struct cfg *cfg = c->w->cfg;
	struct tcp_info ti;
	socklen_t tlen = sizeof(ti);
	char reason[96];
	int64_t idle = cfg->timeout_idle_ms;

	if (c->closing)
		return;
	if (!c->registered) {
		snprintf(reason, sizeof(reason), "No %s within %lld ms", c->w->ops->register_type,
			 (long long)cfg->timeout_register_ms);
		wss_conn_close(c, 3003, reason);
		return;
	}
	if (getsockopt(lws_get_socket_fd(c->wsi), IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0 &&
	    (int64_t)ti.tcpi_last_data_recv < idle) {
		lws_sul_schedule(c->w->lws, 0, &c->sul, wss_conn_timer,
				 (idle - ti.tcpi_last_data_recv + 10) * LWS_US_PER_MS);
		return;
	}
	c->w->stats.idle_closes++;
	snprintf(reason, sizeof(reason), "Nothing received for %lld ms", (long long)idle);
	wss_conn_close(c, 3003, reason);
}

void
wss_conn_registered(struct wss_conn *c)
{
	c->registered = true;
	lws_sul_schedule(c->w->lws, 0, &c->sul, wss_conn_timer,
			 c->w->cfg->timeout_idle_ms * LWS_US_PER_MS);
}

static int64_t
wss_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
wss_conn_rx(struct wss_conn *c, const void *in, size_t len)
{
	struct wss *w = c->w;
	uint64_t max = w->cfg->max_message_bytes;
	size_t remaining, total;
	char reason[123];

	if (lws_is_first_fragment(c->wsi)) {
		c->rx_len = 0;
		c->rx_binary = lws_frame_is_binary(c->wsi);
	}
	/* Counted across fragmented frames, and refused as soon as a frame header
	 * tells that the message cannot fit. */
	remaining = lws_remaining_packet_payload(c->wsi);
	total = c->rx_len + len + remaining;
	if (total > max) {
		w->stats.closes_1009++;
		snprintf(reason, sizeof(reason),
			 "Message of at least %zu bytes exceeds the limit of %llu bytes", total,
			 (unsigned long long)max);
		lws_close_reason(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 (unsigned char *)reason, strlen(reason));
		return -1;
	}
	if (total > c->rx_cap) {
		size_t cap = c->rx_cap < 4096 ? 4096 : c->rx_cap;
		uint8_t *rx;

		while (cap < total)
			cap *= 2;
		if (cap > max)
			cap = max;
		rx = realloc(c->rx, cap);
		if (rx == NULL) {
			lws_close_reason(c->wsi, 3005, (unsigned char *)"Out of memory", 13);
			return -1;
		}
		c->rx = rx;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!lws_is_final_fragment(c->wsi))
		return 0;
	w->ops->message(w->ctx, c, c->rx, c->rx_len, c->rx_binary, wss_now_us());
	if (c->rx_cap > WSS_RX_KEEP) {
		free(c->rx);
		c->rx = NULL;
		c->rx_cap = 0;
	}
	c->rx_len = 0;
	return 0;
}

/* One message per writeable callback: lws keeps what the socket did not take
 * and holds further writeable callbacks until it is out. */
static int
wss_conn_writeable(struct wss_conn *c)
{
	struct wss_tx *tx = c->tx_head;
	struct wss_buf *b;
	int64_t stamp;
	int n;

	/* lws calls back only once what it held of the last message is out. */
	if (c->sending_stamp_us != 0) {
		lat_add(&c->w->stats.tx_latency, proc_unix_us() - c->sending_stamp_us);
		c->sending_stamp_us = 0;
	}
	if (tx != NULL) {
		c->tx_head = tx->next;
		if (c->tx_head == NULL)
			c->tx_tail = NULL;
		b = tx->buf;
		stamp = tx->info.stamp_us;
		n = lws_write(c->wsi, wss_buf_data(b), b->len,
			      b->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
		wss_tx_done(c, tx);
		if (n < 0)
			return -1;
		c->w->stats.sent_messages++;
		if (lws_partial_buffered(c->wsi)) {
			c->w->stats.partial_writes++;
			c->sending_stamp_us = stamp;
		} else if (stamp != 0) {
			lat_add(&c->w->stats.tx_latency, proc_unix_us() - stamp);
		}
		if (c->tx_head != NULL || c->closing || c->sending_stamp_us != 0)
			lws_callback_on_writable(c->wsi);
		return 0;
	}
	if (c->closing) {
		lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
				 (unsigned char *)c->close_reason, strlen(c->close_reason));
		return -1;
	}
	return 0;
}

static void
wss_conn_release(struct wss_conn *c)
{
	struct wss_tx *tx, *next;

	lws_sul_cancel(&c->sul);
	for (tx = c->tx_head; tx != NULL; tx = next) {
		next = tx->next;
		wss_tx_done(c, tx);
	}
	c->tx_head = c->tx_tail = NULL;
	c->w->ops->closed(c->w->ctx, c);
	free(c->rx);
	if (c->pprev != NULL) {
		*c->pprev = c->next;
		if (c->next != NULL)
			c->next->pprev = c->pprev;
	}
}

static bool
wss_path_ok(struct wss *w, struct lws *wsi)
{
	char uri[64];

	return lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) > 0 &&
	       strcmp(uri, w->ops->path) == 0;
}

static int
wss_cb_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct wss *w = lws_context_user(lws_get_context(wsi));
	struct wss_conn *c = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return wss_path_ok(w, wsi) ? 0 : 1;
	case LWS_CALLBACK_ESTABLISHED:
		c->wsi = wsi;
		c->w = w;
		c->next = w->conns;
		if (c->next != NULL)
			c->next->pprev = &c->next;
		c->pprev = &w->conns;
		w->conns = c;
		w->stats.connections_total++;
		lws_sul_schedule(w->lws, 0, &c->sul, wss_conn_timer,
				 w->cfg->timeout_register_ms * LWS_US_PER_MS);
		if (w->ops->opened != NULL)
			w->ops->opened(w->ctx, c);
		return 0;
	/* A connection refused by the path check (or closed before it was
	 * established) still gets CLOSED, with its state never set up. */
	case LWS_CALLBACK_RECEIVE:
		return c == NULL || c->w == NULL || c->closing ? 0 : wss_conn_rx(c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return c == NULL || c->w == NULL ? 0 : wss_conn_writeable(c);
	case LWS_CALLBACK_CLOSED:
		if (c != NULL && c->w != NULL)
			wss_conn_release(c);
		return 0;
	default:
		return 0;
	}
}

/* The raw fds: the listening socket, the stage's bus and signal fds; and
 * wake-ups from other threads (lws_cancel_service). */
static int
wss_cb_fd(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct wss *w = lws_context_user(lws_get_context(wsi));
	intptr_t kind = (intptr_t)lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (kind == WSS_FD_LISTEN)
			lwsfd_accept(w->vh, lws_get_socket_fd(wsi), w->ops->sndbuf);
		else
			stage_service(w->st);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (w != NULL && w->vh != NULL && w->ops->wake != NULL)
			w->ops->wake(w->ctx);
		return 0;
	default:
		return 0;
	}
}

static void
wss_tick(lws_sorted_usec_list_t *sul)
{
	struct wss *w = lws_container_of(sul, struct wss, sul_tick);

	w->ops->tick(w->ctx);
	lws_sul_schedule(w->lws, 0, &w->sul_tick, wss_tick, WSS_TICK_US);
}

static int
wss_open(struct wss *w)
{
	struct lws_context_creation_info info;
	const struct cfg *cfg = w->cfg;
	int lfd;

	/* protocols[0] answers plain HTTP (404); clients that name no subprotocol
	 * get the stage's WebSocket protocol ("default" vhost option). */
	w->protocols[0] =
		(struct lws_protocols){ "http", lws_callback_http_dummy, 0, 0, 0, NULL, 0 };
	/* tx_packet_size: lws hands at most this to one send(2), and keeps the
	 * rest of a message for a later poll round (its default is the 64 KiB rx
	 * buffer: every 125 KB segment went out in two rounds). */
	w->protocols[1] = (struct lws_protocols){ w->ops->protocol,
						  wss_cb_ws,
						  sizeof(struct wss_conn) + w->ops->conn_size,
						  65536,
						  0,
						  NULL,
						  WSS_TX_PACKET };
	w->protocols[2] = (struct lws_protocols){ "vigil-fd", wss_cb_fd, 0, 0, 0, NULL, 0 };
	w->pvo_default = (struct lws_protocol_vhost_options){ NULL, NULL, "default", "1" };
	w->pvo = (struct lws_protocol_vhost_options){ NULL, &w->pvo_default, w->ops->protocol, "" };
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	if (cfg->tls_cert != NULL)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.user = w;
	info.timeout_secs = 10;
	w->lws = lws_create_context(&info);
	if (w->lws == NULL)
		return -EIO;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.vhost_name = w->ops->protocol;
	info.protocols = w->protocols;
	info.pvo = &w->pvo;
	/* lws reads this option from the vhost's info too: without it no TLS. */
	if (cfg->tls_cert != NULL)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.ssl_cert_filepath = cfg->tls_cert;
	info.ssl_private_key_filepath = cfg->tls_key;
	info.timeout_secs = 10;
	w->vh = lws_create_vhost(w->lws, &info);
	if (w->vh == NULL)
		return -EIO;
	lfd = stage_listen_fd(w->st, w->addr);
	if (lfd < 0) {
		log_error(lfd, "no listening socket for %s:%u", w->addr->host, w->addr->port);
		return lfd;
	}
	if (lwsfd_adopt(w->vh, lfd, WSS_FD_LISTEN) < 0 ||
	    lwsfd_adopt(w->vh, stage_signal_fd(w->st), WSS_FD_STAGE) < 0 ||
	    (stage_bus_fd(w->st) >= 0 && lwsfd_adopt(w->vh, stage_bus_fd(w->st), WSS_FD_STAGE) < 0))
		return -EIO;
	lws_sul_schedule(w->lws, 0, &w->sul_tick, wss_tick, WSS_TICK_US);
	return 0;
}

struct wss *
wss_new(struct stage *st, const struct cfg_listen *addr, const struct wss_ops *ops, void *ctx)
{
	struct wss *w = calloc(1, sizeof(*w));
	int r;

	if (w == NULL)
		return NULL;
	w->st = st;
	w->cfg = stage_cfg(st);
	w->addr = addr;
	w->ops = ops;
	w->ctx = ctx;
	r = wss_open(w);
	if (r < 0) {
		log_error(r, "libwebsockets setup failed");
		wss_free(w);
		errno = -r;
		return NULL;
	}
	return w;
}

void
wss_free(struct wss *w)
{
	if (w == NULL)
		return;
	if (w->lws != NULL)
		lws_context_destroy(w->lws);
	free(w);
}

int
wss_run(struct wss *w)
{
	bool restart;
	int64_t deadline;
	char lis[64] = "?";

	net_local_name(stage_listen_fd(w->st, w->addr), lis, sizeof(lis), NULL);
	log_info("accepting WebSockets on %s://%s%s", w->cfg->tls_cert != NULL ? "wss" : "ws", lis,
		 w->ops->path);
	while (!stage_stopping(w->st)) {
		if (lws_service(w->lws, 0) < 0)
			return -EIO;
	}
	/* Clients learn why they are dropped: 1012 to come back soon, 1001 otherwise. */
	restart = stage_restarting(w->st);
	for (struct wss_conn *c = w->conns; c != NULL; c = c->next)
		wss_conn_close(c, restart ? 1012 : 1001,
			       restart ? w->ops->restart_text : "Server shutting down");
	deadline = proc_mono_ms() + WSS_DRAIN_MS;
	while (w->conns != NULL && proc_mono_ms() < deadline)
		lws_service(w->lws, 0);
	return 0;
}
