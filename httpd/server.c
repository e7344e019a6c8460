/* server: vigil-httpd's libwebsockets HTTP/1.1 server. The listening socket
 * from vigild is adopted as a raw fd and each accepted connection handed to
 * lws as HTTP; the bus and signal fds share the loop. A request is routed
 * (route.c), authenticated, answered by a handler, and its body streamed from
 * the writeable callback in chunks. Everything here runs in the lws service
 * thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "httpd.h"
#include "log.h"
#include "mp.h"
#include "net.h"
#include "proc.h"

#define HS_CHUNK         (128u << 10) /* bytes per lws_write of a body (TLS) */
#define HS_DIRECT_BUDGET (4ull << 20) /* bytes per writeable callback (plain HTTP) */
#define HS_TICK_US       (250 * LWS_US_PER_MS)
#define HS_HDR_MAX       8192 /* request line and headers, bytes (lws' header pool) */
#define HS_EXTRA_MAX     1024 /* response headers besides status, type and length */
#define HS_TOKEN_MAX     512
#define HS_ARGS_MAX      16

enum hs_fd_kind {
	HS_FD_LISTEN = 1,
	HS_FD_STAGE,
};

/* Per connection (lws' per_session_data, zeroed); reset for every request of
 * a keep-alive connection. */
struct hreq {
	bool inited;
	struct httpd *h;
	struct lws *wsi;
	struct hreq *next_parked, **pprev_parked;
	enum hs_park park;
	int park_ref;
	int64_t park_deadline;
	bool park_timed_out;
	bool resumed;
	struct route route;
	unsigned method;
	bool head;
	bool token_in_query;
	char token_query[HS_TOKEN_MAX + 8];
	/* the answer */
	bool answered, hdr_sent, close_after;
	int status;
	char ctype[64];
	char extra[HS_EXTRA_MAX];
	size_t extra_len;
	struct body body;
	uint64_t pos, end;   /* bytes [pos, end) of body still to send */
	size_t part;         /* the part holding pos, */
	uint64_t part_start; /* at this offset of the body */
	int fd;
	size_t fd_part;
	unsigned char *buf;
};

struct hs {
	struct lws_context *lws;
	struct lws_vhost *vh;
	struct lws_protocols protocols[3];
	lws_sorted_usec_list_t sul_tick;
	struct hreq *parked;
	int64_t tick_ms;
	int64_t loop_count;
	double loop_sum, loop_max, loop_min;
};

/* ---- bodies ---- */

struct hbuf *
hbuf_new(size_t len)
{
	struct hbuf *b = malloc(sizeof(*b) + (len ? len : 1));

	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->len = len;
	b->account = NULL;
	return b;
}

struct hbuf *
hbuf_ref(struct hbuf *b)
{
	b->refs++;
	return b;
}

void
hbuf_unref(struct hbuf *b)
{
	if (b == NULL || --b->refs > 0)
		return;
	if (b->account != NULL)
		*b->account -= b->len;
	free(b);
}

static int
body_grow(struct body *b)
{
	struct part *v;
	size_t cap;

	if (b->n < b->cap)
		return 0;
	cap = b->cap ? b->cap * 2 : 8;
	v = realloc(b->v, cap * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	b->v = v;
	b->cap = cap;
	return 0;
}

int
body_add_file(struct body *b, const char *path, uint64_t off, uint64_t len)
{
	char *p;

	if (body_grow(b) < 0 || (p = strdup(path)) == NULL)
		return -ENOMEM;
	b->v[b->n++] = (struct part){ .path = p, .off = off, .len = len };
	b->total += len;
	return 0;
}

int
body_add_mem(struct body *b, struct hbuf *mem, uint64_t off, uint64_t len)
{
	if (body_grow(b) < 0)
		return -ENOMEM;
	b->v[b->n++] = (struct part){ .mem = hbuf_ref(mem), .off = off, .len = len };
	b->total += len;
	return 0;
}

int
body_add_copy(struct body *b, const void *data, size_t len)
{
	struct hbuf *m = hbuf_new(len);
	int r;

	if (m == NULL)
		return -ENOMEM;
	memcpy(m->data, data, len);
	r = body_add_mem(b, m, 0, len);
	hbuf_unref(m);
	return r;
}

void
body_free(struct body *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->v[i].path);
		hbuf_unref(b->v[i].mem);
	}
	free(b->v);
	memset(b, 0, sizeof(*b));
}

/* ---- answers ---- */

const struct route *
hs_route(const struct hreq *r)
{
	return &r->route;
}

const char *
hs_token_query(const struct hreq *r)
{
	return r->token_in_query ? r->token_query : "";
}

