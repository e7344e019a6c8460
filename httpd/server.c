/* server: vigil-httpd's HTTP/1.1 server on srv (the loop, connections, TLS)
 * and http1 (request heads). One request of a connection at a time: while it
 * is answered, reading pauses and the bytes already read after it wait in
 * pend, so pipelined requests are answered in order. Requests go to
 * request.c, answers and bodies to answer.c. Runs in the loop thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aread.h"
#include "console.h"
#include "history.h"
#include "log.h"
#include "marks.h"
#include "mjpeg.h"
#include "mp.h"
#include "net.h"
#include "proc.h"
#include "record.h"
#include "server.h"
#include "snap.h"
#include "thumb.h"
#include "xplan.h"

static bool hs_feed(struct httpd *h, struct hreq *r, const uint8_t *buf, size_t len);

/* A request head must arrive within 10 s, or timeouts.idle when shorter. */
static int64_t
hs_head_ms(const struct httpd *h)
{
	return h->cfg->timeout_idle_ms < HS_HEAD_MS ? h->cfg->timeout_idle_ms : HS_HEAD_MS;
}

/* A connection between requests: closed after the keep-alive timeout from
 * now, or at head_by_ms once a head began to arrive (never later: each byte
 * of a head that drips in does not buy another hs_head_ms()). */
static void
hs_wait_deadline(struct httpd *h, struct hreq *r)
{
	srv_conn_deadline(r->sc, r->head_by_ms != 0 ? r->head_by_ms
						    : proc_mono_ms() + h->cfg->timeout_idle_ms);
}

static void
hs_conn_opened(void *ctx, struct srv_conn *sc)
{
	struct httpd *h = ctx;
	struct hreq *r = srv_conn_data(sc);

	r->h = h;
	r->sc = sc;
	r->fd = -1;
	h->stats.connections++;
	r->head_by_ms = proc_mono_ms() + hs_head_ms(h);
	srv_conn_deadline(sc, r->head_by_ms);
}

/* A head http1 refused: its status, then the connection ends. */
static void
hs_refuse(struct httpd *h, struct hreq *r, int status, const char *reason)
{
	r->busy = true;
	r->head_by_ms = 0;
	srv_conn_pause(r->sc, true);
	srv_conn_established(r->sc);
	h->stats.requests++;
	hs_reset(r);
	r->close_after = true;
	if (status == 429)
		hs_extra(r, "retry-after:", "1");
	hs_error(r, status, "%s", reason);
}

/* An upgrade to /api/ws: httpd lets the connection go and the console
 * takes it, with what came after the request. */
static void
hs_to_console(struct httpd *h, struct hreq *r)
{
	struct srv_conn *sc = r->sc;
	struct http1 *req = r->req;
	struct bytes pend = r->pend;

	r->req = NULL;
	memset(&r->pend, 0, sizeof(r->pend));
	hs_reset(r);
	free(r->buf);
	h->stats.connections--;
	srv_conn_pause(sc, false);
	srv_conn_deadline(sc, 0);
	console_adopt(h, sc, req, pend.p, pend.len); /* r is the console's from here */
	bytes_free(&pend);
}

