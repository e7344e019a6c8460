/* http1: one HTTP/1.1 request head, read with http-parser under vigil's
 * limits, and the answer to one that is refused. Every listener reads its
 * requests with it (httpd's, and the WebSocket upgrades of ingest and relay),
 * so that every refusal is an answer with its status (RFC 9112), never a
 * silent close:
 *
 *   request-target over HTTP1_TARGET_MAX          414
 *   a header line over HTTP1_FIELD_MAX, all of
 *   them over HTTP1_FIELDS_MAX or HTTP1_FIELDS_N  431
 *   Content-Length over HTTP1_BODY_MAX            413
 *   Transfer-Encoding: chunked (no request here
 *   has a body), or with Content-Length too       400
 *   Transfer-Encoding of another coding           501
 *   HTTP/1.1 without exactly one Host             400
 *   anything http-parser refuses                  400
 *
 * A request body is read only when the caller asks for it (http1_body_begin:
 * POST .../marks), with a Content-Length: otherwise a request that announces
 * one is answered and its connection closed (http1_close_after). Pure: no I/O,
 * no allocation but the head's and the body's own, unit-tested alone and
 * fuzzed.
 */
#ifndef VIGIL_HTTP1_H
#define VIGIL_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP1_TARGET_MAX 8192
#define HTTP1_FIELD_MAX  8192
#define HTTP1_FIELDS_MAX (16 << 10)
#define HTTP1_FIELDS_N   100
#define HTTP1_BODY_MAX   (1 << 20)

enum http1_state {
	HTTP1_MORE = 0, /* every byte taken; the head is not complete yet */
	HTTP1_DONE,     /* the head is complete */
	HTTP1_BAD,      /* refused: answer http1_status() */
};

struct http1;

struct http1 *http1_new(void);
void http1_free(struct http1 *h);
/* For the next request of a keep-alive connection. */
void http1_reset(struct http1 *h);

/* Reads request bytes and returns how many it took: all of them while the
 * head is incomplete; when it completes, the bytes from the return value on
 * belong to what follows (the next request, or WebSocket frames). */
size_t http1_feed(struct http1 *h, const uint8_t *buf, size_t len);
enum http1_state http1_state(const struct http1 *h);
bool http1_started(const struct http1 *h);
/* HTTP1_BAD: the status to answer and why, for the JSON error. */
int http1_status(const struct http1 *h);
const char *http1_reason(const struct http1 *h);

/* HTTP1_DONE: */
const char *http1_method(const struct http1 *h); /* "GET", "HEAD", ... */
const char *http1_target(const struct http1 *h); /* as sent, undecoded */
/* 10 for HTTP/1.0, 11 for HTTP/1.1 */
unsigned http1_version(const struct http1 *h);
/* The first field of that name (case-insensitive), trimmed; NULL if absent. */
const char *http1_header(const struct http1 *h, const char *name);
unsigned http1_header_count(const struct http1 *h, const char *name);
/* Whether any field of that name lists token (comma-separated, case-insensitive). */
bool http1_header_has(const struct http1 *h, const char *name, const char *token);
/* Keep-alive as RFC 9112 section 9.3 says (1.1 unless "close", 1.0 only with
 * "keep-alive"), and no body announced. */
bool http1_keep_alive(const struct http1 *h);
/* The request announced a body, which is not read: answer, then close. */
bool http1_close_after(const struct http1 *h);
/* HTTP1_DONE: the body is wanted. http1_feed takes its bytes from now on (the
 * return value is again where what follows begins) until
 * http1_body_complete(). 0; -EFBIG when Content-Length is over max (answer
 * 413, then close); -EINVAL before the head is complete. A request that
 * announced no body has an empty one, complete at once. */
int http1_body_begin(struct http1 *h, size_t max);
bool http1_body_complete(const struct http1 *h);
/* The body read so far (all of it once complete); never NULL. */
const void *http1_body(const struct http1 *h, size_t *ret_len);
/* Upgrade and Connection: upgrade were sent (http-parser's upgrade flag). */
bool http1_upgrade(const struct http1 *h);

/* The target's path, percent-decoded (libcurl), into buf. -EINVAL when the
 * target has no path or decodes to a NUL byte, -ENAMETOOLONG. */
int http1_path(const struct http1 *h, char *buf, size_t size);
/* The query argument name's value, percent-decoded; false when absent, when
 * it does not fit or decodes to a NUL byte. */
bool http1_arg(const struct http1 *h, const char *name, char *buf, size_t size);

/* "Not Found" for 404 ... */
const char *http1_status_text(int status);
/* A whole answer with a JSON body { "error": reason } and Connection: close;
 * extra is more header lines, each ending in "\r\n", or NULL. *ret is
 * malloc'ed. -ENOMEM. */
int http1_error_answer(int status, const char *extra, const char *reason, char **ret,
		       size_t *ret_len);

#endif
