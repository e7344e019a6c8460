/* answer: how vigil-httpd answers a request: JSON errors, texts, bytes with
 * ETag, Range and If-Range/If-None-Match, query arguments; then the headers
 * and the body streamed from the writable callback (sendfile/send on plain
 * HTTP, chunks handed to srv over TLS). Loop thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "beneath.h"
#include "log.h"
#include "proc.h"
#include "record.h"
#include "server.h"
#include "xplan.h"

const struct route *
hs_route(const struct hreq *r)
{
	return &r->route;
}

/* Response headers besides status, type and length, as "Name\0value\0" pairs. */
void
hs_extra(struct hreq *r, const char *name, const char *fmt, ...)
{
	char val[HS_EXTRA_MAX];
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
	srv_conn_want_write(r->sc);
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
hs_header(struct hreq *r, const char *name, char *buf, size_t size)
{
	const char *v = http1_header(r->req, name);

	if (v == NULL || strlen(v) >= size)
		return false;
	memcpy(buf, v, strlen(v) + 1);
	return true;
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
hs_bytes(struct hreq *r, const char *ctype, struct hbody *body, const char *etag,
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
	if (etag != NULL && hs_header(r, "if-none-match", hdr, sizeof(hdr)) &&
	    hs_etag_listed(hdr, etag)) {
		body_free(&r->body);
		hs_answer(r, 304, ctype);
		return;
	}
	if (hs_header(r, "range", hdr, sizeof(hdr))) {
		char ir[256];

		rr = range_parse(hdr, size, &rg);
		/* If-Range: the range only if the representation is still the one the
		 * client has (strong comparison, RFC 9110 section 13.1.5); a date
		 * never matches, since these bytes carry no Last-Modified. */
		if (hs_header(r, "if-range", ir, sizeof(ir)) &&
		    (etag == NULL || strcmp(ir, etag) != 0 || ir[0] == 'W'))
			rr = RANGE_WHOLE;
	} else if (http1_header(r->req, "range") != NULL) {
		rr = RANGE_WHOLE; /* too long to be a range we would honour */
	}
	if (rr == RANGE_UNSATISFIABLE) {
		body_free(&r->body);
		hs_extra(r, "content-range:", "bytes */%llu", (unsigned long long)size);
		hs_json(r, 416, json_pack("{s:s}", "error", "range not satisfiable"));
		return;
	}
	hs_answer(r, rr == RANGE_PARTIAL ? 206 : 200, ctype);
	/* RFC 9530: the digest of the whole representation, sent with it. */
	if (rr == RANGE_WHOLE && r->body.has_sha256) {
		unsigned char b64[48];

		EVP_EncodeBlock(b64, r->body.sha256, sizeof(r->body.sha256));
		hs_extra(r, "repr-digest:", "sha-256=:%s:", (const char *)b64);
	}
	if (rr == RANGE_PARTIAL) {
		hs_extra(r, "content-range:", "bytes %llu-%llu/%llu", (unsigned long long)rg.first,
			 (unsigned long long)rg.last, (unsigned long long)size);
		r->pos = rg.first;
		r->end = rg.last + 1;
	}
}

const char *
hs_query(const struct hreq *r)
{
	const char *q = strchr(http1_target(r->req), '?');

	return q != NULL ? q + 1 : "";
}

void
hs_stream(struct hreq *r, int status, const char *ctype, const struct hs_stream_ops *ops, void *ctx)
{
	body_free(&r->body);
	r->stream = ops;
	r->stream_ctx = ctx;
	r->stream_end = false;
	r->chunked = http1_version(r->req) != 10;
	hs_extra(r, "cache-control:", "no-store");
	if (r->chunked)
		hs_extra(r, "transfer-encoding:", "chunked");
	else
		r->close_after = true; /* the body ends with the connection */
	hs_answer(r, status, ctype);
}

bool
hs_has_range(struct hreq *r)
{
	return http1_header(r->req, "range") != NULL;
}

bool
hs_arg(struct hreq *r, const char *name, char *buf, size_t size)
{
	return http1_arg(r->req, name, buf, size);
}

static void
hs_count_status(struct httpd *h, int status)
{
	if (status < 300)
		h->stats.responses_2xx++;
	else if (status < 400)
		h->stats.responses_3xx++;
	else if (status < 500)
		h->stats.responses_4xx++;
	else
		h->stats.responses_5xx++;
}

/* The status line and headers, queued as one copy; Content-Length unless
 * the body's end is the connection's (close-delimited, with_length false). */
static int
hs_queue_headers(struct httpd *h, struct hreq *r, bool with_length)
{
	char head[HS_EXTRA_MAX + 512];
	uint64_t len = r->end - r->pos;
	bool bodyless = r->status == 304 || r->status == 204;
	size_t n;

	n = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n", r->status,
			     http1_status_text(r->status));
	if (!bodyless)
		n += (size_t)snprintf(head + n, sizeof(head) - n, "Content-Type: %s\r\n", r->ctype);
	if (!bodyless && with_length)
		n += (size_t)snprintf(head + n, sizeof(head) - n, "Content-Length: %llu\r\n",
				      (unsigned long long)len);
	for (size_t off = 0; off < r->extra_len && n < sizeof(head);) {
		const char *name = r->extra + off;
		const char *val = name + strlen(name) + 1;

		n += (size_t)snprintf(head + n, sizeof(head) - n, "%s %s\r\n", name, val);
		off += strlen(name) + 1 + strlen(val) + 1;
	}
	/* RFC 9112 section 9.6: the client learns the connection ends here; a
	 * 1.0 client that asked to keep it learns that it stays. */
	if (n < sizeof(head))
		n += (size_t)snprintf(head + n, sizeof(head) - n, "%s\r\n",
				      r->close_after                ? "Connection: close\r\n"
				      : http1_version(r->req) == 10 ? "Connection: keep-alive\r\n"
								    : "");
	if (n >= sizeof(head) || srv_conn_write_copy(r->sc, head, n) < 0)
		return -1;
	r->hdr_sent = true;
	hs_count_status(h, r->status);
	rec_served(h, r, r->head || bodyless ? 0 : len);
	if (r->head || bodyless)
		r->end = r->pos;
	return 0;
}

static int
hs_send_headers(struct httpd *h, struct hreq *r)
{
	return hs_queue_headers(h, r, true);
}

int
hs_stream_headers(struct httpd *h, struct hreq *r, int status, const char *ctype)
{
	r->status = status;
	snprintf(r->ctype, sizeof(r->ctype), "%s", ctype);
	r->pos = r->end = 0;
	return hs_queue_headers(h, r, false);
}

/* An export's segment is remapped as its turn comes (xplan.c): sent from
 * memory from then on and let go once the cursor passes it. */
static int
hs_remap_part(struct hreq *r, struct hpart *pt)
{
	struct hbuf *b;
	int err = xport_render(r->body.xp, pt, &b);

	if (err < 0)
		return err;
	hbuf_unref(pt->mem);
	pt->mem = b;
	pt->off = 0;
	pt->gen = -1;
	pt->release = true;
	return 0;
}

/* The part that holds r->pos, and how far into it; NULL past the end (or
 * when a part cannot be made ready). The cursor only moves forward, so an
 * export of thousands of parts costs one step per part. */
static struct hpart *
hs_cursor(struct hreq *r, uint64_t *ret_skip)
{
	struct hpart *pt;

	while (r->part < r->body.n && r->pos >= r->part_start + r->body.v[r->part].len) {
		pt = &r->body.v[r->part];
		if (pt->release) {
			hbuf_unref(pt->mem);
			pt->mem = NULL;
			pt->release = false;
		}
		r->part_start += pt->len;
		r->part++;
	}
	if (r->part == r->body.n)
		return NULL;
	pt = &r->body.v[r->part];
	if (pt->gen >= 0 && hs_remap_part(r, pt) < 0)
		return NULL;
	*ret_skip = r->pos - r->part_start;
	return pt;
}

/* The open file of the current part (opened when its part begins). */
static int
hs_part_fd(struct hreq *r, const struct hpart *pt)
{
	if (r->fd >= 0 && r->fd_part == r->part)
		return r->fd;
	if (r->fd >= 0)
		close(r->fd);
	if (pt->dirfd == AT_FDCWD) {
		r->fd = open(pt->path, O_RDONLY | O_CLOEXEC);
		if (r->fd < 0)
			r->fd = -errno;
	} else {
		struct stat sb;

		r->fd = beneath_open_file(pt->dirfd, pt->path, &sb);
	}
	if (r->fd < 0) {
		log_warn(r->fd, "open(%s) failed while sending", pt->path);
		r->fd = -1;
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
	struct hpart *pt = hs_cursor(r, &skip);
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
 * budget, so one client does not hold the loop). srv's queue is empty when
 * the writable callback runs. 1: more to send, 0: done, -EIO. */
static int
hs_direct(struct httpd *h, struct hreq *r)
{
	int sock = srv_conn_fd(r->sc);
	uint64_t budget = HS_DIRECT_BUDGET;

	while (r->pos < r->end && budget > 0) {
		uint64_t skip, left;
		struct hpart *pt = hs_cursor(r, &skip);
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

/* A short body in memory goes out with the headers, in one write. */
static int
hs_inline_body(struct httpd *h, struct hreq *r)
{
	unsigned char buf[HS_INLINE_MAX];
	size_t n = 0;

	if (r->end - r->pos > sizeof(buf))
		return 0;
	for (size_t i = 0; i < r->body.n; i++)
		if (r->body.v[i].mem == NULL)
			return 0;
	while (r->pos < r->end) {
		ssize_t k = hs_fill(r, buf + n, (size_t)(r->end - r->pos));

		if (k < 0)
			return -EIO;
		r->pos += (uint64_t)k;
		n += (size_t)k;
	}
	h->stats.bytes_out += n;
	return srv_conn_write_copy(r->sc, buf, n);
}

/* The next part of a streamed body (hs_stream), once the socket took the
 * last: in r->buf, framed as one chunk (with the last chunk after the end). */
static int
hs_stream_more(struct httpd *h, struct hreq *r)
{
	const size_t head = 8, tail = 7; /* "1ffff\r\n" at most; "\r\n0\r\n\r\n" */
	unsigned char *p;
	char hex[16];
	bool end = false;
	size_t len, hl;
	ssize_t n;

	srv_conn_deadline(r->sc, proc_mono_ms() + h->cfg->timeout_idle_ms);
	if (r->buf_busy)
		return 0;
	if (r->stream_end) {
		hs_done(h, r);
		return 0;
	}
	if (r->buf == NULL && (r->buf = malloc(HS_CHUNK)) == NULL)
		return -1;
	n = r->stream->fill(r->stream_ctx, r->buf + head, HS_CHUNK - head - tail, &end);
	if (n < 0)
		return -1;
	if (n == 0 && !end) {
		srv_conn_want_write(r->sc); /* the next round: others go first */
		return 0;
	}
	r->stream_end = end;
	p = r->buf + head;
	len = (size_t)n;
	if (r->chunked) {
		if (n > 0) {
			hl = (size_t)snprintf(hex, sizeof(hex), "%zx\r\n", len);
			p -= hl;
			memcpy(p, hex, hl);
			memcpy(p + hl + len, "\r\n", 2);
			len += hl + 2;
		}
		if (end) {
			memcpy(p + len, "0\r\n\r\n", 5);
			len += 5;
		}
	} else if (len == 0) {
		hs_done(h, r);
		return 0;
	}
	if (srv_conn_write(r->sc, p, len, r) < 0)
		return -1;
	r->buf_busy = true;
	h->stats.bytes_out += len;
	return 0;
}

int
hs_writeable(struct httpd *h, struct hreq *r)
{
	ssize_t n;

	if (!r->answered)
		return 0;
	if (r->finishing) {
		r->finishing = false;
		hs_done(h, r);
		return 0;
	}
	if (r->stream != NULL && !r->hdr_sent) {
		if (hs_queue_headers(h, r, false) < 0)
			return -1;
		r->finishing = r->head;
		srv_conn_want_write(r->sc);
		return 0;
	}
	if (r->stream != NULL)
		return hs_stream_more(h, r);
	if (!r->hdr_sent) {
		if (hs_send_headers(h, r) < 0 || hs_inline_body(h, r) < 0)
			return -1;
		/* The rest once srv has written the headers. */
		r->finishing = r->pos == r->end;
		srv_conn_want_write(r->sc);
		return 0;
	}
	if (!srv_conn_is_tls(r->sc)) {
		uint64_t at = r->pos;
		int w = hs_direct(h, r);

		if (w < 0)
			return -1;
		/* A client that stops reading is dropped after the idle timeout. */
		if (r->pos > at)
			srv_conn_deadline(r->sc, proc_mono_ms() + h->cfg->timeout_idle_ms);
		if (w == 0)
			hs_done(h, r);
		else
			srv_conn_wait_writable(r->sc);
		return 0;
	}
	srv_conn_deadline(r->sc, proc_mono_ms() + h->cfg->timeout_idle_ms);
	if (r->buf_busy)
		return 0;
	if (r->pos == r->end) {
		hs_done(h, r);
		return 0;
	}
	if (r->buf == NULL) {
		r->buf = malloc(HS_CHUNK);
		if (r->buf == NULL)
			return -1;
	}
	n = hs_fill(r, r->buf, (size_t)(r->end - r->pos < HS_CHUNK ? r->end - r->pos : HS_CHUNK));
	if (n < 0 || srv_conn_write(r->sc, r->buf, (size_t)n, r) < 0)
		return -1;
	r->buf_busy = true;
	r->pos += (uint64_t)n;
	h->stats.bytes_out += (uint64_t)n;
	return 0;
}

void
hs_sent(struct httpd *h, struct hreq *r, bool written)
{
	r->buf_busy = false;
	if (written)
		srv_conn_want_write(r->sc);
}
