/* snap: GET .../snapshot.jpg, decoded by a worker thread and cached per
 * sentinel. */
#ifndef VIGIL_HTTPD_SNAP_H
#define VIGIL_HTTPD_SNAP_H

struct httpd;
struct hreq;

void snap_get(struct httpd *h, struct hreq *r);
void snap_init(struct httpd *h);
void snap_free(struct httpd *h);
/* The worker finished: the waiting requests are answered. */
void snap_service(struct httpd *h);

#endif
