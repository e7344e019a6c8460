/* record: httpd's audit records (record.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "httpd.h"
#include "id.h"
#include "log.h"
#include "proc.h"
#include "record.h"
#include "route.h"
#include "server.h"
#include "srv.h"
#include "viewlog.h"

#define REC_WAIT_MS   5000 /* an export waits this long for its record */
#define REC_READS_MAX 4096 /* (token, session, minute) counted at once; more go out early */
#define REC_MINUTE_MS 60000

/* Reads of one session by one token in one minute. */
struct rec_read {
	char actor[64], role[16], remote[64];
	bool known; /* actor and role are a configured token's */
	char sentinel[37], session[37];
	int64_t minute; /* unix ms of its start */
	uint64_t requests, bytes;
};

struct rec {
	struct rec_read *v;
	size_t n, cap;
	int next_ticket;
};

/* The writer's answer for a parked request. */
struct rec_wait {
	struct httpd *h;
	int ticket;
};

int
rec_init(struct httpd *h)
{
	h->rec = calloc(1, sizeof(*h->rec));
	return h->rec != NULL ? 0 : -ENOMEM;
}

static json_t *
rec_base(const char *action, const char *actor, const char *role, bool known, const char *remote)
{
	return known ? audit_record_as(action, actor, role, remote)
		     : audit_record(action, NULL, remote);
}

static void
rec_read_out(struct httpd *h, const struct rec_read *x)
{
	json_t *rec = rec_base("history.read", x->actor, x->role, x->known, x->remote);

	if (rec == NULL)
		return;
	json_object_set_new(rec, "time", json_integer(x->minute));
	json_object_set_new(rec, "sentinelId", json_string(x->sentinel));
	json_object_set_new(rec, "sessionId",
			    x->session[0] ? json_string(x->session) : json_null());
	json_object_set_new(rec, "requests", json_integer((json_int_t)x->requests));
	json_object_set_new(rec, "bytes", json_integer((json_int_t)x->bytes));
	audit_emit(stage_audit(h->st), rec, 0, NULL, NULL);
}

/* Reads of minutes before `before` go out (all of them: INT64_MAX), of
 * every session or of one. */
static void
rec_flush(struct httpd *h, int64_t before, const char *session)
{
	struct rec *rc = h->rec;
	size_t k = 0;

	for (size_t i = 0; i < rc->n; i++) {
		if (rc->v[i].minute < before &&
		    (session == NULL || strcmp(rc->v[i].session, session) == 0))
			rec_read_out(h, &rc->v[i]);
		else
			rc->v[k++] = rc->v[i];
	}
	rc->n = k;
}

void
rec_free(struct httpd *h)
{
	if (h->rec == NULL)
		return;
	rec_flush(h, INT64_MAX, NULL);
	free(h->rec->v);
	free(h->rec);
	h->rec = NULL;
}

void
rec_tick(struct httpd *h)
{
	if (h->views != NULL)
		relay_viewlog_tick(h->views, proc_now_ms());
	rec_flush(h, proc_now_ms() / REC_MINUTE_MS * REC_MINUTE_MS, NULL);
}

void
rec_flush_session(struct httpd *h, const char *session)
{
	rec_flush(h, INT64_MAX, session);
}

void
rec_reset(struct hreq *r)
{
	r->rec_state = REC_NONE;
}

/* The request's token as records name it (hs_actor: a playlist token's
 * parent); "" and false when it has none. */
static bool
rec_actor(const struct hreq *r, const char **ret_name, const char **ret_role)
{
	enum cfg_role role;

	if (hs_actor(r, ret_name, &role) < 0) {
		*ret_name = *ret_role = "";
		return false;
	}
	*ret_role = cfg_role_name(role);
	return true;
}

json_t *
rec_new(struct hreq *r, const char *action)
{
	const char *name, *role;
	bool known = rec_actor(r, &name, &role);

	return rec_base(action, name, role, known, srv_conn_peer(r->sc));
}

static void
rec_done(void *ctx, int status)
{
	struct rec_wait *w = ctx;
	struct hs *s = w->h->srv;

	for (struct hreq *r = s->parked; r != NULL; r = r->next_parked) {
		if (r->park == HS_PARK_AUDIT && r->park_ref == w->ticket)
			r->rec_state = status == 0 ? REC_DURABLE : REC_FAILED;
	}
	hs_unpark(w->h, HS_PARK_AUDIT, w->ticket);
	free(w);
}

void
rec_release(struct httpd *h)
{
	audit_release_fn(stage_audit(h->st), rec_done, -ESHUTDOWN);
}

int
rec_sync(struct httpd *h, struct hreq *r, json_t *rec)
{
	struct rec_wait *w;

	if (r->rec_state == REC_DURABLE) {
		json_decref(rec);
		return 1;
	}
	if (r->rec_state != 0) {
		json_decref(rec);
		hs_retry_after(r, 5);
		hs_error(r, 503,
			 "the audit log cannot record this now (the writer did not "
			 "confirm it); retry");
		return -1;
	}
	w = malloc(sizeof(*w));
	if (w == NULL) {
		json_decref(rec);
		hs_error(r, 500, "out of memory");
		return -1;
	}
	w->h = h;
	w->ticket = ++h->rec->next_ticket;
	if (w->ticket <= 0)
		w->ticket = h->rec->next_ticket = 1;
	r->rec_state = REC_WAITING;
	/* Parked first: the callback may come at once (a full outbox). */
	hs_park(r, HS_PARK_AUDIT, w->ticket, REC_WAIT_MS + 1000);
	audit_emit(stage_audit(h->st), rec, REC_WAIT_MS, rec_done, w);
	return 0;
}