static void hs_extra(struct hreq *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Response headers besides status, type and length, as "Name\0value\0" pairs. */
static void
hs_extra(struct hreq *r, const char *name, const char *fmt, ...)
{
	char val[512];
	size_t nl = strlen(name) + 1, vl;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	vl = strlen(val) + 1;
	if (r->extra_len + nl + vl > sizeof(r->extra)) {
		log_warn(0, "response header %s dropped: no room", name);
		return;
	}
	memcpy(r->extra + r->extra_len, name, nl);
	memcpy(r->extra + r->extra_len + nl, val, vl);
	r->extra_len += nl + vl;
}

static void
hs_answer(struct hreq *r, int status, const char *ctype)
{
	r->answered = true;
	r->status = status;
	snprintf(r->ctype, sizeof(r->ctype), "%s", ctype);
	r->pos = 0;
	r->end = r->body.total;
	r->part = 0;
	r->part_start = 0;
	lws_callback_on_writable(r->wsi);
}

void
hs_text(struct hreq *r, int status, const char *ctype, const char *text, size_t len)
{
	body_free(&r->body);
	if (len > 0 && body_add_copy(&r->body, text, len) < 0) {
		r->close_after = true;
		hs_answer(r, 500, "application/json");
		return;
	}
	hs_answer(r, status, ctype);
}

void
hs_json(struct hreq *r, int status, json_t *j)
{
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (text == NULL) {
		hs_text(r, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
		return;
	}
	hs_text(r, status, "application/json", text, strlen(text));
	free(text);
}

void
hs_error(struct hreq *r, int status, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_debug("%d: %s", status, text);
	hs_json(r, status, json_pack("{s:s}", "error", text));
}

static bool
hs_header(struct hreq *r, enum lws_token_indexes tok, char *buf, size_t size)
{
	int n = lws_hdr_total_length(r->wsi, tok);

	if (n <= 0 || (size_t)n >= size)
		return false;
	return lws_hdr_copy(r->wsi, buf, (int)size, tok) == n;
}

/* An entity-tag list as If-None-Match carries it: "*" or a list containing
 * ours (weak comparison, as RFC 9110 asks for If-None-Match). */
static bool
hs_etag_listed(const char *list, const char *etag)
{
	const char *p = list;
	size_t el = strlen(etag);

	while (*p == ' ')
		p++;
	if (strcmp(p, "*") == 0)
		return true;
	while ((p = strstr(p, etag)) != NULL) {
		if ((p == list || p[-1] == ' ' || p[-1] == ',' || p[-1] == '/') &&
		    (p[el] == '\0' || p[el] == ',' || p[el] == ' '))
			return true;
		p += el;
	}
	return false;
}

void
hs_bytes(struct hreq *r, const char *ctype, struct body *body, const char *etag,
	 const char *disposition, const char *cache_control)
{
	char hdr[1024];
	struct range rg;
	enum range_result rr = RANGE_WHOLE;
	uint64_t size = body->total;

	body_free(&r->body);
	r->body = *body;
	memset(body, 0, sizeof(*body));
	hs_extra(r, "accept-ranges:", "bytes");
	if (etag != NULL && etag[0] != '\0')
		hs_extra(r, "etag:", "%s", etag);
	if (disposition != NULL)
		hs_extra(r, "content-disposition:", "%s", disposition);
	if (cache_control != NULL)
		hs_extra(r, "cache-control:", "%s", cache_control);
	if (etag != NULL && hs_header(r, WSI_TOKEN_HTTP_IF_NONE_MATCH, hdr, sizeof(hdr)) &&
	    hs_etag_listed(hdr, etag)) {
		body_free(&r->body);
		hs_answer(r, 304, ctype);
		return;
	}
	if (hs_header(r, WSI_TOKEN_HTTP_RANGE, hdr, sizeof(hdr))) {
		char ir[256];

		rr = range_parse(hdr, size, &rg);
		/* If-Range: the range only if the representation is still the one the
		 * client has (strong comparison, RFC 9110 section 13.1.5); a date
		 * never matches, since these bytes carry no Last-Modified. */
		if (hs_header(r, WSI_TOKEN_HTTP_IF_RANGE, ir, sizeof(ir)) &&
		    (etag == NULL || strcmp(ir, etag) != 0 || ir[0] == 'W'))
			rr = RANGE_WHOLE;
	} else if (lws_hdr_total_length(r->wsi, WSI_TOKEN_HTTP_RANGE) > 0) {
		rr = RANGE_WHOLE; /* too long to be a range we would honour */
	}
	if (rr == RANGE_UNSATISFIABLE) {
		body_free(&r->body);
		hs_extra(r, "content-range:", "bytes */%llu", (unsigned long long)size);
		hs_json(r, 416, json_pack("{s:s}", "error", "range not satisfiable"));
		return;
	}
	hs_answer(r, rr == RANGE_PARTIAL ? 206 : 200, ctype);
	if (rr == RANGE_PARTIAL) {
		hs_extra(r, "content-range:", "bytes %llu-%llu/%llu", (unsigned long long)rg.first,
			 (unsigned long long)rg.last, (unsigned long long)size);
		r->pos = rg.first;
		r->end = rg.last + 1;
	}
}

bool
hs_arg(struct hreq *r, const char *name, char *buf, size_t size)
{
	char frag[HS_TOKEN_MAX + 64];
	size_t nl = strlen(name);

	for (int i = 0; i < HS_ARGS_MAX; i++) {
		int n = lws_hdr_copy_fragment(r->wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS,
					      i);

		if (n < 0)
			break;
		if ((size_t)n > nl && strncmp(frag, name, nl) == 0 && frag[nl] == '=') {
			if ((size_t)n - nl - 1 >= size)
				return false;
			memcpy(buf, frag + nl + 1, (size_t)n - nl);
			return true;
		}
	}
	return false;
}

/* ---- parking ---- */

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

static void
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

/* ---- requests ---- */

static void
hs_reset(struct hreq *r)
{
	hs_unlink(r);
	body_free(&r->body);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->answered = r->hdr_sent = r->close_after = false;
	r->park = 0;
	r->park_timed_out = false;
	r->resumed = false;
	r->extra_len = 0;
	r->pos = r->end = 0;
	r->part = 0;
	r->part_start = 0;
	r->token_in_query = false;
	r->token_query[0] = '\0';
}

static enum cfg_role
hs_need_role(enum route_kind kind)
{
	switch (kind) {
	case ROUTE_METRICS:
	case ROUTE_API_METRICS:
	case ROUTE_API_CONFIG:
		return CFG_ROLE_OPERATOR;
	case ROUTE_EXPORT:
	case ROUTE_SESSION:
		return CFG_ROLE_ARCHIVIST;
	default:
		return CFG_ROLE_PROCTOR;
	}
}

/* True when the request may go on; otherwise it has been answered. */
static bool
hs_auth(struct httpd *h, struct hreq *r)
{
	char tok[HS_TOKEN_MAX + 16];
	const char *secret = NULL;
	enum cfg_role need;
	int err;

	if (r->route.kind == ROUTE_STATIC || r->route.kind == ROUTE_HEALTH)
		return true;
	need = hs_need_role(r->route.kind);
	if (hs_header(r, WSI_TOKEN_HTTP_AUTHORIZATION, tok, sizeof(tok))) {
		if (strncasecmp(tok, "Bearer ", 7) == 0)
			secret = tok + 7;
	} else if (hs_arg(r, "token", tok, HS_TOKEN_MAX)) {
		char esc[HS_TOKEN_MAX * 3 + 1];

		secret = tok;
		r->token_in_query = true;
		lws_urlencode(esc, tok, sizeof(esc));
		snprintf(r->token_query, sizeof(r->token_query), "?token=%.*s", HS_TOKEN_MAX, esc);
	}
	err = secret == NULL ? -ENOENT
			     : tok_check(h->tok, secret, strlen(secret), tok_mask_for(need),
					 time(NULL), NULL);
	if (err == 0)
		return true;
	if (err == -EPERM) {
		hs_error(r, 403, "%s", tok_refusal(err, need));
		return false;
	}
	hs_extra(r, "www-authenticate:", "Bearer realm=\"vigil\"");
	hs_error(r, 401, "%s", err == -ENOENT ? "Missing token" : tok_refusal(err, need));
	return false;
}

static void
hs_dispatch(struct httpd *h, struct hreq *r)
{
	switch (r->route.kind) {
	case ROUTE_STATIC:
		static_get(h, r);
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
	case ROUTE_SNAPSHOT:
		snap_get(h, r);
		break;
	case ROUTE_EXPORT:
		export_get(h, r);
		break;
	case ROUTE_PLAYLIST:
		hls_get(h, r);
		break;
	default:
		history_handle(h, r);
		break;
	}
}

static unsigned
hs_method(struct lws *wsi, bool *ret_head)
{
	*ret_head = false;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
		return ROUTE_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0) {
		*ret_head = true;
		return ROUTE_HEAD;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0)
		return ROUTE_DELETE;
	return ROUTE_OTHER;
}

static void
hs_request(struct httpd *h, struct hreq *r, const char *path)
{
	int err;

	hs_reset(r);
	h->stats.requests++;
	r->method = hs_method(r->wsi, &r->head);
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

static int
hs_send_headers(struct httpd *h, struct hreq *r)
{
	unsigned char hbuf[LWS_PRE + 2048];
	unsigned char *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof(hbuf) - 1;
	uint64_t len = r->end - r->pos;

	if (r->status == 304 || r->status == 204)
		len = 0;
	if (lws_add_http_header_status(r->wsi, (unsigned)r->status, &p, end) ||
	    ((r->status != 304 && r->status != 204) &&
	     (lws_add_http_header_by_token(r->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
					   (const unsigned char *)r->ctype, (int)strlen(r->ctype),
					   &p, end) ||
	      lws_add_http_header_content_length(r->wsi, len, &p, end))))
		return -1;
	for (size_t off = 0; off < r->extra_len;) {
		const char *name = r->extra + off;
		const char *val = name + strlen(name) + 1;

		if (lws_add_http_header_by_name(r->wsi, (const unsigned char *)name,
						(const unsigned char *)val, (int)strlen(val), &p,
						end))
			return -1;
		off += strlen(name) + 1 + strlen(val) + 1;
	}
	if (r->close_after &&
	    lws_add_http_header_by_token(r->wsi, WSI_TOKEN_CONNECTION,
					 (const unsigned char *)"close", 5, &p, end))
		return -1;
	if (lws_finalize_write_http_header(r->wsi, start, &p, end))
		return -1;
	r->hdr_sent = true;
	if (r->status < 300)
		h->stats.responses_2xx++;
	else if (r->status < 400)
		h->stats.responses_3xx++;
	else if (r->status < 500)
		h->stats.responses_4xx++;
	else
		h->stats.responses_5xx++;
	if (r->head || r->status == 304 || r->status == 204)
		r->end = r->pos;
	return 0;
}

/* The part that holds r->pos, and how far into it; NULL past the end. The
 * cursor only moves forward, so an export of thousands of parts costs one
 * step per part. */
static struct part *
hs_cursor(struct hreq *r, uint64_t *ret_skip)
{
	while (r->part < r->body.n && r->pos >= r->part_start + r->body.v[r->part].len) {
		r->part_start += r->body.v[r->part].len;
		r->part++;
	}
	if (r->part == r->body.n)
		return NULL;
	*ret_skip = r->pos - r->part_start;
	return &r->body.v[r->part];
}

/* The open file of the current part (opened when its part begins). */
static int
hs_part_fd(struct hreq *r, const struct part *pt)
{
	if (r->fd >= 0 && r->fd_part == r->part)
		return r->fd;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = open(pt->path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		log_warn(-errno, "open(%s) failed while sending", pt->path);
		return -EIO;
	}
	r->fd_part = r->part;
	return r->fd;
}

/* Copies the next bytes of the body into buf: from memory, or read from the
 * part's file. -EIO when a file is gone or shorter than its part: the
 * response cannot be completed honestly. */
static ssize_t
hs_fill(struct hreq *r, unsigned char *buf, size_t want)
{
	uint64_t skip;
	struct part *pt = hs_cursor(r, &skip);
	ssize_t n;
	int fd;

	if (pt == NULL)
		return -EIO;
	if (want > pt->len - skip)
		want = (size_t)(pt->len - skip);
	if (pt->mem != NULL) {
		memcpy(buf, pt->mem->data + pt->off + skip, want);
		return (ssize_t)want;
	}
	fd = hs_part_fd(r, pt);
	if (fd < 0)
		return fd;
	n = pread(fd, buf, want, (off_t)(pt->off + skip));
	if (n <= 0) {
		log_warn(n < 0 ? -errno : 0, "%s ended early while sending", pt->path);
		return -EIO;
	}
	return n;
}

/* Plain HTTP/1.1: the body goes to the socket straight, sendfile(2) for
 * files and send(2) for memory, as much as the socket takes now (up to a
 * budget, so one client does not hold the loop). lws has nothing buffered
 * for this connection when it calls the writeable callback. 1: more to send,
 * 0: done, -EIO. */
static int
hs_direct(struct httpd *h, struct hreq *r)
{
	int sock = lws_get_socket_fd(r->wsi);
	uint64_t budget = HS_DIRECT_BUDGET;

	while (r->pos < r->end && budget > 0) {
		uint64_t skip, left;
		struct part *pt = hs_cursor(r, &skip);
		ssize_t n;

		if (pt == NULL)
			return -EIO;
		left = pt->len - skip;
		if (left > r->end - r->pos)
			left = r->end - r->pos;
		if (left > budget)
			left = budget;
		if (pt->mem != NULL) {
			n = send(sock, pt->mem->data + pt->off + skip, (size_t)left,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			off_t o = (off_t)(pt->off + skip);
			int fd = hs_part_fd(r, pt);

			if (fd < 0)
				return -EIO;
			n = sendfile(sock, fd, &o, (size_t)left);
			if (n == 0) {
				log_warn(0, "%s ended early while sending", pt->path);
				return -EIO;
			}
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -EIO;
		}
		r->pos += (uint64_t)n;
		budget -= (uint64_t)n;
		h->stats.bytes_out += (uint64_t)n;
	}
	return r->pos < r->end ? 1 : 0;
}

static int
hs_complete(struct hreq *r)
{
	bool close_after = r->close_after;

	hs_reset(r);
	if (close_after)
		return -1;
	return lws_http_transaction_completed(r->wsi) ? -1 : 0;
}

static int
hs_writeable(struct httpd *h, struct hreq *r)
{
	ssize_t n;
	int w;

	if (!r->answered)
		return 0;
	if (!r->hdr_sent) {
		if (hs_send_headers(h, r) < 0)
			return -1;
		if (r->pos == r->end)
			return hs_complete(r);
		/* The body follows at once unless lws had to keep part of the headers. */
		if (lws_partial_buffered(r->wsi)) {
			lws_callback_on_writable(r->wsi);
			return 0;
		}
	}
	/* A client that stops reading is dropped after the idle timeout. */
	lws_set_timeout(r->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
			(int)(h->cfg->timeout_idle_ms / 1000 > 0 ? h->cfg->timeout_idle_ms / 1000
								 : 1));
	if (!lws_is_ssl(r->wsi) && lws_get_network_wsi(r->wsi) == r->wsi) {
		w = hs_direct(h, r);
		if (w < 0)
			return -1;
		if (w == 0) {
			lws_set_timeout(r->wsi, NO_PENDING_TIMEOUT, 0);
			return hs_complete(r);
		}
		lws_callback_on_writable(r->wsi);
		return 0;
	}
	if (r->buf == NULL) {
		r->buf = malloc(LWS_PRE + HS_CHUNK);
		if (r->buf == NULL)
			return -1;
	}
	n = hs_fill(r, r->buf + LWS_PRE,
		    (size_t)(r->end - r->pos < HS_CHUNK ? r->end - r->pos : HS_CHUNK));
	if (n < 0)
		return -1;
	r->pos += (uint64_t)n;
	w = lws_write(r->wsi, r->buf + LWS_PRE, (size_t)n,
		      r->pos == r->end ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
	if (w < 0)
		return -1;
	h->stats.bytes_out += (uint64_t)n;
	if (r->pos == r->end) {
		lws_set_timeout(r->wsi, NO_PENDING_TIMEOUT, 0);
		return hs_complete(r);
	}
	lws_callback_on_writable(r->wsi);
	return 0;
}

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

static void
hs_accept(struct httpd *h, int lfd)
{
	struct hs *s = h->srv;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn(-errno, "accept4() failed");
			if (errno != EINTR)
				return;
			continue;
		}
		if (lws_adopt_socket_vhost(s->vh, fd) == NULL) {
			log_warn(0, "lws_adopt_socket_vhost() failed: connection dropped");
			close(fd);
		}
	}
}

static int
hs_cb_fd(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct httpd *h = lws_context_user(lws_get_context(wsi));
	intptr_t kind = (intptr_t)lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (kind == HS_FD_LISTEN)
			hs_accept(h, lws_get_socket_fd(wsi));
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

static int
hs_adopt_fd(struct hs *s, int fd, enum hs_fd_kind kind)
{
	lws_sock_file_fd_type u;
	struct lws *wsi;
	int dupfd;

	/* lws closes what it adopts; the stage keeps its own descriptor. */
	dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dupfd < 0)
		return -errno;
	u.filefd = (lws_filefd_type)dupfd;
	wsi = lws_adopt_descriptor_vhost(s->vh, LWS_ADOPT_RAW_FILE_DESC, u, "vigil-fd", NULL);
	if (wsi == NULL) {
		close(dupfd);
		return -EIO;
	}
	lws_set_opaque_user_data(wsi, (void *)(intptr_t)kind);
	return 0;
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
	if (hs_adopt_fd(s, lfd, HS_FD_LISTEN) < 0 ||
	    hs_adopt_fd(s, stage_signal_fd(h->st), HS_FD_STAGE) < 0 ||
	    (stage_bus_fd(h->st) >= 0 && hs_adopt_fd(s, stage_bus_fd(h->st), HS_FD_STAGE) < 0))
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
