#ifndef VIGIL_HTTPD_XPLAN_H
#define VIGIL_HTTPD_XPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "body.h"
#include "fmp4.h"

struct httpd;

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
int xport_render(const struct xport *xp, const struct hpart *pt, struct hbuf **ret);

void xplan_init(struct httpd *h);
void xplan_free(struct httpd *h);
/* The plan of the export tagged etag applied to b: 1 when it was known (every
 * part's length, and b->sha256), 0 when it is being made (park the
 * request), -EAGAIN when making it failed (answer 503). With need false and
 * no plan known, 1 and b as it is. Otherwise a job starts: b moves into it. */
int xplan_apply(struct httpd *h, const char *etag, const char *session, struct hbody *b, bool need);
/* Forgets every plan of a session (a hard delete). */
void xplan_forget(struct httpd *h, const char *session);
void xplan_service(struct httpd *h); /* loop thread: jobs done */

#endif
