/* catalog: GET /api/sessions (PROTOCOL.md section 6), the sessions of every
 * sentinel, from data_dir and the ring, newest first, filtered and paged by
 * a cursor; docs/httpd.md "All sessions". Loop thread. */
#ifndef VIGIL_HTTPD_CATALOG_H
#define VIGIL_HTTPD_CATALOG_H

struct httpd;
struct hreq;

/* Answers r: 200 with a page (and Link to the next), 400 for a bad filter. */
void catalog_get(struct httpd *h, struct hreq *r);
/* What it keeps of each session directory between requests (at exit). */
void catalog_free(struct httpd *h);

#endif
