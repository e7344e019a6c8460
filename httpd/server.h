/* server.h: what server.c, request.c, answer.c share inside vigil-httpd: the
 * per-connection request state and the server's. Not for the handlers, which
 * see only httpd.h's hs_* calls. */
#ifndef VIGIL_HTTPD_SERVER_H
#define VIGIL_HTTPD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "bytes.h"
#include "hlscap.h"
#include "http1.h"
#include "httpd.h"
#include "srv.h"

struct mjpeg_client;

#define HS_CHUNK         (128u << 10) /* bytes per TLS write of a body */
#define HS_DIRECT_BUDGET (4ull << 20) /* bytes per writable callback (plain HTTP) */
#define HS_HEAD_MS       10000        /* a request head must arrive within this (or idle) */
#define HS_LINGER_MS     2000         /* after the last answer of a closing connection */
#define HS_EXTRA_MAX     1024         /* response headers besides status, type and length */
#define HS_TOKEN_MAX     512
#define HS_ACTOR_MAX     256         /* bytes of a token's name kept with a request, with the NUL */
#define HS_INLINE_MAX    (16u << 10) /* a memory body up to this goes with the headers */
#define HS_STOP_FLUSH_MS 1000        /* at stop, for the last bytes of streams */

/* Per connection (srv's data area, zeroed at accept); the answer's part is
 * reset for every request of a keep-alive connection.
 *
 *   waiting --head read--> busy (reading paused) --answer sent--> waiting
 *                            |                                  (or closed:
 *                            +-- parked (bus, snapshot) --+      close_after)
 */
struct hreq {
	struct httpd *h;
	struct srv_conn *sc;
	struct http1 *req;
	/* The head being read must be complete by then (408 after it): set at
	 * accept, or by the first byte after an answer; later bytes of the same
	 * head never move it (a client that sends a byte a second is still cut
	 * off). 0: no head begun. */
	int64_t head_by_ms;
	bool busy, finishing, buf_busy, peer_eof;
	/* A handler asked for the request's body (hs_body), which is still on
	 * its way: reading goes on, into http1, until it is complete. */
	bool body_wait;
	struct bytes pend; /* bytes read after the request being answered */
	struct hreq *next_parked, **pprev_parked;
	enum hs_park park;
	int park_ref;
	int64_t park_deadline;
	bool park_timed_out;
	bool resumed;
	struct route route;
	unsigned method;
	bool head;
	bool to_console; /* an upgrade to /api/ws: the console takes the connection */
	/* Who the request authenticated as (hs_actor): never the secret itself,
	 * only its configured name and role, its digest and expiry. A playlist
	 * token (hlscap.h) authenticates as its parent, and is kept to go into
	 * the links of a playlist it fetches again. */
	bool authed, auth_query, auth_cap;
	enum cfg_role actor_role;
	char actor[HS_ACTOR_MAX];
	uint8_t token_digest[TOK_DIGEST_LEN]; /* not set for a playlist token */
	int64_t token_expires;                /* unix s, 0 never */
	char cap[HLSCAP_TEXT_LEN + 1];
	/* the answer */
	bool answered, hdr_sent, close_after;
	int status;
	char ctype[64];
	char extra[HS_EXTRA_MAX];
	size_t extra_len;
	struct hbody body;
	uint64_t pos, end;   /* bytes [pos, end) of body still to send */
	size_t part;         /* the part holding pos, */
	uint64_t part_start; /* at this offset of the body */
	int fd;
	size_t fd_part;
	unsigned char *buf;
	/* a body made while it is sent (hs_stream): chunked unless HTTP/1.0 */
	const struct hs_stream_ops *stream;
	void *stream_ctx;
	bool chunked, stream_end;
	/* live.mjpeg: set from the stream's start until the connection closes;
	 * mjpeg.c then owns the writing (see mjpeg.h) */
	struct mjpeg_client *mjpeg;
	/* record.c: an export's record on its way to disk */
	enum { REC_NONE, REC_WAITING, REC_DURABLE, REC_FAILED } rec_state;
};

struct hs {
	struct srv *srv;
	struct hreq *parked;
};

/* request.c */
void hs_request(struct httpd *h, struct hreq *r);
/* The body hs_body waited for is complete: the handler runs again. */
void hs_body_arrived(struct httpd *h, struct hreq *r);
/* Forgets the request's answer and parking (between keep-alive requests). */
void hs_reset(struct hreq *r);
void hs_park_timeouts(struct httpd *h);

/* answer.c */
void hs_extra(struct hreq *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A request header (case-insensitive name) copied into buf; false when
 * absent or longer than buf. */
bool hs_header(struct hreq *r, const char *name, char *buf, size_t size);
/* Sends the headers, then the body as the socket takes it; < 0: close. */
int hs_writeable(struct httpd *h, struct hreq *r);
/* The answer is out: the next request, or the connection's end. */
void hs_done(struct httpd *h, struct hreq *r);
/* A chunk handed to srv (the TLS path) was sent. */
void hs_sent(struct httpd *h, struct hreq *r, bool written);
/* Queues the status line and headers (the extras, the Connection header)
 * of a response without Content-Length: a HEAD, or a body that ends with
 * the connection (close_after). -1: the connection failed. */
int hs_stream_headers(struct httpd *h, struct hreq *r, int status, const char *ctype);

/* request.c: what identifies the request's token for later checks (revoked,
 * expired): its SHA-256 as tok_digest gives it, and its expiry (unix s, 0
 * never). -ENOENT without a token or with a playlist token. */
int hs_token_id(struct hreq *r, uint8_t ret_digest[32], int64_t *ret_expires);

#endif
