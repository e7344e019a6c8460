/* static: the web app's files, from the web root. */
#ifndef VIGIL_HTTPD_STATIC_H
#define VIGIL_HTTPD_STATIC_H

struct httpd;
struct hreq;

void static_get(struct httpd *h, struct hreq *r);
/* GET /api/relay, no token: where the page opens relay's WebSocket.
 * {"sameOrigin": true, "path": "/proctor"} when the request came through a
 * trusted proxy that named its client (a proxy that serves relay on its own
 * origin's /proctor, as the nginx
 * site in deploy/nginx/), else {"sameOrigin": false, "port": listen.relay's
 * port, "path": "/proctor"} for the page's own host name (no port when
 * listen.relay asks for any and vigild's status has not said which yet). */
void static_relay(struct httpd *h, struct hreq *r);

#endif
