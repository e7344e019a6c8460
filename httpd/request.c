/* request: one HTTP request: method, route, authentication (Bearer or
 * ?token=, roles from tok.h, playlist tokens from hlscap.h), the handler it
 * goes to, and parking while a handler waits for the bus, the snapshot
 * worker or the request's body. Loop thread. */
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

#include <openssl/crypto.h>

#include "archive_read.h"
#include "aread.h"
#include "catalog.h"
#include "export.h"
#include "history.h"
#include "hls.h"
#include "log.h"
#include "marks.h"
#include "metrics.h"
#include "mjpeg.h"
#include "proc.h"
#include "record.h"
#include "server.h"
#include "snap.h"
#include "static.h"
#include "thumb.h"

void
hs_park(struct hreq *r, enum hs_park why, int ref, int timeout_ms)
{
	struct hs *s = r->h->srv;

	r->park = why;
	r->park_ref = ref;
	r->park_deadline = proc_mono_ms() + timeout_ms;
	r->park_timed_out = false;
	if (r->pprev_parked != NULL)
		return;
	r->next_parked = s->parked;
	if (s->parked != NULL)
		s->parked->pprev_parked = &r->next_parked;
	r->pprev_parked = &s->parked;
	s->parked = r;
}

bool
hs_parked_timed_out(const struct hreq *r)
{
	return r->park_timed_out;
}

static void
hs_unlink(struct hreq *r)
{
	if (r->pprev_parked == NULL)
		return;
	*r->pprev_parked = r->next_parked;
	if (r->next_parked != NULL)
		r->next_parked->pprev_parked = r->pprev_parked;
	r->pprev_parked = NULL;
	r->next_parked = NULL;
}

static void hs_dispatch(struct httpd *h, struct hreq *r);

/* The handler runs again; it answers or parks once more. */
static void
hs_resume(struct httpd *h, struct hreq *r, bool timed_out)
{
	hs_unlink(r);
	r->park = 0;
	r->park_timed_out = timed_out;
	r->resumed = true;
	hs_dispatch(h, r);
	r->resumed = false;
}

void
hs_body_arrived(struct httpd *h, struct hreq *r)
{
	r->resumed = false;
	hs_dispatch(h, r);
}

int
hs_park_ref(const struct hreq *r)
{
	return r->resumed ? r->park_ref : -1;
}

void
hs_retry_after(struct hreq *r, int seconds)
{
	hs_extra(r, "retry-after:", "%d", seconds);
}

void
hs_link_next(struct hreq *r, const char *target)
{
	hs_extra(r, "link:", "<%s>; rel=\"next\"", target);
}

void
hs_unpark(struct httpd *h, enum hs_park why, int ref)
{
	struct hs *s = h->srv;
	struct hreq *r, *next;

	for (r = s->parked; r != NULL; r = next) {
		next = r->next_parked;
		if (r->park == why && (ref < 0 || r->park_ref == ref))
			hs_resume(h, r, false);
	}
}

void
hs_park_timeouts(struct httpd *h)
{
	struct hs *s = h->srv;
	int64_t now = proc_mono_ms();
	struct hreq *r, *next;

	for (r = s->parked; r != NULL; r = next) {
		next = r->next_parked;
		if (now >= r->park_deadline)
			hs_resume(h, r, true);
	}
}

void
hs_reset(struct hreq *r)
{
	hs_unlink(r);
	body_free(&r->body);
	if (r->stream != NULL)
		r->stream->done(r->stream_ctx);
	r->stream = NULL;
	r->stream_ctx = NULL;
	r->stream_end = false;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->answered = r->hdr_sent = r->close_after = false;
	r->body_wait = false;
	r->park = 0;
	r->park_timed_out = false;
	r->resumed = false;
	r->extra_len = 0;
	r->pos = r->end = 0;
	r->part = 0;
	r->part_start = 0;
	r->authed = r->auth_query = r->auth_cap = false;
	r->actor[0] = '\0';
	r->cap[0] = '\0';
	r->token_expires = 0;
	rec_reset(r);
}

static enum cfg_role
hs_need_role(enum route_kind kind)
{
	switch (kind) {
	case ROUTE_METRICS:
	case ROUTE_API_METRICS:
	case ROUTE_API_CONFIG:
	case ROUTE_AUDIT:
	case ROUTE_AUDIT_VERIFY:
		return CFG_ROLE_OPERATOR;
	case ROUTE_EXPORT:
	case ROUTE_MANIFEST:
	case ROUTE_SESSION:
		return CFG_ROLE_ARCHIVIST;
	default:
		return CFG_ROLE_PROCTOR;
	}
}

/* The token of the request: Authorization: Bearer wins over ?token=. NULL
 * without one; the secret lives in buf. */
