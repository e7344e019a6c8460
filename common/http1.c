/* http1: see http1.h. http-parser tokenizes; the fields are kept in one
 * buffer as "name\0value\0" pairs, with the limits checked as they grow. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <http_parser.h>
#include <jansson.h>

#include "bytes.h"
#include "http1.h"

struct http1_field {
	size_t name, value; /* offsets into buf */
};

/* What the last callback collected. */
enum http1_last {
	HTTP1_L_NONE = 0,
	HTTP1_L_TARGET,
	HTTP1_L_FIELD,
	HTTP1_L_VALUE,
};

struct http1 {
	http_parser p; /* first: the callbacks find h from it */
	enum http1_state state;
	enum http1_last last;
	bool started, body;
	/* http1_body_begin: the body is read too, into body_buf, until complete */
	bool reading_body, body_done;
	struct bytes body_buf;
	int status;
	char reason[128];
	struct bytes b; /* "target\0name\0value\0..." */
	size_t target, target_len, field_len, fields_len;
	struct http1_field f[HTTP1_FIELDS_N];
	unsigned n;
	char method[16];
};

static int http1_refuse(struct http1 *h, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
http1_refuse(struct http1 *h, int status, const char *fmt, ...)
{
	va_list ap;

	if (h->state == HTTP1_BAD)
		return -1;
	h->state = HTTP1_BAD;
	h->status = status;
	va_start(ap, fmt);
	vsnprintf(h->reason, sizeof(h->reason), fmt, ap);
	va_end(ap);
	return -1;
}

static const char *
http1_at(const struct http1 *h, size_t off)
{
	return (const char *)h->b.p + off;
}

static int
http1_append(struct http1 *h, const char *p, size_t n)
{
	if (bytes_append(&h->b, p, n) < 0)
		return http1_refuse(h, 503, "out of memory");
	return 0;
}

static int
http1_end_string(struct http1 *h)
{
	return http1_append(h, "", 1);
}

static struct http1 *
http1_of(http_parser *p)
{
	return (struct http1 *)p; /* p is the first member */
}

static int
http1_on_begin(http_parser *p)
{
	http1_of(p)->started = true;
	return 0;
}

static int
http1_on_url(http_parser *p, const char *at, size_t n)
{
	struct http1 *h = http1_of(p);

	h->started = true;
	h->last = HTTP1_L_TARGET;
	h->target_len += n;
	if (h->target_len > HTTP1_TARGET_MAX)
		return http1_refuse(h, 414, "request-target over %d bytes", HTTP1_TARGET_MAX);
	return http1_append(h, at, n);
}

/* Ends the string being collected: the target, a name or a value. */
static int
http1_close_piece(struct http1 *h)
{
	if (h->last == HTTP1_L_FIELD) {
		if (http1_end_string(h) < 0)
			return -1;
		h->f[h->n - 1].value = h->b.len; /* a field with an empty value */
	}
	return h->last == HTTP1_L_NONE && h->b.len > 0 ? 0 : http1_end_string(h);
}

static int
http1_grow_field(struct http1 *h, size_t n)
{
	h->field_len += n;
	h->fields_len += n;
	if (h->field_len > HTTP1_FIELD_MAX)
		return http1_refuse(h, 431, "a header field over %d bytes", HTTP1_FIELD_MAX);
	if (h->fields_len > HTTP1_FIELDS_MAX)
		return http1_refuse(h, 431, "header fields over %d bytes", HTTP1_FIELDS_MAX);
	return 0;
}

static int
http1_on_field(http_parser *p, const char *at, size_t n)
{
	struct http1 *h = http1_of(p);

	if (h->last != HTTP1_L_FIELD) {
		if (http1_close_piece(h) < 0)
			return -1;
		if (h->n == HTTP1_FIELDS_N)
			return http1_refuse(h, 431, "more than %d header fields", HTTP1_FIELDS_N);
		h->f[h->n].name = h->b.len;
		h->f[h->n].value = 0;
		h->n++;
		h->field_len = 0;
		h->last = HTTP1_L_FIELD;
	}
	if (http1_grow_field(h, n) < 0)
		return -1;
	return http1_append(h, at, n);
}

static int
http1_on_value(http_parser *p, const char *at, size_t n)
{
	struct http1 *h = http1_of(p);

	if (h->last != HTTP1_L_VALUE) {
		if (http1_end_string(h) < 0)
			return -1;
		h->f[h->n - 1].value = h->b.len;
		h->last = HTTP1_L_VALUE;
	}
	if (http1_grow_field(h, n) < 0)
		return -1;
	return http1_append(h, at, n);
}

/* Trailing blanks off each value (http-parser drops the leading ones). */
static void
http1_trim(struct http1 *h)
{
	for (unsigned i = 0; i < h->n; i++) {
		char *v = (char *)h->b.p + h->f[i].value;
		size_t n = strlen(v);

		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			v[--n] = '\0';
	}
}

/* The last coding of Transfer-Encoding is what decides (RFC 9112 section 6.1). */
static bool
http1_te_chunked(const struct http1 *h)
{
	const char *te = NULL, *last;

	for (unsigned i = 0; i < h->n; i++)
		if (strcasecmp(http1_at(h, h->f[i].name), "transfer-encoding") == 0)
			te = http1_at(h, h->f[i].value);
	if (te == NULL)
		return false;
	last = strrchr(te, ',');
	last = last != NULL ? last + 1 : te;
	while (*last == ' ' || *last == '\t')
		last++;
	return strcasecmp(last, "chunked") == 0;
}

/* Transfer-Encoding on a request: never accepted, since no request here has a
 * body and a proxy in front could read the body as another request (RFC 9112
 * section 6.3: with Content-Length too it is refused outright). */
static int
http1_check_te(struct http1 *h)
{
	if (http1_header_count(h, "transfer-encoding") == 0)
		return 0;
	if (http1_header_count(h, "content-length") > 0)
		return http1_refuse(h, 400, "Content-Length and Transfer-Encoding together");
	if (http1_te_chunked(h))
		return http1_refuse(h, 400,
				    "Transfer-Encoding is refused: no request takes a body");
	return http1_refuse(h, 501, "Transfer-Encoding \"%.60s\" is not implemented",
			    http1_header(h, "transfer-encoding"));
}

static int
http1_on_headers(http_parser *p)
{
	struct http1 *h = http1_of(p);

	if (http1_close_piece(h) < 0)
		return -1;
	h->last = HTTP1_L_NONE;
	http1_trim(h);
	snprintf(h->method, sizeof(h->method), "%s", http_method_str(p->method));
	if (http1_check_te(h) < 0)
		return -1;
	if (p->http_major == 1 && p->http_minor == 1 && http1_header_count(h, "host") != 1)
		return http1_refuse(h, 400, "an HTTP/1.1 request needs exactly one Host field");
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > HTTP1_BODY_MAX)
		return http1_refuse(h, 413, "a request body over %d bytes", HTTP1_BODY_MAX);
	h->state = HTTP1_DONE;
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > 0) {
		/* Not read: the answer closes the connection. */
		h->body = true;
		http_parser_pause(p, 1);
	}
	return 0;
}

