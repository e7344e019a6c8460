#ifndef VIGIL_HTTPD_FORGET_H
#define VIGIL_HTTPD_FORGET_H

#include <stdbool.h>
#include <stdint.h>

struct httpd;

/* forget.c: sessions hard-deleted on request (PROTOCOL.md section 6): from
 * archive's data_dir/.deleted-sessions, read once data_dir is there, and every
 * session.deleted 204 since. A forgotten session answers 404 on every route,
 * whether its bytes are on disk or still in the ring, and the snapshot and
 * the sentinel listing do not show it. */
bool ar_forgotten(struct httpd *h, const char *session);
bool ar_forgotten_id(struct httpd *h, const uint8_t session[16]);
void ar_forget(struct httpd *h, const uint8_t session[16]);
void ar_forget_free(struct httpd *h);

#endif