/* True when the connection is no longer httpd's (the console took it). */
static bool
hs_feed(struct httpd *h, struct hreq *r, const uint8_t *buf, size_t len)
{
	size_t used;

	if (r->req == NULL && (r->req = http1_new()) == NULL) {
		srv_conn_abort(r->sc);
		return false;
	}
	if (r->head_by_ms == 0)
		r->head_by_ms = proc_mono_ms() + hs_head_ms(h);
	used = http1_feed(r->req, buf, len);
	switch (http1_state(r->req)) {
	case HTTP1_MORE:
		hs_wait_deadline(h, r);
		return false;
	case HTTP1_BAD:
		hs_refuse(h, r, http1_status(r->req), http1_reason(r->req));
		return false;
	case HTTP1_DONE:
		break;
	}
	/* What came after this request waits until it is answered. */
	if (used < len && bytes_append(&r->pend, buf + used, len - used) < 0) {
		srv_conn_abort(r->sc);
		return false;
	}
	/* Through a trusted proxy, the client it names is the request's address
	 * (logs, the audit log's remote, the per-address cap). */
	switch (srv_conn_forwarded(r->sc, r->req)) {
	case 0:
		break;
	case -EUSERS:
		hs_refuse(h, r, 429, "too many connections from this address");
		return false;
	default:
		srv_conn_abort(r->sc);
		return false;
	}
	r->busy = true;
	r->head_by_ms = 0;
	srv_conn_pause(r->sc, true);
	srv_conn_established(r->sc);
	srv_conn_deadline(r->sc, 0);
	hs_request(h, r);
	if (!r->to_console)
		return false;
	hs_to_console(h, r);
	return true;
}

/* What of pend belongs to the body being read goes to http1. */
static void
hs_body_take(struct hreq *r)
{
	size_t used;

	if (r->pend.len == 0)
		return;
	used = http1_feed(r->req, r->pend.p, r->pend.len);
	memmove(r->pend.p, r->pend.p + used, r->pend.len - used);
	r->pend.len -= used;
}

