/* httpd: vigil-httpd's modules and what they share. The stage serves
 * PROTOCOL.md section 6 over HTTP/1.1 (common/srv.h, common/http1.h) on the
 * socket vigild hands down; everything runs in the one loop thread except the
 * snapshot worker (snap.c) and live.mjpeg's decoders (mjpeg_dec.c), which
 * only hand results back through a lock.
 *
 * A response body is a list of parts, each a range of a file (read in chunks
 * while the socket takes them, never whole) or of a refcounted memory buffer
 * (a segment copied out of the ring, a JSON text). Range requests pick bytes
 * across the parts, so export.mp4 (the init and every segment file) is served
 * in constant memory with its exact length known before the first byte. */
#ifndef VIGIL_HTTPD_H
#define VIGIL_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cfg.h"
#include "fmp4.h"
#include "range.h"
#include "ring.h"
#include "route.h"
#include "stage.h"
#include "tok.h"

#define HTTPD_ETAG_MAX 80

struct httpd;
struct hreq;
struct mjpeg;

/* A refcounted byte buffer; the service thread alone touches the count. */
struct hbuf {
	unsigned refs;
	size_t len;
	uint64_t *account; /* when set, len is taken off *account at the last unref */
	unsigned char data[];
};

struct hbuf *hbuf_new(size_t len);
struct hbuf *hbuf_ref(struct hbuf *b);
void hbuf_unref(struct hbuf *b);

struct part {
	char *path; /* a file, or NULL: beneath dirfd (beneath.h) unless AT_FDCWD */
	int dirfd;
	struct hbuf *mem;  /* or bytes in memory */
	uint64_t off, len; /* the bytes the part sends */
	/* An export's segment, remapped when it is sent (xplan.c): by the
	 * export's generation gen (-1: sent as it is), from src_len bytes at
	 * off; len is then what the remap gives. */
	int gen;
	uint64_t src_len;
	bool release; /* mem was made for sending: let go once it is sent */
};

struct xport;

struct body {
	struct part *v;
	size_t n, cap;
	uint64_t total;
	struct xport *xp; /* an export's remaps (xplan.c), or NULL */
	bool has_sha256;  /* sha256 is the whole body's: Repr-Digest with a 200 */
	unsigned char sha256[32];
};

/* -ENOMEM. add_mem takes a reference of its own. A file's path is relative to
 * dirfd and opened beneath it when it is sent (AT_FDCWD: an absolute path). */
int body_add_file(struct body *b, int dirfd, const char *path, uint64_t off, uint64_t len);
int body_add_mem(struct body *b, struct hbuf *mem, uint64_t off, uint64_t len);
int body_add_copy(struct body *b, const void *data, size_t len);
void body_free(struct body *b);
/* The last part added becomes a segment remapped by generation gen of b->xp. */
void body_remap_last(struct body *b, int gen);

/* One segment of a session, from the archive's index or only from the ring. */
struct seg {
	int64_t sequence, start_ms;
	uint32_t duration_ms;
	uint64_t bytes;
	bool keyframe;
	int init;  /* file generation: 0 = init.mp4, K = init-K.mp4 */
	bool ring; /* not in the index (yet): served from the ring */
	uint64_t ring_index;
	char sha256[65]; /* "" for ring-only segments */
};

struct seglist {
	struct seg *v;
	size_t n, cap;
};

/* A session as the archive wrote it, or as the ring shows it before that. */
struct sess {
	char sentinel[37], session[37];
	char name[128], codec[64];
	int64_t width, height, timescale;
	int64_t start_ms, end_ms; /* end_ms -1: live (endTime null) */
	int inits;
	bool on_disk;
	int ring_slot; /* the sentinel's ring slot while this is its session, else -1 */
};

/* archive_read.c: the archive's layout (docs/archive.md) merged with the ring. */
int ar_session(struct httpd *h, const char *sentinel, const char *session, struct sess *ret);
/* Ascending sequence; index lines first, the ring's segments not yet indexed
 * after them. -ENOMEM. */