static const char *
hs_secret(struct hreq *r, char *buf, size_t size, bool *ret_in_query)
{
	*ret_in_query = false;
	if (hs_header(r, "authorization", buf, size))
		return strncasecmp(buf, "Bearer ", 7) == 0 ? buf + 7 : NULL;
	if (hs_arg(r, "token", buf, size < HS_TOKEN_MAX ? size : HS_TOKEN_MAX)) {
		*ret_in_query = true;
		return buf;
	}
	return NULL;
}

int
hs_token_id(struct hreq *r, uint8_t ret_digest[32], int64_t *ret_expires)
{
	if (!r->authed || r->auth_cap)
		return -ENOENT;
	memcpy(ret_digest, r->token_digest, TOK_DIGEST_LEN);
	*ret_expires = r->token_expires;
	return 0;
}

int
hs_actor(const struct hreq *r, const char **ret_name, enum cfg_role *ret_role)
{
	if (!r->authed)
		return -ENOENT;
	*ret_name = r->actor;
	*ret_role = r->actor_role;
	return 0;
}

int
hs_link_token(struct hreq *r, int64_t expires, char *out)
{
	out[0] = '\0';
	if (!r->authed || !r->auth_query)
		return 0;
	/* A playlist fetched again with its own links' token (a live playlist's
	 * reload) links with that token: playlist tokens never extend
	 * themselves. */
	if (r->auth_cap) {
		memcpy(out, r->cap, sizeof(r->cap));
		return 0;
	}
	if (r->token_expires != 0 && expires > r->token_expires)
		expires = r->token_expires;
	return hlscap_make(r->h->hlscap, r->token_digest, r->route.sentinel, r->route.session,
			   expires, out);
}

static void
hs_authed(struct hreq *r, const struct tok_info *info, bool in_query)
{
	r->authed = true;
	r->auth_query = in_query;
	r->actor_role = info->role;
	r->token_expires = info->expires;
	snprintf(r->actor, sizeof(r->actor), "%s", info->name);
}

/* A request refused for its token, in the audit log (auth.failed): the path
 * names the resource, never the token (that is in the query). */
