/* httpd: the stage's state and what every handler sees of a request. The
 * stage serves PROTOCOL.md section 6 over HTTP/1.1 (common/srv.h,
 * common/http1.h) and the operator console on /api/ws (console.h), on the
 * socket vigild hands down; everything runs in the one loop thread except
 * the workers (the snapshot's, snap.c; the export plans', xplan.c;
 * live.mjpeg's decoders, mjpeg_dec.c), which hand results back through a
 * lock and hs_wake().
 *
 * Each module has its header: body.h (response bodies), archive_read.h and
 * forget.h (recordings, and the sessions deleted on request), export.h,
 * xplan.h, history.h, hls.h, marks.h, metrics.h, snap.h, static.h, mjpeg.h,
 * catalog.h, console.h, aread.h (the audit log), thumb.h (thumbnails),
 * work.h (worker threads);
 * server.h is the server's own. */
#ifndef VIGIL_HTTPD_H
#define VIGIL_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "body.h"
#include "cfg.h"
#include "fmp4.h"
#include "range.h"
#include "ring.h"
#include "route.h"
#include "stage.h"
#include "tok.h"

struct httpd;
struct hreq;
struct hlscap;
struct mjpeg;

/* server.c: what handlers see of a request and how they answer. */
const struct route *hs_route(const struct hreq *r);
/* A query argument ("from", "token"...), decoded; false when absent. */
bool hs_arg(struct hreq *r, const char *name, char *buf, size_t size);
/* Who the request authenticated as, whatever the way (Bearer, ?token=, or a
 * playlist token, which acts for the token that fetched the playlist): the
 * token's configured name (cut to HS_ACTOR_MAX - 1 bytes; valid as long as the
 * request) and role, for the audit log. -ENOENT for a request that needed no
 * token (the web app's files, /health) or was refused. */
int hs_actor(const struct hreq *r, const char **ret_name, enum cfg_role *ret_role);
/* The token a playlist's links carry, for players that fetch them without
 * the request's header (docs/httpd.md, "Playlist tokens"): "" when the
 * request authenticated by its header; the request's own playlist token when
 * it came with one; else a new playlist token for the route's session, of
 * the request's token, expiring at expires (unix s; never after the token
 * itself). out holds HLSCAP_TEXT_LEN + 1 bytes. 0, -EINVAL, -ENOMEM. */
