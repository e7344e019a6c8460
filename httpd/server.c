/* server: vigil-httpd's libwebsockets HTTP/1.1 server. The listening socket
 * from vigild is adopted as a raw fd and each accepted connection handed to
 * lws as HTTP; the bus and signal fds share the loop. Requests go to
 * request.c, answers and bodies to answer.c. Everything here runs in the lws
 * service thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "log.h"
#include "lwsfd.h"
#include "mp.h"
#include "net.h"
#include "proc.h"
#include "server.h"

/* lws zeroes the per-connection state; this makes it ours (fd -1 is not 0). */
static void
hs_conn_init(struct httpd *h, struct hreq *r, struct lws *wsi)
{
	if (r->inited)
		return;
	r->inited = true;
	r->h = h;
	r->wsi = wsi;
	r->fd = -1;
	h->stats.connections++;
}

static int
hs_cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct httpd *h = lws_context_user(lws_get_context(wsi));
	struct hreq *r = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP_BIND_PROTOCOL:
		if (r != NULL)
			hs_conn_init(h, r, wsi);
		return 0;
	case LWS_CALLBACK_HTTP:
		hs_conn_init(h, r, wsi);
		hs_request(h, r, (const char *)in);
		/* Answered at once (not parked): headers and body go out now. */
		return r->answered && !r->hdr_sent ? hs_writeable(h, r) : 0;
	case LWS_CALLBACK_HTTP_BODY:
		return 0; /* bodies are not read: such requests close after the answer */
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return r != NULL && r->inited ? hs_writeable(h, r) : 0;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (r != NULL && r->inited) {
			hs_reset(r);
			free(r->buf);
			r->buf = NULL;
			r->inited = false;
			h->stats.connections--;
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* ---- loop ---- */

static int
hs_cb_fd(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct httpd *h = lws_context_user(lws_get_context(wsi));
	intptr_t kind = (intptr_t)lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (kind == HS_FD_LISTEN)
			lwsfd_accept(((struct hs *)h->srv)->vh, lws_get_socket_fd(wsi), 0);
		else
			stage_service(h->st);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (h != NULL && h->srv != NULL && ((struct hs *)h->srv)->vh != NULL)
			snap_service(h);
		return 0;
	default:
		return 0;
	}
}

static void
hs_on_message(void *ctx, const struct bus_msg *msg)
{
	struct httpd *h = ctx;

	if (strcmp(msg->type, "status") == 0) {
		json_decref(h->status);
		h->status = mp_to_json(msg->body);
		h->status_ms = proc_mono_ms();
		hs_unpark(h, HS_PARK_STATUS, -1);
	} else if (strcmp(msg->type, "session.deleted") == 0) {
		history_deleted(h, msg);
	} else if (strcmp(msg->type, "token.revoke") == 0) {
		const char *tok;
		size_t tlen;

		/* The operator console's revocation reaches every stage this way. */
		if (mp_get_str(msg->body, "token", &tok, &tlen) == 0 &&
		    tok_revoke(h->tok, tok, tlen) == 0)
			log_info("a token was revoked");
	}
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

	msgpack_pack_map(pk, 10);
	mp_pack_kv_int(pk, "requests", (int64_t)s->requests);
	mp_pack_kv_int(pk, "responses2xx", (int64_t)s->responses_2xx);
	mp_pack_kv_int(pk, "responses4xx", (int64_t)s->responses_4xx);
	mp_pack_kv_int(pk, "responses5xx", (int64_t)s->responses_5xx);
	mp_pack_kv_int(pk, "bytesOut", (int64_t)s->bytes_out);
	mp_pack_kv_int(pk, "segmentsFromRing", (int64_t)s->ring_served);
	mp_pack_kv_int(pk, "segmentsFromDisk", (int64_t)s->file_served);
	mp_pack_kv_int(pk, "exports", (int64_t)s->exports);
	mp_pack_kv_int(pk, "snapshots", (int64_t)s->snapshots);
	mp_pack_kv_int(pk, "memBytesInFlight", (int64_t)h->mem_in_use);
}

static void
hs_tick(lws_sorted_usec_list_t *sul)
{
	struct hs *s = lws_container_of(sul, struct hs, sul_tick);
	struct httpd *h = lws_context_user(s->lws);

	struct stage_metrics *m = stage_metrics(h->st);

	/* Loop figures over the last tick: one lws_service() round each, its
	 * wait in poll() included (an idle loop shows the tick's length). */
	m->connections = (int64_t)h->stats.connections;
	if (s->loop_count > 0) {
		m->loop_avg_s = s->loop_sum / (double)s->loop_count;
		m->loop_max_s = s->loop_max;
		m->loop_min_s = s->loop_min;
		s->loop_count = 0;
		s->loop_sum = s->loop_max = 0;
		s->loop_min = -1;
	}
	stage_tick(h->st);
	if (stage_take_reload(h->st))
		httpd_reload(h);
	hs_park_timeouts(h);
	lws_sul_schedule(s->lws, 0, &s->sul_tick, hs_tick, HS_TICK_US);
}

