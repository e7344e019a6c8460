/* record: what httpd puts in the audit log (PROTOCOL.md section 9,
 * docs/audit.md): exports and manifests (durable before the first byte),
 * history reads (one record per token, session and minute), refused tokens,
 * and, for the console, the operator's acts. The actor is the name and role
 * of the request's token, copied when it was checked; remote the client's
 * address. Loop thread. */
#ifndef VIGIL_HTTPD_RECORD_H
#define VIGIL_HTTPD_RECORD_H

#include <stdint.h>

#include <jansson.h>

#include "tok.h"

struct httpd;
struct hreq;
struct relay_view;

int rec_init(struct httpd *h);
/* Every read still counted goes out (the stage is stopping). */
void rec_free(struct httpd *h);
/* The requests waiting for a record hear -ESHUTDOWN now (h is going). */
void rec_release(struct httpd *h);
/* About every second: reads of a minute that has ended go out. */
void rec_tick(struct httpd *h);

/* The reads of session counted so far go out now: it is being deleted, and
 * the log says it was read before it says it was deleted. */
void rec_flush_session(struct httpd *h, const char *session);
/* A new request: no record waits. */
void rec_reset(struct hreq *r);
/* A record of action by the request's token and client. */
json_t *rec_new(struct hreq *r, const char *action);
/* Hands rec (taken) to the writer and waits for it to be durable: 1 when it
 * is (the handler goes on; rec was a copy of the first), 0 when the request
 * is parked (the handler runs again), -1 when it was answered 503 (the
 * writer did not confirm within a few seconds: nothing unrecorded leaves). */
int rec_sync(struct httpd *h, struct hreq *r, json_t *rec);
/* A response's headers are going out with bytes of body: a read of a
 * session's media is counted. */
void rec_served(struct httpd *h, struct hreq *r, uint64_t bytes);
/* A live view (live.mjpeg) of sentinel's session begins at from_ms: kept in
 * the views' journal (relay/viewlog.h) so that a killed httpd still records
 * it when it starts again. NULL: not kept (no journal, or a token the
 * configuration does not know); rec_view records it all the same. */
struct relay_view *rec_view_begin(struct httpd *h, struct hreq *r, const char *sentinel,
				  const char *session, int64_t from_ms);
/* It ended now: its record goes out (v is the journal's from here). */
void rec_view(struct httpd *h, struct hreq *r, struct relay_view *v, const char *sentinel,
	      const char *session, int64_t from_ms);
/* A request refused for its token: err as tok_check, reason the client's. */
void rec_refused(struct httpd *h, const char *endpoint, const char *remote,
		 const struct tok_info *info, const char *reason);

#endif
