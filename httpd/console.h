/* console: the operator console, /api/ws on httpd's port (PROTOCOL.md
 * section 7). httpd's server reads the upgrade request like any other and
 * hands the connection to an embedded wss (console_adopt); from then on the
 * connection speaks the WebSocket protocol of the other sockets (envelope,
 * size limits, keepalive, idle), and the operator's requests go to vigild
 * over the bus (common/bus.h names them), their answers back to the
 * operator who asked. Loop thread. */
#ifndef VIGIL_HTTPD_CONSOLE_H
#define VIGIL_HTTPD_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "bus.h"
#include "http1.h"
#include "srv.h"

struct httpd;

/* The data area a connection of httpd's srv needs so that the console can
 * take it over. */
size_t console_conn_size(void);
/* On httpd's srv, once it runs. -ENOMEM. */
int console_open(struct httpd *h, struct srv *s);
void console_free(struct httpd *h);
/* An upgrade request to /api/ws: the connection is the console's from here
 * (httpd's own state of it is already released). rest: bytes read after the
 * head. */
void console_adopt(struct httpd *h, struct srv_conn *sc, struct http1 *req, const uint8_t *rest,
		   size_t len);
/* httpd's config changed (a reload): limits and timeouts from now on. */
void console_set_cfg(struct httpd *h);
/* Every SRV_TICK_MS. */
void console_tick(struct httpd *h);
/* A bus message; true when it was the console's. */
bool console_bus(struct httpd *h, const struct bus_msg *msg);
/* token.revoke { token } from the bus: the store refuses it (wss_revoke) and
 * operators who used it are closed with 3004. wss_revoke's result. */
int console_revoke(struct httpd *h, const msgpack_object *body);
/* vigild's revoked list: the store's whole list from now on, and operators
 * whose token is on it closed with 3004. */
void console_revoked(struct httpd *h, const uint8_t *digests, size_t n);
/* vigild's status changed (a fresh answer came): operators see it now. */
void console_status(struct httpd *h);
/* At stop: 1012 or 1001 to every operator; how many are still open. */
void console_close_all(struct httpd *h);
size_t console_open_count(const struct httpd *h);
/* The acts waiting for their record hear -ESHUTDOWN now (h is going): an
 * act not yet recorded is dropped, a revocation answered. */
void console_release(struct httpd *h);
/* Operators connected and through operator.auth. */
unsigned console_operators(const struct httpd *h);

#endif