int ar_segments(struct httpd *h, const struct sess *s, struct seglist *ret);
void seglist_free(struct seglist *l);
/* One segment by sequence: the index, else the ring (newest first). -ENOENT. */
int ar_segment_find(struct httpd *h, const struct sess *s, int64_t sequence, struct seg *ret);
const struct seg *seglist_find(const struct seglist *l, int64_t sequence);
/* [Sentinel] (PROTOCOL.md section 5's shape), online and archived. */
json_t *ar_sentinels_json(struct httpd *h);
/* -ENOENT for a sentinel neither archived nor in the ring. */
int ar_sessions_json(struct httpd *h, const char *sentinel, json_t **ret);
json_t *ar_segments_json(const struct sess *s, const struct seglist *l);
/* Adds the segment's bytes to b and gives its strong ETag. -ENOENT when
 * neither the file nor the ring has it any more, -ENOMEM, -EBUSY (the memory
 * budget for ring copies is used up). */
int ar_segment_body(struct httpd *h, const struct sess *s, const struct seg *g, struct body *b,
		    char etag[HTTPD_ETAG_MAX]);
int ar_init_body(struct httpd *h, const struct sess *s, int gen, struct body *b,
		 char etag[HTTPD_ETAG_MAX]);
/* Frees the cache of parsed index files (at exit). */
void ar_cache_free(void);
/* The ring slot of a sentinel id, or -1. */
int ar_ring_slot(struct httpd *h, const char *sentinel);
/* data_dir's fd (opened when first needed: archive may make it later), or -1. */
int ar_data_fd(struct httpd *h);

/* forget.c: sessions hard-deleted on request (PROTOCOL.md section 6): from
 * archive's data_dir/.deleted-sessions, read once data_dir is there, and every
 * session.deleted 204 since. A forgotten session answers 404 on every route,
 * whether its bytes are on disk or still in the ring, and the snapshot and
 * the sentinel listing do not show it. */
bool ar_forgotten(struct httpd *h, const char *session);
bool ar_forgotten_id(struct httpd *h, const uint8_t session[16]);
void ar_forget(struct httpd *h, const uint8_t session[16]);
void ar_forget_free(struct httpd *h);

/* xplan.c: what an export needs besides its parts. The remap of its
 * segments (fmp4_edit.c) is done as each is sent; when a remap changes a
 * segment's length (a later init's segments), or a whole export's SHA-256 is
 * asked for (Repr-Digest, manifest.json), a worker thread reads the export
 * once and the result is kept by the export's ETag. */
struct xport *xport_new(size_t gens);
void xport_free(struct xport *xp);
/* Generation i: its init (parsed) and how its segments move. */
void xport_set(struct xport *xp, size_t i, const struct fmp4_init *init, uint32_t sample_desc,
	       uint64_t rebase);
/* Whether segments of generation i keep their length when remapped. */
bool xport_same_length(const struct xport *xp, size_t i);
/* The part's bytes as sent (any thread): a new buffer of pt->len bytes,
 * read from the part's file or memory and remapped. -EIO. */
int xport_render(const struct xport *xp, const struct part *pt, struct hbuf **ret);

void xplan_init(struct httpd *h);
void xplan_free(struct httpd *h);
/* The plan of the export tagged etag applied to b: 1 when it was known (every
 * part's length, and b->sha256), 0 when it is being made (park the
 * request), -EAGAIN when making it failed (answer 503). With need false and
 * no plan known, 1 and b as it is. Otherwise a job starts: b moves into it. */
int xplan_apply(struct httpd *h, const char *etag, const char *session, struct body *b, bool need);
/* Forgets every plan of a session (a hard delete). */
void xplan_forget(struct httpd *h, const char *session);
void xplan_service(struct httpd *h); /* loop thread: jobs done */

/* export.c: an export of the request's session, as export.mp4 sends it. */
struct export
{
	struct sess s;
	struct seglist l;
	size_t first, last; /* of l, selected */
	struct body b;
	char etag[HTTPD_ETAG_MAX];
};
/* 1 with x ready (export_release it), or 0 when r was answered (an error) or
 * parked (the handler runs again). whole: the session from end to end, else
 * the request's from/to or start/end; need_sha256: b.sha256 is wanted. */
int export_prepare(struct httpd *h, struct hreq *r, bool whole, bool need_sha256, struct export *x);
void export_release(struct export *x);

/* export.c, hls.c, metrics.c, static.c, snap.c: route handlers. Each ends by
 * answering r (hs_* below) or parking it. */