int
hs_open(struct httpd *h)
{
	struct lws_context_creation_info info;
	const struct cfg *cfg = h->cfg;
	struct hs *s;
	int lfd;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	h->srv = s;
	s->loop_min = -1;
	s->protocols[0] =
		(struct lws_protocols){ "http", hs_cb_http, sizeof(struct hreq), 0, 0, NULL, 0 };
	s->protocols[1] = (struct lws_protocols){ "vigil-fd", hs_cb_fd, 0, 0, 0, NULL, 0 };
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	if (cfg->tls_cert != NULL)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.user = h;
	info.max_http_header_data = HS_HDR_MAX;
	info.timeout_secs = 10;
	s->lws = lws_create_context(&info);
	if (s->lws == NULL)
		return -EIO;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.vhost_name = "vigil-httpd";
	info.protocols = s->protocols;
	if (cfg->tls_cert != NULL)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.ssl_cert_filepath = cfg->tls_cert;
	info.ssl_private_key_filepath = cfg->tls_key;
	/* HTTP/1.1 only, also over TLS: bodies and Range are written for it, and
	 * libwebsockets' h2 would take browsers there by ALPN, untested. */
	info.alpn = "http/1.1";
	/* A client that stalls mid-request or holds an idle keep-alive
	 * connection is dropped: timeouts.idle, at most 10 s for a request. */
	info.timeout_secs =
		cfg->timeout_idle_ms < 10000 ? (unsigned)(cfg->timeout_idle_ms / 1000) : 10;
	if (info.timeout_secs == 0)
		info.timeout_secs = 1;
	info.timeout_secs_ah_idle = info.timeout_secs;
	info.keepalive_timeout =
		(int)(cfg->timeout_idle_ms / 1000) > 0 ? (int)(cfg->timeout_idle_ms / 1000) : 1;
	s->vh = lws_create_vhost(s->lws, &info);
	if (s->vh == NULL)
		return -EIO;
	lfd = stage_listen_fd(h->st, &cfg->listen_http);
	if (lfd < 0) {
		log_error(lfd, "no listening socket for %s:%u", cfg->listen_http.host,
			  cfg->listen_http.port);
		return lfd;
	}
	if (lwsfd_adopt(s->vh, lfd, HS_FD_LISTEN) < 0 ||
	    lwsfd_adopt(s->vh, stage_signal_fd(h->st), HS_FD_STAGE) < 0 ||
	    (stage_bus_fd(h->st) >= 0 && lwsfd_adopt(s->vh, stage_bus_fd(h->st), HS_FD_STAGE) < 0))
		return -EIO;
	stage_on_message(h->st, hs_on_message, h);
	stage_on_stats(h->st, hs_stats, h);
	lws_sul_schedule(s->lws, 0, &s->sul_tick, hs_tick, HS_TICK_US);
	return 0;
}

void
hs_close(struct httpd *h)
{
	struct hs *s = h->srv;

	if (s == NULL)
		return;
	if (s->lws != NULL)
		lws_context_destroy(s->lws);
	free(s);
	h->srv = NULL;
}

void
hs_wake(struct httpd *h)
{
	struct hs *s = h->srv;

	if (s != NULL && s->lws != NULL)
		lws_cancel_service(s->lws);
}

int
hs_run(struct httpd *h)
{
	struct hs *s = h->srv;
	char lis[64] = "?";
	struct timespec a, b;
	double dt;

	net_local_name(stage_listen_fd(h->st, &h->cfg->listen_http), lis, sizeof(lis), NULL);
	log_info("serving HTTP on %s://%s/", h->cfg->tls_cert != NULL ? "https" : "http", lis);
	while (!stage_stopping(h->st)) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (lws_service(s->lws, 0) < 0)
			return -EIO;
		clock_gettime(CLOCK_MONOTONIC, &b);
		dt = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		s->loop_count++;
		s->loop_sum += dt;
		if (dt > s->loop_max)
			s->loop_max = dt;
		if (s->loop_min < 0 || dt < s->loop_min)
			s->loop_min = dt;
	}
	return 0;
}