static int
http1_on_body(http_parser *p, const char *at, size_t n)
{
	struct http1 *h = http1_of(p);

	/* Only once asked for: otherwise the head's pause stops the parser first. */
	if (bytes_append(&h->body_buf, at, n) < 0)
		return http1_refuse(h, 503, "out of memory");
	return 0;
}

static int
http1_on_complete(http_parser *p)
{
	struct http1 *h = http1_of(p);

	if (h->reading_body)
		h->body_done = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings http1_settings = {
	.on_message_begin = http1_on_begin,
	.on_url = http1_on_url,
	.on_header_field = http1_on_field,
	.on_header_value = http1_on_value,
	.on_headers_complete = http1_on_headers,
	.on_body = http1_on_body,
	.on_message_complete = http1_on_complete,
};

struct http1 *
http1_new(void)
{
	struct http1 *h = calloc(1, sizeof(*h));

	if (h != NULL)
		http1_reset(h);
	return h;
}

void
http1_free(struct http1 *h)
{
	if (h == NULL)
		return;
	bytes_free(&h->b);
	bytes_free(&h->body_buf);
	free(h);
}

void
http1_reset(struct http1 *h)
{
	struct bytes b = h->b, body = h->body_buf;

	/* A large head's buffer is not kept for the next request. */
	bytes_reset(&b, 4096);
	bytes_reset(&body, 4096);
	memset(h, 0, sizeof(*h));
	h->b = b;
	h->body_buf = body;
	http_parser_init(&h->p, HTTP_REQUEST);
}

size_t
http1_feed(struct http1 *h, const uint8_t *buf, size_t len)
{
	size_t n;
	enum http_errno e;

	if (len == 0)
		return 0;
	if (h->state == HTTP1_DONE && h->reading_body && !h->body_done) {
		n = http_parser_execute(&h->p, &http1_settings, (const char *)buf, len);
		e = HTTP_PARSER_ERRNO(&h->p);
		if (h->state != HTTP1_BAD && e != HPE_OK && e != HPE_PAUSED)
			http1_refuse(h, 400, "malformed request body: %s",
				     http_errno_description(e));
		return n;
	}
	if (h->state != HTTP1_MORE)
		return 0;
	n = http_parser_execute(&h->p, &http1_settings, (const char *)buf, len);
	e = HTTP_PARSER_ERRNO(&h->p);
	if (h->state == HTTP1_BAD)
		return n;
	if (e == HPE_PAUSED || (e == HPE_OK && h->p.upgrade && h->state == HTTP1_DONE))
		return n;
	if (e == HPE_OK) {
		if (h->state == HTTP1_DONE) /* an upgrade without the flag: rest is not HTTP */
			return n;
		return len;
	}
	/* http-parser refuses first what our own check would name better. */
	if ((e == HPE_UNEXPECTED_CONTENT_LENGTH || e == HPE_INVALID_TRANSFER_ENCODING ||
	     e == HPE_INVALID_CHUNK_SIZE) &&
	    http1_check_te(h) < 0)
		return n;
	http1_refuse(h, 400, "malformed request: %s", http_errno_description(e));
	return n;
}

enum http1_state
http1_state(const struct http1 *h)
{
	return h->state;
}

bool
http1_started(const struct http1 *h)
{
	return h->started;
}

int
http1_status(const struct http1 *h)
{
	return h->status;
}

const char *
http1_reason(const struct http1 *h)
{
	return h->reason;
}

const char *
http1_method(const struct http1 *h)
{
	return h->method;
}

const char *
http1_target(const struct http1 *h)
{
	return h->b.p != NULL ? http1_at(h, h->target) : "";
}

unsigned
http1_version(const struct http1 *h)
{
	return h->p.http_major * 10 + h->p.http_minor;
}

const char *
http1_header(const struct http1 *h, const char *name)
{
	for (unsigned i = 0; i < h->n; i++)
		if (h->f[i].value != 0 && strcasecmp(http1_at(h, h->f[i].name), name) == 0)
			return http1_at(h, h->f[i].value);
	return NULL;
}

unsigned
http1_header_count(const struct http1 *h, const char *name)
{
	unsigned k = 0;

	for (unsigned i = 0; i < h->n; i++)
		if (h->f[i].value != 0 && strcasecmp(http1_at(h, h->f[i].name), name) == 0)
			k++;
	return k;
}

static bool
http1_list_has(const char *list, const char *token)
{
	size_t tl = strlen(token);

	for (const char *p = list; *p != '\0';) {
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == tl && strncasecmp(p, token, tl) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

bool
http1_header_has(const struct http1 *h, const char *name, const char *token)
{
	for (unsigned i = 0; i < h->n; i++)
		if (h->f[i].value != 0 && strcasecmp(http1_at(h, h->f[i].name), name) == 0 &&
		    http1_list_has(http1_at(h, h->f[i].value), token))
			return true;
	return false;
}

bool
http1_keep_alive(const struct http1 *h)
{
	return (!h->body || h->body_done) && http_should_keep_alive(&h->p);
}

int
http1_body_begin(struct http1 *h, size_t max)
{
	if (h->state != HTTP1_DONE)
		return -EINVAL;
	if (!h->body) {
		h->body_done = true; /* none announced: an empty body */
		return 0;
	}
	if (h->p.content_length > max)
		return -EFBIG;
	if (!h->reading_body) {
		h->reading_body = true;
		http_parser_pause(&h->p, 0);
	}
	return 0;
}

bool
http1_body_complete(const struct http1 *h)
{
	return h->state == HTTP1_DONE && h->body_done;
}

const void *
http1_body(const struct http1 *h, size_t *ret_len)
{
	*ret_len = h->body_buf.len;
	return h->body_buf.p != NULL ? (const void *)h->body_buf.p : (const void *)"";
}

bool
http1_close_after(const struct http1 *h)
{
	return !http1_keep_alive(h);
}

bool
http1_upgrade(const struct http1 *h)
{
	return h->p.upgrade;
}

/* libcurl's decoding; a decoded NUL is refused (it would cut a C string). */
static int
http1_decode(const char *s, size_t n, char *buf, size_t size)
{
	int outlen = 0;
	char *d = curl_easy_unescape(NULL, s, (int)n, &outlen);
	int r = 0;

	if (d == NULL)
		return -ENOMEM;
	if (memchr(d, '\0', (size_t)outlen) != NULL)
		r = -EINVAL;
	else if ((size_t)outlen >= size)
		r = -ENAMETOOLONG;
	else
		memcpy(buf, d, (size_t)outlen + 1);
	curl_free(d);
	return r;
}

int
http1_path(const struct http1 *h, char *buf, size_t size)
{
	const char *t = http1_target(h);
	struct http_parser_url u;

	http_parser_url_init(&u);
	if (http_parser_parse_url(t, strlen(t), 0, &u) != 0 || !(u.field_set & (1 << UF_PATH)))
		return -EINVAL;
	return http1_decode(t + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len, buf, size);
}

bool
http1_arg(const struct http1 *h, const char *name, char *buf, size_t size)
{
	const char *t = http1_target(h), *q, *end;
	struct http_parser_url u;
	size_t nl = strlen(name);

	http_parser_url_init(&u);
	if (http_parser_parse_url(t, strlen(t), 0, &u) != 0 || !(u.field_set & (1 << UF_QUERY)))
		return false;
	q = t + u.field_data[UF_QUERY].off;
	end = q + u.field_data[UF_QUERY].len;
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *stop = amp != NULL ? amp : end;

		if ((size_t)(stop - q) > nl && strncmp(q, name, nl) == 0 && q[nl] == '=')
			return http1_decode(q + nl + 1, (size_t)(stop - q) - nl - 1, buf, size) ==
			       0;
		q = stop + 1;
	}
	return false;
}

const char *
http1_status_text(int status)
{
	switch (status) {
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 416:
		return "Range Not Satisfiable";
	case 426:
		return "Upgrade Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

int
http1_error_answer(int status, const char *extra, const char *reason, char **ret, size_t *ret_len)
{
	json_t *j = json_pack("{s:s}", "error", reason);
	char *body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	int n;

	json_decref(j);
	if (body == NULL)
		return -ENOMEM;
	n = asprintf(ret,
		     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		     "Cache-Control: no-cache\r\nConnection: close\r\n%s\r\n%s",
		     status, http1_status_text(status), strlen(body), extra != NULL ? extra : "",
		     body);
	free(body);
	if (n < 0)
		return -ENOMEM;
	*ret_len = (size_t)n;
	return 0;
}
