/* history: sessions, segments, init and segment bytes, and DELETE (asked of
 * archive over the bus). */
#ifndef VIGIL_HTTPD_HISTORY_H
#define VIGIL_HTTPD_HISTORY_H

#include "bus.h"

struct httpd;
struct hreq;

void history_handle(struct httpd *h, struct hreq *r);
void history_deleted(struct httpd *h, const struct bus_msg *msg);

#endif
