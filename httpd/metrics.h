/* metrics: /health, /metrics, /api/status, /api/metrics and /api/config, from
 * vigild's last status (asked for when older than a second). */
#ifndef VIGIL_HTTPD_METRICS_H
#define VIGIL_HTTPD_METRICS_H

#include <jansson.h>

struct httpd;
struct hreq;

void metrics_get(struct httpd *h, struct hreq *r);
/* The bodies of /api/status and /api/metrics from vigild's last status. */
json_t *metrics_status_json(struct httpd *h);
json_t *metrics_api_json(struct httpd *h);

#endif
