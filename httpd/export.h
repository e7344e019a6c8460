#ifndef VIGIL_HTTPD_EXPORT_H
#define VIGIL_HTTPD_EXPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "archive_read.h"
#include "body.h"

struct httpd;
struct hreq;

/* export.c: an export of the request's session, as export.mp4 sends it. */
struct export
{
	struct ar_sess s;
	struct ar_seglist l;
	size_t first, last; /* of l, selected */
	struct hbody b;
	char etag[HTTPD_ETAG_MAX];
};
/* 1 with x ready (export_release it), or 0 when r was answered (an error) or
 * parked (the handler runs again). whole: the session from end to end, else
 * the request's from/to or start/end; need_sha256: b.sha256 is wanted. */
int export_prepare(struct httpd *h, struct hreq *r, bool whole, bool need_sha256, struct export *x);
void export_release(struct export *x);
/* The audit record of x served as what ("export.mp4", "manifest.json"), made
 * durable before anything is sent: as rec_sync (record.h); 1 for a HEAD,
 * which sends none of it. */
int export_record(struct httpd *h, struct hreq *r, const struct export *x, const char *what);

/* GET .../export.mp4 and .../manifest.json (manifest.c). */
void export_get(struct httpd *h, struct hreq *r);
void manifest_get(struct httpd *h, struct hreq *r);

#endif
