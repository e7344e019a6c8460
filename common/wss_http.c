/* wss_http: a WebSocket connection's start, the upgrade request read by
 * http1 and answered 101 or refused with its HTTP status (RFC 6455 section
 * 4.2), and the server's life: on a listener of its own (ingest, relay), or
 * embedded in another layer's loop, which hands it the connections whose
 * upgrade it read (httpd's /api/ws). Loop thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "b64.h"
#include "log.h"
#include "net.h"
#include "proc.h"
#include "wss_internal.h"

/* ---- the upgrade ---- */

static void wss_close_stopping(struct wss *w, struct wss_conn *c);

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

	/* Through a trusted proxy, the client it names is the connection's
	 * address from here (logs, the audit log, the per-address cap). */
	r = srv_conn_forwarded(c->sc, h);
	if (r == -EUSERS) {
		wss_refuse(c, 429, "Retry-After: 1\r\n", "too many connections from this address");
		return false;
	}
	if (r < 0) {
		srv_conn_abort(c->sc);
		return false;
	}
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
	/* Accepted before the stop, upgraded after it: closed as the others. */
	if (c->w->closing_all)
		wss_close_stopping(c->w, c);
	return true;
}

void
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
	p.proxies = cfg->trusted_proxies;
	p.n_proxies = cfg->n_trusted_proxies;
	p.shared = stage_worker(st) >= 0; /* relay's workers share vigild's socket */
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

struct wss *
wss_embed(struct stage *st, struct srv *s, const struct wss_ops *ops, void *ctx)
{
	struct wss *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->st = st;
	w->cfg = stage_cfg(st);
	w->ops = ops;
	w->ctx = ctx;
	w->srv = s;
	w->embedded = true;
	if (wslay_frame_context_init(&w->framer.fr, &wss_frame_out, &w->framer) != 0) {
		free(w);
		return NULL;
	}
	return w;
}

size_t
wss_conn_size(const struct wss_ops *ops)
{
	return sizeof(struct wss_conn) + ops->conn_size;
}

int
wss_adopt(struct wss *w, struct srv_conn *sc, struct http1 *head, const uint8_t *rest, size_t len)
{
	struct wss_conn *c = srv_conn_data(sc);

	if (srv_conn_data_size(sc) < wss_conn_size(w->ops)) {
		http1_free(head);
		srv_conn_abort(sc);
		return -ENOBUFS;
	}
	memset(c, 0, wss_conn_size(w->ops));
	c->sc = sc;
	c->w = w;
	c->head = head;
	srv_conn_set_ops(sc, &wss_srv_ops, w);
	if (!wss_upgrade(c))
		return 0;
	/* The connection may have carried requests before: the register
	 * deadline counts from the upgrade. */
	srv_conn_deadline(sc, proc_mono_ms() + w->cfg->timeout_register_ms);
	if (len > 0)
		wss_frames(c, rest, len); /* frames sent with the request */
	return 0;
}

void
wss_tick(struct wss *w)
{
	w->ops->tick(w->ctx);
}

/* Clients learn why they are dropped: 1012 to come back soon, 1001
 * otherwise. Media still queued goes (a client that comes back catches up
 * from the ring), so that the close comes after what is in flight, not after
 * seconds of a proctor's backlog: the stage exits within WSS_DRAIN_MS. */
static void
wss_close_stopping(struct wss *w, struct wss_conn *c)
{
	bool restart = stage_restarting(w->st);

	wss_conn_drop_owned(c);
	wss_conn_close(c, restart ? 1012 : 1001,
		       restart ? w->ops->restart_text : "Server shutting down");
}

void
wss_close_all(struct wss *w)
{
	w->closing_all = true;
	for (struct wss_conn *c = w->conns; c != NULL; c = c->next)
		wss_close_stopping(w, c);
}

/* A worker that restarts sends its clients to the other workers. All at
 * once, their reconnections would meet the others' handshake cap
 * (limits.max_handshakes counts each process's connections not yet
 * registered, and a reconnection under load takes 100 ms or more to
 * register): a batch every WSS_PACE_MS instead, a 32nd of the cap (1,600 a
 * second for the default 512), the rest streaming meanwhile; at most
 * WSS_PACE_ROUNDS of them, so that a crowded worker still stops in time.
 * Anything else closes everyone at once. */
static void
wss_close_paced(struct wss *w)
{
	int64_t cap = w->cfg->max_handshakes, until, now;
	size_t batch = cap >= 32 ? (size_t)(cap / 32) : 1, n;
	bool more = true;

	if (stage_worker(w->st) < 0 || !stage_restarting(w->st) || cap <= 0) {
		wss_close_all(w);
		return;
	}
	if (batch < (w->n_open + WSS_PACE_ROUNDS - 1) / WSS_PACE_ROUNDS)
		batch = (w->n_open + WSS_PACE_ROUNDS - 1) / WSS_PACE_ROUNDS;
	w->closing_all = true;
	while (more) {
		more = false;
		n = 0;
		for (struct wss_conn *c = w->conns; c != NULL; c = c->next) {
			if (c->closing || c->state == WSS_C_GONE)
				continue;
			if (n == batch) {
				more = true;
				break;
			}
			wss_close_stopping(w, c);
			n++;
		}
		until = proc_mono_ms() + WSS_PACE_MS;
		while (more && (now = proc_mono_ms()) < until)
			srv_once(w->srv, (int)(until - now));
	}
}

size_t
wss_open_count(const struct wss *w)
{
	return w->n_open;
}

void
wss_free(struct wss *w)
{
	if (w == NULL)
		return;
	if (!w->embedded)
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
	return w->embedded ? w->n_open : srv_conn_count(w->srv);
}

int
wss_run(struct wss *w)
{
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
	/* A connection accepted from now on would only be dropped at the exit:
	 * it goes to another worker, or waits for the next process. */
	srv_stop_accepting(w->srv);
	wss_close_paced(w);
	/* Until every close frame is out, not only queued: a connection leaves
	 * n_open when its close is queued, and one still in srv when the stage
	 * exits would end in a reset (1006) instead of its 1012. */
	deadline = proc_mono_ms() + WSS_DRAIN_MS;
	while ((w->n_open > 0 || srv_conn_count(w->srv) > 0) && proc_mono_ms() < deadline)
		srv_once(w->srv, 50);
	return 0;
}