static void
hs_refused(struct httpd *h, struct hreq *r, const struct tok_info *info, const char *why)
{
	char path[ROUTE_PATH_MAX + 1];

	if (http1_path(r->req, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "?");
	rec_refused(h, path, srv_conn_peer(r->sc), info, why);
}

/* The reason a playlist token is refused; every refusal is a 403: the token
 * authenticates, for less than was asked. */
static const char *
hs_cap_refusal(int err)
{
	switch (err) {
	case -EKEYEXPIRED:
		return "Playlist token expired";
	case -EKEYREVOKED:
		return "Playlist token revoked";
	case -EPERM:
		return "Playlist token not valid for this role";
	default:
		return "Playlist token not valid for this session";
	}
}

/* A playlist token (hlscap.h) reads its session's init, segments and
 * playlist, nothing else. */
static bool
hs_auth_cap(struct httpd *h, struct hreq *r, const char *text, size_t len, bool in_query,
	    int64_t now)
{
	const struct tok_info *info;
	int err;

	switch (r->route.kind) {
	case ROUTE_INIT:
	case ROUTE_SEGMENT:
	case ROUTE_PLAYLIST:
		if ((r->method & (ROUTE_GET | ROUTE_HEAD)) != 0)
			break;
		/* fall through */
	default:
		hs_refused(h, r, NULL, "Playlist token not valid here");
		hs_error(r, 403,
			 "Playlist token not valid here: it reads its session's init.mp4, "
			 "segments and playlist.m3u8 only");
		return false;
	}
	err = hlscap_check(h->hlscap, h->tok, text, len, r->route.sentinel, r->route.session, now,
			   &info);
	if (err == -ENOMEM) {
		hs_error(r, 500, "out of memory");
		return false;
	}
	if (err < 0) {
		hs_refused(h, r, NULL, hs_cap_refusal(err));
		hs_error(r, 403, "%s", hs_cap_refusal(err));
		return false;
	}
	hs_authed(r, info, in_query);
	r->auth_cap = true;
	memcpy(r->cap, text, len);
	r->cap[len] = '\0';
	return true;
}

/* True when the request may go on; otherwise it has been answered. */
static bool
hs_auth(struct httpd *h, struct hreq *r)
{
	char tok[HS_TOKEN_MAX + 16];
	const struct tok_info *info = NULL;
	int64_t now = time(NULL);
	const char *secret, *why;
	enum cfg_role need;
	bool in_query, ok = false;
	size_t len = 0;
	int err;

	if (r->route.kind == ROUTE_STATIC || r->route.kind == ROUTE_HEALTH ||
	    r->route.kind == ROUTE_API_RELAY)
		return true;
	need = hs_need_role(r->route.kind);
	secret = hs_secret(r, tok, sizeof(tok), &in_query);
	if (secret == NULL) {
		err = -ENOENT;
	} else {
		len = strlen(secret);
		err = tok_check(h->tok, secret, len, tok_mask_for(need), now, &info);
	}
	/* A configured token is never taken for a playlist token, whatever it
	 * looks like: only a string the store does not know is one. */
	if (err == -EACCES && hlscap_is(secret, len)) {
		ok = hs_auth_cap(h, r, secret, len, in_query, now);
		goto cleanse;
	}
	if (err == 0) {
		err = tok_digest(secret, len, r->token_digest);
		if (err == 0) {
			hs_authed(r, info, in_query);
			ok = true;
			goto cleanse;
		}
	}
	if (err == -ENOMEM) {
		hs_error(r, 500, "out of memory");
		goto cleanse;
	}
	why = err == -ENOENT ? "Missing token" : tok_refusal(err, need);
	/* info names a known token refused for its role, expiry or revocation. */
	hs_refused(h, r, err == -ENOENT || err == -EACCES ? NULL : info, why);
	if (err == -EPERM) {
		hs_error(r, 403, "%s", why);
	} else {
		hs_extra(r, "www-authenticate:", "Bearer realm=\"vigil\"");
		hs_error(r, 401, "%s", why);
	}
cleanse:
	OPENSSL_cleanse(tok, sizeof(tok));
	return ok;
}

static void
hs_dispatch(struct httpd *h, struct hreq *r)
{
	switch (r->route.kind) {
	case ROUTE_STATIC:
		static_get(h, r);
		break;
	case ROUTE_API_RELAY:
		static_relay(h, r);
		break;
	case ROUTE_HEALTH:
	case ROUTE_METRICS:
	case ROUTE_API_STATUS:
	case ROUTE_API_METRICS:
	case ROUTE_API_CONFIG:
		metrics_get(h, r);
		break;
	case ROUTE_SENTINELS:
		hs_json(r, 200, ar_sentinels_json(h));
		break;
	case ROUTE_ALL_SESSIONS:
		catalog_get(h, r);
		break;
	case ROUTE_SNAPSHOT:
		snap_get(h, r);
		break;
	case ROUTE_LIVE_MJPEG:
		mjpeg_get(h, r);
		break;
	case ROUTE_EXPORT:
		export_get(h, r);
		break;
	case ROUTE_PLAYLIST:
		hls_get(h, r);
		break;
	case ROUTE_MANIFEST:
		manifest_get(h, r);
		break;
	case ROUTE_AUDIT:
		aread_get(h, r);
		break;
	case ROUTE_AUDIT_VERIFY:
		aread_verify_get(h, r);
		break;
	case ROUTE_THUMBS:
		thumb_list_get(h, r);
		break;
	case ROUTE_THUMB:
		thumb_get(h, r);
		break;
	case ROUTE_MARKS:
		marks_handle(h, r);
		break;
	default:
		history_handle(h, r);
		break;
	}
}

static unsigned
hs_method(const struct http1 *req, bool *ret_head)
{
	const char *m = http1_method(req);

	*ret_head = strcmp(m, "HEAD") == 0;
	if (strcmp(m, "GET") == 0)
		return ROUTE_GET;
	if (*ret_head)
		return ROUTE_HEAD;
	if (strcmp(m, "DELETE") == 0)
		return ROUTE_DELETE;
	if (strcmp(m, "POST") == 0)
		return ROUTE_POST;
	return ROUTE_OTHER;
}

void
hs_request(struct httpd *h, struct hreq *r)
{
	char path[ROUTE_PATH_MAX + 1];
	int err;

	hs_reset(r);
	h->stats.requests++;
	r->close_after = http1_close_after(r->req);
	r->method = hs_method(r->req, &r->head);
	err = http1_path(r->req, path, sizeof(path));
	if (err < 0) {
		r->close_after = true;
		if (err == -ENAMETOOLONG)
			hs_error(r, 414, "the path is over %d bytes", ROUTE_PATH_MAX);
		else
			hs_error(r, 400, "malformed request-target, or a NUL byte in the path");
		return;
	}
	/* The operator console's path goes to it whole: wss answers the upgrade,
	 * or refuses a bad one with its status. Other upgrades are not ours. */
	if (strcmp(path, "/api/ws") == 0) {
		r->to_console = true;
		return;
	}
	if (http1_header(r->req, "upgrade") != NULL) {
		r->close_after = true;
		hs_error(r, 404,
			 "no WebSocket endpoint here: the operator console is /api/ws, "
			 "live video is relay's /proctor");
		return;
	}
	err = route_parse(path, &r->route);
	if (err == -EINVAL) {
		hs_error(r, 400, "%s", r->route.reason);
		return;
	}
	if (err < 0) {
		hs_error(r, 404, "no such resource");
		return;
	}
	if ((route_methods(r->route.kind) & r->method) == 0) {
		/* A body we did not read may follow a POST or PUT: the connection ends. */
		r->close_after = true;
		hs_extra(r, "allow:", "%s", route_allow(r->route.kind));
		hs_error(r, 405, "method not allowed here (allowed: %s)",
			 route_allow(r->route.kind));
		return;
	}
	if (!hs_auth(h, r))
		return;
	hs_dispatch(h, r);
}
