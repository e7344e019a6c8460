/* server.h: what server.c, request.c, answer.c share inside vigil-httpd: the
 * per-connection request state and the lws state. Not for the handlers, which
 * see only httpd.h's hs_* calls. */
#ifndef VIGIL_HTTPD_SERVER_H
#define VIGIL_HTTPD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "httpd.h"

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

/* request.c */
void hs_request(struct httpd *h, struct hreq *r, const char *path);
/* Forgets the request's answer and parking (between keep-alive requests). */
void hs_reset(struct hreq *r);
void hs_park_timeouts(struct httpd *h);

/* answer.c */
void hs_extra(struct hreq *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool hs_header(struct hreq *r, enum lws_token_indexes tok, char *buf, size_t size);
/* Sends the headers, then the body as the socket takes it; < 0: close. */
int hs_writeable(struct httpd *h, struct hreq *r);

#endif