void export_get(struct httpd *h, struct hreq *r);
void manifest_get(struct httpd *h, struct hreq *r);
void hls_get(struct httpd *h, struct hreq *r);
void metrics_get(struct httpd *h, struct hreq *r); /* health, metrics, status, config */
/* The bodies of /api/status and /api/metrics from vigild's last status. */
json_t *metrics_status_json(struct httpd *h);
json_t *metrics_api_json(struct httpd *h);
void static_get(struct httpd *h, struct hreq *r);
void snap_get(struct httpd *h, struct hreq *r);
void snap_init(struct httpd *h);
void snap_free(struct httpd *h);
void snap_service(struct httpd *h); /* the worker finished: answer the waiting requests */

/* server.c: what handlers see of a request and how they answer. */
const struct route *hs_route(const struct hreq *r);
/* A query argument ("from", "token"...), decoded; false when absent. */
bool hs_arg(struct hreq *r, const char *name, char *buf, size_t size);
/* "?token=..." when the request authenticated by query, else "": for links
 * inside a playlist, which players fetch without the header. */
const char *hs_token_query(const struct hreq *r);
void hs_json(struct hreq *r, int status, json_t *body); /* steals body */
void hs_error(struct hreq *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void hs_text(struct hreq *r, int status, const char *ctype, const char *text, size_t len);
/* Bytes with ETag, Range, If-Range and If-None-Match; body is moved. */
void hs_bytes(struct hreq *r, const char *ctype, struct body *body, const char *etag,
	      const char *disposition, const char *cache_control);
/* Waits for the bus or the snapshot worker; hs_park_done() answers again by
 * calling the route's handler. */
enum hs_park {
	HS_PARK_STATUS = 1,
	HS_PARK_DELETE,
	HS_PARK_SNAPSHOT,
	HS_PARK_EXPORT,
};
void hs_park(struct hreq *r, enum hs_park why, int ref, int timeout_ms);
bool hs_parked_timed_out(const struct hreq *r);
/* While a handler runs again after hs_park: the ref it parked with, else -1. */
int hs_park_ref(const struct hreq *r);
/* Whether the request asks for a Range (the answer may still be whole). */
bool hs_has_range(struct hreq *r);
/* Adds Retry-After to the answer (503). */
void hs_retry_after(struct hreq *r, int seconds);
/* Adds Link: <target>; rel="next" (the next page of a listing). */
void hs_link_next(struct hreq *r, const char *target);
/* Wakes every request parked for why (ref -1: any ref). */
void hs_unpark(struct httpd *h, enum hs_park why, int ref);

/* The stage, shared by the modules. */
struct httpd {
	struct stage *st;
	const struct cfg *cfg;
	struct tok_store *tok;
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
	/* session.delete requests in flight and their answers. */
	int next_ref;
	json_t *deleted; /* ref (string) -> answer body */
	/* memory held by ring copies being sent, against HTTPD_MEM_BUDGET */
	uint64_t mem_in_use;
	struct httpd_stats {
		uint64_t requests, responses_2xx, responses_3xx, responses_4xx, responses_5xx;
		uint64_t bytes_out, ring_served, file_served, exports, snapshots;
		uint64_t connections;
	} stats;
	void *snap;              /* snap.c's state */
	void *xplan;             /* xplan.c's state */
	struct mjpeg *mjpeg;     /* mjpeg.c's state, made by the first live.mjpeg */
	struct console *console; /* console.c's state */
};

#define HTTPD_MEM_BUDGET (256ull << 20)

/* history.c: sessions, segments, init, segment bytes, DELETE. */
void history_handle(struct httpd *h, struct hreq *r);
void history_deleted(struct httpd *h, const struct bus_msg *msg);

/* server.c: the HTTP server on the stage's socket. */
int hs_open(struct httpd *h);
int hs_run(struct httpd *h);
void hs_close(struct httpd *h);
/* Any thread: makes snap_service() run in the service thread. */
void hs_wake(struct httpd *h);
/* Loop timings for the heartbeat, measured by hs_run. */

/* httpd.c: the stage's state. Config reload: tokens and limits from now on. */
void httpd_reload(struct httpd *h);

/* Stage sequencing for main.c. */
struct httpd *httpd_new(struct stage *st);
int httpd_run(struct httpd *h);
void httpd_free(struct httpd *h);

/* Asks vigild for its status when the last answer is older than max_age_ms;
 * true when a fresh enough one is there. */
bool httpd_status_fresh(struct httpd *h, int64_t max_age_ms);

#endif