/* The live session of a sentinel, for its snapshot ("" when not known). */
static void
rec_live_session(struct httpd *h, const char *sentinel, char out[37])
{
	uint32_t n = h->ring != NULL ? ring_sentinel_slots(h->ring) : 0;
	uint8_t id[16];

	out[0] = '\0';
	if (id_parse(sentinel, id) < 0)
		return;
	for (uint32_t i = 0; i < n; i++) {
		struct ring_sentinel rs;

		if (ring_sentinel_get(h->ring, i, &rs, NULL, 0) == 0 &&
		    memcmp(rs.id, id, 16) == 0) {
			id_format(rs.session, out);
			return;
		}
	}
}

void
rec_served(struct httpd *h, struct hreq *r, uint64_t bytes)
{
	const struct route *rt = &r->route;
	const char *remote = srv_conn_peer(r->sc);
	struct rec *rc = h->rec;
	struct rec_read *x = NULL;
	int64_t minute = proc_now_ms() / REC_MINUTE_MS * REC_MINUTE_MS;
	const char *name, *role;
	bool known = rec_actor(r, &name, &role);
	char session[37];

	if (r->head || (r->status != 200 && r->status != 206) ||
	    (rt->kind != ROUTE_SEGMENT && rt->kind != ROUTE_INIT && rt->kind != ROUTE_PLAYLIST &&
	     rt->kind != ROUTE_SNAPSHOT && rt->kind != ROUTE_THUMB))
		return;
	if (rt->kind == ROUTE_SNAPSHOT)
		rec_live_session(h, rt->sentinel, session);
	else
		snprintf(session, sizeof(session), "%s", rt->session);
	for (size_t i = 0; i < rc->n; i++) {
		struct rec_read *y = &rc->v[i];

		if (y->minute == minute && strcmp(y->actor, name) == 0 &&
		    strcmp(y->role, role) == 0 && strcmp(y->session, session) == 0 &&
		    strcmp(y->sentinel, rt->sentinel) == 0) {
			x = y;
			break;
		}
	}
	if (x == NULL) {
		if (rc->n == REC_READS_MAX)
			rec_flush(h, INT64_MAX, NULL); /* early, rather than uncounted */
		if (rc->n == rc->cap) {
			size_t cap = rc->cap ? 2 * rc->cap : 16;
			struct rec_read *nv = realloc(rc->v, cap * sizeof(*nv));

			if (nv == NULL) {
				log_warn(-ENOMEM, "audit: a history read not counted");
				return;
			}
			rc->v = nv;
			rc->cap = cap;
		}
		x = &rc->v[rc->n++];
		memset(x, 0, sizeof(*x));
		snprintf(x->actor, sizeof(x->actor), "%s", name);
		snprintf(x->role, sizeof(x->role), "%s", role);
		snprintf(x->remote, sizeof(x->remote), "%s", remote != NULL ? remote : "");
		snprintf(x->sentinel, sizeof(x->sentinel), "%s", rt->sentinel);
		snprintf(x->session, sizeof(x->session), "%s", session);
		x->known = known;
		x->minute = minute;
	}
	x->requests++;
	x->bytes += bytes;
}

struct relay_view *
rec_view_begin(struct httpd *h, struct hreq *r, const char *sentinel, const char *session,
	       int64_t from_ms)
{
	const char *name, *role, *remote = srv_conn_peer(r->sc);

	/* A token the configuration does not know has null names, which the
	 * journal cannot say: that view is recorded when it ends only. */
	if (h->views == NULL || !rec_actor(r, &name, &role))
		return NULL;
	return relay_viewlog_begin(h->views, name, role, remote != NULL ? remote : "", sentinel,
				   session, from_ms);
}

void
rec_view(struct httpd *h, struct hreq *r, struct relay_view *v, const char *sentinel,
	 const char *session, int64_t from_ms)
{
	json_t *rec;

	if (v != NULL) {
		relay_viewlog_end(h->views, v, proc_now_ms()); /* the journal's from here */
		return;
	}
	rec = rec_new(r, "live.view");
	if (rec == NULL)
		return;
	json_object_set_new(rec, "sentinelId", json_string(sentinel));
	json_object_set_new(rec, "sessionId", json_string(session));
	json_object_set_new(rec, "from", json_integer(from_ms));
	json_object_set_new(rec, "to", json_integer(proc_now_ms()));
	json_object_set_new(rec, "via", json_string("live.mjpeg"));
	audit_emit(stage_audit(h->st), rec, 0, NULL, NULL);
}

void
rec_refused(struct httpd *h, const char *endpoint, const char *remote, const struct tok_info *info,
	    const char *reason)
{
	json_t *rec = audit_record("auth.failed", info, remote);

	if (rec == NULL)
		return;
	json_object_set_new(rec, "endpoint", json_string(endpoint));
	json_object_set_new(rec, "reason", json_string(reason));
	audit_emit_refusal(stage_audit(h->st), rec);
}