int
hs_body(struct hreq *r, size_t max, const void **ret, size_t *ret_len)
{
	int err;

	if (!http1_body_complete(r->req)) {
		err = http1_body_begin(r->req, max);
		if (err < 0)
			return err;
		hs_body_take(r);
	}
	if (http1_state(r->req) == HTTP1_BAD)
		return -EBADMSG;
	if (!http1_body_complete(r->req)) {
		/* A client that waits before it sends the body (curl does, for a
		 * large one) is told to go on (RFC 9110 section 10.1.1), once. */
		if (!r->body_wait && http1_version(r->req) >= 11 &&
		    http1_header_has(r->req, "expect", "100-continue") &&
		    srv_conn_write_copy(r->sc, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
			return -ENOMEM;
		/* The rest within the head's time (a client that drips is cut off). */
		r->body_wait = true;
		srv_conn_pause(r->sc, false);
		srv_conn_deadline(r->sc, proc_mono_ms() + hs_head_ms(r->h));
		return -EAGAIN;
	}
	/* Read whole: the connection may serve the next request. */
	if (!r->peer_eof)
		r->close_after = http1_close_after(r->req);
	*ret = http1_body(r->req, ret_len);
	return 0;
}

/* Bytes of a body hs_body waits for (and maybe of the requests after it). */
static void
hs_body_data(struct httpd *h, struct hreq *r, const uint8_t *buf, size_t len)
{
	if (bytes_append(&r->pend, buf, len) < 0) {
		srv_conn_abort(r->sc);
		return;
	}
	hs_body_take(r);
	if (http1_state(r->req) != HTTP1_BAD && !http1_body_complete(r->req))
		return;
	r->body_wait = false;
	srv_conn_pause(r->sc, true);
	srv_conn_deadline(r->sc, 0);
	hs_body_arrived(h, r); /* the handler finds it complete, or malformed */
}

static void
hs_conn_data(void *ctx, struct srv_conn *sc, const uint8_t *buf, size_t len)
{
	struct httpd *h = ctx;
	struct hreq *r = srv_conn_data(sc);

	if (r->mjpeg != NULL) {
		mjpeg_data(h, r, len);
		return;
	}
	if (len == 0 && r->body_wait) {
		srv_conn_abort(sc); /* the body it announced will never come */
		return;
	}
	if (len == 0) {
		/* The client sent all it will: the request being answered is
		 * finished, then the connection ends. */
		r->peer_eof = true;
		if (r->busy)
			r->close_after = true;
		else
			srv_conn_shutdown(sc, 0);
		return;
	}
	if (r->body_wait) {
		hs_body_data(h, r, buf, len);
		return;
	}
	if (r->busy) {
		if (bytes_append(&r->pend, buf, len) < 0)
			srv_conn_abort(sc);
		return;
	}
	hs_feed(h, r, buf, len);
}

/* The answer is out: the next request, if one is waiting in pend. */
static void
hs_next(struct httpd *h, struct hreq *r)
{
	struct bytes pend = r->pend;

	r->busy = false;
	http1_reset(r->req);
	memset(&r->pend, 0, sizeof(r->pend));
	if (pend.len > 0 && hs_feed(h, r, pend.p, pend.len)) {
		bytes_free(&pend);
		return;
	}
	bytes_free(&pend);
	if (r->peer_eof && !r->busy) {
		srv_conn_shutdown(r->sc, 0);
		return;
	}
	if (!r->busy) {
		srv_conn_pause(r->sc, false);
		hs_wait_deadline(h, r);
	}
}

void
hs_done(struct httpd *h, struct hreq *r)
{
	bool close_after = r->close_after;

	hs_reset(r);
	if (close_after) {
		srv_conn_shutdown(r->sc, HS_LINGER_MS);
		return;
	}
	hs_next(h, r);
}

static void
hs_conn_writable(void *ctx, struct srv_conn *sc)
{
	struct httpd *h = ctx;
	struct hreq *r = srv_conn_data(sc);

	if (r->mjpeg != NULL)
		mjpeg_writable(h, r);
	else if (hs_writeable(h, r) < 0)
		srv_conn_abort(sc);
}

/* answer.c tags its chunks with the request; any other tag is a JPEG that
 * mjpeg.c queued (and holds a reference to). */
static void
hs_conn_sent(void *ctx, struct srv_conn *sc, void *tag, bool written)
{
	struct hreq *r = srv_conn_data(sc);

	if (tag != r)
		mjpeg_sent(ctx, r, tag, written);
	else
		hs_sent(ctx, r, written);
}

/* Waiting for a request: a head that stalled gets 408; an idle keep-alive
 * connection just ends. Answering: a client that stopped reading is dropped. */
static void
hs_conn_expired(void *ctx, struct srv_conn *sc)
{
	struct httpd *h = ctx;
	struct hreq *r = srv_conn_data(sc);

	if (r->mjpeg != NULL)
		return; /* mjpeg_tick watches streams */
	if (r->body_wait) {
		r->body_wait = false;
		srv_conn_pause(sc, true);
		r->close_after = true;
		hs_error(r, 408, "the request body did not arrive in time");
		return;
	}
	if (r->busy) {
		if (r->pprev_parked != NULL) { /* parked: the park's own timeout answers */
			srv_conn_deadline(sc, proc_mono_ms() + h->cfg->timeout_idle_ms);
			return;
		}
		log_debug("a client at %s stopped reading its answer: dropped", srv_conn_peer(sc));
		srv_conn_abort(sc);
		return;
	}
	if (r->req != NULL && http1_started(r->req)) {
		hs_refuse(h, r, 408, "the request head did not arrive in time");
		return;
	}
	srv_conn_shutdown(sc, 0);
}

static void
hs_conn_closed(void *ctx, struct srv_conn *sc)
{
	struct httpd *h = ctx;
	struct hreq *r = srv_conn_data(sc);

	if (r->mjpeg != NULL)
		mjpeg_closed(h, r);
	hs_reset(r);
	free(r->buf);
	r->buf = NULL;
	bytes_free(&r->pend);
	http1_free(r->req);
	r->req = NULL;
	h->stats.connections--;
}

static void
hs_conn_wake(void *ctx)
{
	snap_service(ctx);
	mjpeg_service(ctx);
	xplan_service(ctx);
	aread_service(ctx);
	thumb_service(ctx);
}

static void
hs_on_message(void *ctx, const struct bus_msg *msg)
{
	struct httpd *h = ctx;

	if (console_bus(h, msg))
		return;
	if (strcmp(msg->type, "status") == 0) {
		json_decref(h->status);
		h->status = mp_to_json(msg->body);
		h->status_ms = proc_mono_ms();
		hs_unpark(h, HS_PARK_STATUS, -1);
		console_status(h);
	} else if (strcmp(msg->type, "session.deleted") == 0) {
		history_deleted(h, msg);
	} else if (strcmp(msg->type, "mark.added") == 0) {
		marks_added(h, msg);
	} else if (strcmp(msg->type, "stage.state") == 0) {
		char stage[BUS_NAME_MAX], state[16];

		/* A POSTed mark is refused at once while archive cannot take it. */
		if (mp_get_strbuf(msg->body, "stage", stage, sizeof(stage)) == 0 &&
		    mp_get_strbuf(msg->body, "state", state, sizeof(state)) == 0 &&
		    strcmp(stage, bus_stage_name(BUS_ARCHIVE)) == 0) {
			const char *pub = bus_state_public(state);

			h->archive_down =
				strcmp(pub, "offline") == 0 || strcmp(pub, "stopping") == 0;
		}
	} else if (strcmp(msg->type, "token.revoke") == 0) {
		/* A revocation from vigilctl or another operator: refused from now
		 * on, its console connections and streams end. */
		if (console_revoke(h, msg->body) >= 0) {
			log_info("a token was revoked");
			mjpeg_revoked(h);
		}
	} else if (strcmp(msg->type, "revoked") == 0) {
		size_t n;
		const uint8_t *digests = stage_revoked(h->st, &n);

		/* vigild's whole list (kept under data_dir): a lift works again. */
		console_revoked(h, digests, n);
		mjpeg_revoked(h);
	}
}

void
httpd_take_reload(struct httpd *h)
{
	struct hs *s = h->srv;

	if (!stage_take_reload(h->st))
		return;
	httpd_reload(h);
	srv_set_caps(s->srv, h->cfg->max_connections_per_ip, h->cfg->max_handshakes);
	srv_set_proxies(s->srv, h->cfg->trusted_proxies, h->cfg->n_trusted_proxies);
}

bool
httpd_status_fresh(struct httpd *h, int64_t max_age_ms)
{
	int64_t now = proc_mono_ms();

	if (h->status != NULL && now - h->status_ms <= max_age_ms)
		return true;
	/* One question in flight at a time, asked again after a second. */
	if (now - h->status_asked_ms >= 1000 || h->status_asked_ms < h->status_ms) {
		h->status_asked_ms = now;
		if (stage_send(h->st, "status.request", "vigild", "\x80", 1) < 0)
			log_debug("status.request not sent");
	}
	return false;
}

static void
hs_stats(void *ctx, msgpack_packer *pk)
{
	struct httpd *h = ctx;
	const struct httpd_stats *s = &h->stats;
	const struct srv *s_srv = ((struct hs *)h->srv)->srv;

	msgpack_pack_map(pk, 16 + MJPEG_STATS_N); /* 12 + srv_pack_listener's 4 */
	mp_pack_kv_int(pk, "requests", (int64_t)s->requests);
	mp_pack_kv_int(pk, "responses2xx", (int64_t)s->responses_2xx);
	mp_pack_kv_int(pk, "responses4xx", (int64_t)s->responses_4xx);
	mp_pack_kv_int(pk, "responses5xx", (int64_t)s->responses_5xx);
	mp_pack_kv_int(pk, "bytesOut", (int64_t)s->bytes_out);
	mp_pack_kv_int(pk, "segmentsFromRing", (int64_t)s->ring_served);
	mp_pack_kv_int(pk, "segmentsFromDisk", (int64_t)s->file_served);
	mp_pack_kv_int(pk, "exports", (int64_t)s->exports);
	mp_pack_kv_int(pk, "snapshots", (int64_t)s->snapshots);
	mp_pack_kv_int(pk, "thumbnailsMade", (int64_t)s->thumbs_made);
	mp_pack_kv_int(pk, "thumbnailsFromCache", (int64_t)s->thumbs_cached);
	mp_pack_kv_int(pk, "memBytesInFlight", (int64_t)h->mem_in_use);
	srv_pack_listener(s_srv, pk);
	mjpeg_pack_stats(h, pk);
}

static void
hs_conn_tick(void *ctx)
{
	struct httpd *h = ctx;
	struct stage_metrics *m = stage_metrics(h->st);

	m->connections = (int64_t)h->stats.connections;
	stage_tick(h->st);
	httpd_take_reload(h);
	hs_park_timeouts(h);
	mjpeg_tick(h);
	console_tick(h);
	rec_tick(h);
}

static const struct srv_ops hs_ops = {
	.opened = hs_conn_opened,
	.data = hs_conn_data,
	.writable = hs_conn_writable,
	.sent = hs_conn_sent,
	.expired = hs_conn_expired,
	.closed = hs_conn_closed,
	.wake = hs_conn_wake,
	.tick = hs_conn_tick,
};

int
hs_open(struct httpd *h)
{
	const struct cfg *cfg = h->cfg;
	struct srv_params p = { 0 };
	struct hs *s;
	int lfd;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	h->srv = s;
	lfd = stage_listen_fd(h->st, &cfg->listen_http);
	if (lfd < 0) {
		log_error(lfd, "no listening socket for %s:%u", cfg->listen_http.host,
			  cfg->listen_http.port);
		return lfd;
	}
	p.listen_fd = lfd;
	p.tls_cert = cfg->tls_cert;
	p.tls_key = cfg->tls_key;
	/* A connection the console takes over keeps its data area. */
	p.conn_size = sizeof(struct hreq) > console_conn_size() ? sizeof(struct hreq)
								: console_conn_size();
	p.max_per_ip = cfg->max_connections_per_ip;
	p.max_handshakes = cfg->max_handshakes;
	p.proxies = cfg->trusted_proxies;
	p.n_proxies = cfg->n_trusted_proxies;
	s->srv = srv_new(h->st, &p, &hs_ops, h);
	if (s->srv == NULL)
		return -errno;
	if (console_open(h, s->srv) < 0)
		return -ENOMEM;
	stage_on_message(h->st, hs_on_message, h);
	stage_on_stats(h->st, hs_stats, h);
	return 0;
}

void
hs_close(struct httpd *h)
{
	struct hs *s = h->srv;

	if (s == NULL)
		return;
	console_free(h);
	srv_free(s->srv);
	free(s);
	h->srv = NULL;
}

void
hs_wake(struct httpd *h)
{
	struct hs *s = h->srv;

	if (s != NULL && s->srv != NULL)
		srv_wake(s->srv);
}

int
hs_run(struct httpd *h)
{
	struct hs *s = h->srv;
	char lis[64] = "?";
	int r;

	net_local_name(stage_listen_fd(h->st, &h->cfg->listen_http), lis, sizeof(lis), NULL);
	log_info("serving HTTP on %s://%s/", h->cfg->tls_cert != NULL ? "https" : "http", lis);
	while (!stage_stopping(h->st)) {
		r = srv_once(s->srv, 1000);
		if (r < 0) {
			log_error(r, "epoll_wait() failed");
			return r;
		}
	}
	/* live.mjpeg streams end with their close delimiter, not a cut, and
	 * operators get 1012 or 1001: a short while for those bytes to leave
	 * (vigild waits 5 s before SIGKILL). */
	console_close_all(h);
	for (int64_t end = proc_mono_ms() + HS_STOP_FLUSH_MS;
	     (mjpeg_stop(h) > 0 || console_open_count(h) > 0) && proc_mono_ms() < end;) {
		r = srv_once(s->srv, 50);
		if (r < 0)
			break;
	}
	return 0;
}
