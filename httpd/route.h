/* route: PROTOCOL.md section 6's paths, parsed strictly. A path either names
 * one route with ids that are valid (UUIDs in lower case, sequences in
 * canonical decimal) or it is refused; nothing in a path ever becomes part of
 * a file name unchecked. Pure functions: no I/O, unit-tested alone. */
#ifndef VIGIL_HTTPD_ROUTE_H
#define VIGIL_HTTPD_ROUTE_H

#include <stdint.h>

#define ROUTE_PATH_MAX 1024 /* bytes of a decoded path */

enum route_kind {
	ROUTE_STATIC = 0, /* GET /, the web app's files */
	ROUTE_HEALTH,
	ROUTE_METRICS,
	ROUTE_API_STATUS,
	ROUTE_API_METRICS,
	ROUTE_API_CONFIG,
	ROUTE_SENTINELS,
	ROUTE_SNAPSHOT,
	ROUTE_SESSIONS,
	ROUTE_SESSION, /* DELETE only */
	ROUTE_SEGMENTS,
	ROUTE_INIT,
	ROUTE_SEGMENT,
	ROUTE_EXPORT,
	ROUTE_PLAYLIST,
	ROUTE_MANIFEST,
	ROUTE_ALL_SESSIONS, /* /api/sessions: every sentinel's */
	ROUTE_LIVE_MJPEG,
	ROUTE_AUDIT,        /* /api/audit: the audit log's records (aread.h) */
	ROUTE_AUDIT_VERIFY, /* /api/audit/verify: its hash chain checked */
	ROUTE_THUMBS,       /* .../sessions/{id}/thumbs: the session's thumbnails (thumb.h) */
	ROUTE_THUMB,        /* .../thumbs/{n}.jpg: one of them */
	ROUTE_MARKS,        /* .../sessions/{id}/marks: GET the list, POST one */
	ROUTE_API_RELAY,    /* /api/relay: where the web app finds relay (no token) */
	ROUTE_N_KINDS,
};

enum route_method {
	ROUTE_GET = 1u << 0,
	ROUTE_HEAD = 1u << 1,
	ROUTE_DELETE = 1u << 2,
	ROUTE_POST = 1u << 3,
	ROUTE_OTHER = 1u << 4, /* PUT, PATCH, OPTIONS ...: never allowed */
};

struct route {
	enum route_kind kind;
	char sentinel[37]; /* lower case, "" when the route has none */
	char session[37];
	int64_t sequence;   /* ROUTE_SEGMENT; ROUTE_THUMB: the thumbnail's number */
	const char *file;   /* ROUTE_STATIC: the path after the leading '/', "" for / */
	const char *reason; /* on -EINVAL: what was wrong, for the 400 answer */
};

/* Parses a decoded path (no query). 0 on success; -ENOENT when no route has
 * that shape (404); -EINVAL when the shape is right but an id is malformed,
 * or the path itself is (a '%' left after decoding, a control byte, "//", a
 * "." or ".." segment, a backslash, over ROUTE_PATH_MAX): 400, ret->reason
 * says why. ret->file points into path. */
int route_parse(const char *path, struct route *ret);

/* The methods a route answers (ROUTE_GET | ROUTE_HEAD, ROUTE_DELETE, or for
 * the marks ROUTE_GET | ROUTE_HEAD | ROUTE_POST). */
unsigned route_methods(enum route_kind kind);
/* "GET, HEAD", "DELETE" or "GET, HEAD, POST", for the Allow header of a 405. */
const char *route_allow(enum route_kind kind);

/* Parses a canonical non-negative decimal int64 ("0", "17", never "017",
 * "+1", "-1" or an overflow): 0 or -EINVAL. */
int route_parse_int(const char *s, int64_t *ret);
/* Parses a plain decimal with up to 3 integer and 3 fraction digits ("1",
 * "0.5", "2.25"; never "", ".5", "1.", "1e1", "+1", "-1" or "1,5") into
 * thousandths: "0.5" gives 500. 0 or -EINVAL. */
int route_parse_milli(const char *s, int64_t *ret);

#endif