int hs_link_token(struct hreq *r, int64_t expires, char *out);
void hs_json(struct hreq *r, int status, json_t *body); /* steals body */
void hs_error(struct hreq *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void hs_text(struct hreq *r, int status, const char *ctype, const char *text, size_t len);
/* Bytes with ETag, Range, If-Range and If-None-Match; body is moved. */
void hs_bytes(struct hreq *r, const char *ctype, struct hbody *body, const char *etag,
	      const char *disposition, const char *cache_control);
/* The request's query as sent (percent-encoded), without the '?'; "" when
 * there is none. */
const char *hs_query(const struct hreq *r);
/* A body made while it is sent, whose length is not known before: chunked
 * (HTTP/1.1; an HTTP/1.0 client gets it up to the connection's end). fill
 * puts up to size bytes in buf and returns how many; 0 with *ret_end false
 * means none yet: it is asked again in the loop's next round, so one fill
 * should take a bounded time and other clients go between. *ret_end after
 * the last bytes; < 0 cuts the answer (the connection is dropped without the
 * last chunk, so the client knows the body is incomplete). fill is asked
 * again only once the socket took what it gave: a client that reads slowly
 * holds one chunk. done frees ctx, whether the body was sent or not (HEAD,
 * a closed connection). Never cached (Cache-Control: no-store). Loop thread. */
struct hs_stream_ops {
	ssize_t (*fill)(void *ctx, unsigned char *buf, size_t size, bool *ret_end);
	void (*done)(void *ctx);
};
void hs_stream(struct hreq *r, int status, const char *ctype, const struct hs_stream_ops *ops,
	       void *ctx);
/* Waits for the bus or a worker; hs_unpark() runs the route's handler again,
 * which finds what it waited for (or hs_parked_timed_out()). */
enum hs_park {
	HS_PARK_STATUS = 1,
	HS_PARK_DELETE,
	HS_PARK_SNAPSHOT,
	HS_PARK_EXPORT,
	HS_PARK_AUDIT,       /* record.c: an export's record on its way to disk */
	HS_PARK_AUDIT_CHECK, /* aread.c: the audit log's chain being checked */
	HS_PARK_THUMB,       /* thumb.c: a thumbnail being made */
	HS_PARK_MARK,        /* marks.c: a POSTed mark on its way to archive */
};
void hs_park(struct hreq *r, enum hs_park why, int ref, int timeout_ms);
bool hs_parked_timed_out(const struct hreq *r);
/* While a handler runs again after hs_park: the ref it parked with, else -1. */
int hs_park_ref(const struct hreq *r);
/* The request's body (a POST's), at most max bytes: 0 with it in *ret (valid
 * while the request is answered); -EAGAIN when it is still on its way: the
 * handler returns without answering and runs again once it is all there (or
 * the client is answered 408 or dropped); -EFBIG when it announces more than
 * max (answer 413); -EBADMSG when it is malformed (answer 400). An answer
 * given before the body was all read closes the connection. */
int hs_body(struct hreq *r, size_t max, const void **ret, size_t *ret_len);
/* Whether the request asks for a Range (the answer may still be whole). */
bool hs_has_range(struct hreq *r);
/* Adds Retry-After to the answer (503). */
void hs_retry_after(struct hreq *r, int seconds);
/* Adds Link: <target>; rel="next" (the next page of a listing). */
void hs_link_next(struct hreq *r, const char *target);
/* Wakes every request parked for why (ref -1: any ref). */
void hs_unpark(struct httpd *h, enum hs_park why, int ref);

/* The stage, shared by the modules. */
struct relay_viewlog;

struct httpd {
	struct stage *st;
	const struct cfg *cfg;
	struct tok_store *tok;
	struct hlscap *hlscap; /* the key of playlist tokens (common/hlscap.h) */
	struct ring *ring;
	char ring_name[64];
	int data_fd;           /* data_dir, opened once it exists: see ar_data_fd() */
	struct forget *forget; /* forget.c */
	/* catalog.c: what /api/sessions keeps of each session directory */
	struct catalog *catalog;
	char web_root[4096];
	void *srv; /* server.c's state */
	/* vigild's last status answer (bus "status"), and when it came. */
	json_t *status;
	int64_t status_ms, status_asked_ms;
	/* session.delete and mark.add requests in flight and their answers. */
	int next_ref;
	json_t *deleted;   /* ref (string) -> answer body */
	json_t *marked;    /* marks.c: ref (string) -> { status, error, mark } */
	bool archive_down; /* vigild's last stage.state of archive: offline or stopping */
	/* memory held by ring copies being sent, against HTTPD_MEM_BUDGET */
	uint64_t mem_in_use;
	struct httpd_stats {
		uint64_t requests, responses_2xx, responses_3xx, responses_4xx, responses_5xx;
		uint64_t bytes_out, ring_served, file_served, exports, snapshots;
		uint64_t connections;
		uint64_t thumbs_made, thumbs_cached; /* decoded; served from the cache */
	} stats;
	void *snap;                  /* snap.c's state */
	void *xplan;                 /* xplan.c's state */
	struct mjpeg *mjpeg;         /* mjpeg.c's state, made by the first live.mjpeg */
	struct console *console;     /* console.c's state */
	struct rec *rec;             /* record.c's state */
	struct relay_viewlog *views; /* live.mjpeg views until recorded (main.c's) */
	struct aread *aread;         /* aread.c's state: the audit log's check */
	struct thumb *thumb;         /* thumb.c's state: the thumbnail jobs */
};

#define HTTPD_MEM_BUDGET (256ull << 20)

/* server.c: the HTTP server on the stage's socket. */
int hs_open(struct httpd *h);
int hs_run(struct httpd *h);
void hs_close(struct httpd *h);
/* Any thread: the loop runs its wake-up (the workers' results) soon. */
void hs_wake(struct httpd *h);

/* httpd.c: the stage's state. Config reload: tokens and limits from now on. */
void httpd_reload(struct httpd *h);
/* server.c: a reload the bus asked for, now rather than at the next tick. */
void httpd_take_reload(struct httpd *h);

/* Stage sequencing for main.c. views: the live.mjpeg views' journal
 * (relay/viewlog.h), which outlives h (it is closed after stage_free). */
struct httpd *httpd_new(struct stage *st, struct relay_viewlog *views);
int httpd_run(struct httpd *h);
void httpd_free(struct httpd *h);

/* Asks vigild for its status when the last answer is older than max_age_ms;
 * true when a fresh enough one is there. */
bool httpd_status_fresh(struct httpd *h, int64_t max_age_ms);

#endif
