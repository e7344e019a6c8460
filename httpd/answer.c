/* answer: how vigil-httpd answers a request: JSON errors, texts, bytes with
 * ETag, Range and If-Range/If-None-Match, query arguments; then the headers
 * and the body streamed from the writeable callback (sendfile/send on plain
 * HTTP, lws_write chunks over TLS). Service thread. */
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
#include "proc.h"
#include "server.h"

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

/* Response headers besides status, type and length, as "Name\0value\0" pairs. */
void
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
	/* Listings, playlists, status and errors change: never cached. */
	hs_extra(r, "cache-control:", "no-cache");
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

bool
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

int
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
