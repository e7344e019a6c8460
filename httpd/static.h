/* static: the web app's files, from the web root. */
#ifndef VIGIL_HTTPD_STATIC_H
#define VIGIL_HTTPD_STATIC_H

struct httpd;
struct hreq;

void static_get(struct httpd *h, struct hreq *r);

#endif
