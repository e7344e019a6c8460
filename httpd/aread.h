/* aread: the audit log's reading side in vigil-httpd (PROTOCOL.md section 9,
 * docs/audit.md): GET /api/audit streams the records of data_dir/audit that
 * pass the query's filters, and GET /api/audit/verify checks the hash chain
 * on a worker thread. httpd never writes there: archive is the writer.
 *
 *   aread_query.c   the query, the day files (pure)
 *   aread_fields.c  a record's fields, in place or by jansson (pure)
 *   aread_chain.c   the chain check (any thread)
 *   aread.c         the two routes: the stream, the check's job and its waiters
 */
#ifndef VIGIL_HTTPD_AREAD_H
#define VIGIL_HTTPD_AREAD_H

struct httpd;
struct hreq;

void aread_init(struct httpd *h);
void aread_free(struct httpd *h);
/* Loop thread: a check finished (from the wake-up). */
void aread_service(struct httpd *h);

void aread_get(struct httpd *h, struct hreq *r);        /* GET /api/audit */
void aread_verify_get(struct httpd *h, struct hreq *r); /* GET /api/audit/verify */

#endif
