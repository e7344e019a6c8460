/* marks: a session's marks over HTTP (PROTOCOL.md sections 6 and 8): GET and
 * POST .../sessions/{sessionId}/marks, and the reading of them for the
 * playlist (hls.c) and the manifest (manifest.c). Archive stores them (a POST is
 * asked of it over the bus, mark.add, and answered with its mark.added);
 * httpd reads them from the session's marks.jsonl (common/mark.h). Loop
 * thread. */
#ifndef VIGIL_HTTPD_MARKS_H
#define VIGIL_HTTPD_MARKS_H

#include <stddef.h>

#include <jansson.h>

#include "bus.h"
#include "mark.h"

struct httpd;
struct hreq;
struct ar_sess;

#define MARKS_BODY_MAX   (16u << 10) /* a POST body over this is 413 */
#define MARKS_WAIT_MS    5000        /* archive's answer to a POST, then 503 */
#define MARKS_ARCHIVE_MS 4000        /* archive stores nothing the POST sent this long ago */

/* GET, HEAD and POST of ROUTE_MARKS. */
void marks_handle(struct httpd *h, struct hreq *r);
/* mark.added from archive: the answer to a POST of this httpd, or another's. */
void marks_added(struct httpd *h, const struct bus_msg *msg);

/* The session's marks, oldest first (mark_sort), malloc'ed (NULL when none):
 * none for a session without a directory. -ENOMEM, -errno. */
int marks_read(struct httpd *h, const struct ar_sess *s, struct mark **ret, size_t *ret_n);
/* [Mark], in the given order; NULL when out of memory. */
json_t *marks_json(const struct mark *v, size_t n);

#endif
