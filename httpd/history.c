/* history: the archive read routes of PROTOCOL.md section 6 (sessions,
 * segments, init.mp4, segments/{sequence}.m4s) and DELETE of a session,
 * which archive carries out: httpd asks it over the bus (session.delete) and
 * answers the HTTP request with archive's status. Loop thread only. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "archive_read.h"
#include "forget.h"
#include "history.h"
#include "httpd.h"
#include "id.h"
#include "log.h"
#include "mp.h"
#include "record.h"
#include "server.h"
#include "srv.h"

#define HISTORY_DELETE_WAIT_MS 5000

static void
history_segment(struct httpd *h, struct hreq *r, const struct ar_sess *s)
{
	const struct route *rt = hs_route(r);
	char etag[HTTPD_ETAG_MAX];
	struct hbody b = { 0 };
	struct ar_seg g;
	int err = -ENOENT;

	/* Twice: a segment found only in the ring may have been archived and then
	 * overwritten between the lookup and the copy. */
	for (int attempt = 0; attempt < 2; attempt++) {
		err = ar_segment_find(h, s, rt->sequence, &g);
		if (err == 0)
			err = ar_segment_body(h, s, &g, &b, etag);
		if (err != -ESTALE)
			break;
		body_free(&b);
	}
	if (err == -EBUSY) {
		hs_retry_after(r, 1);
		hs_error(r, 503, "too many segments from memory in flight; retry");
	} else if (err < 0) {
		body_free(&b);
		hs_error(r, 404, "segment %lld of session %s not found", (long long)rt->sequence,
			 s->session);
	} else {
		hs_bytes(r, "video/mp4", &b, etag, NULL, "private, max-age=31536000, immutable");
	}
	body_free(&b);
}

static void
history_init(struct httpd *h, struct hreq *r, const struct ar_sess *s)
{
	char etag[HTTPD_ETAG_MAX], arg[32];
	struct hbody b = { 0 };
	int64_t gen = 0;
	int err;

	if (hs_arg(r, "init", arg, sizeof(arg)) &&
	    (route_parse_int(arg, &gen) < 0 || gen > 1000000)) {
		hs_error(r, 400, "init must be an init generation (0, 1, ...)");
		return;
	}
	err = ar_init_body(h, s, (int)gen, &b, etag);
	if (err < 0) {
		body_free(&b);
		hs_error(r, 404, "init generation %lld of session %s not found", (long long)gen,
			 s->session);
		return;
	}
	hs_bytes(r, "video/mp4", &b, etag, NULL, "private, max-age=31536000, immutable");
	body_free(&b);
}

static void
history_delete(struct httpd *h, struct hreq *r)
{
	const struct route *rt = hs_route(r);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	const char *actor;
	enum cfg_role role;
	char key[16];
	json_t *ans;
	int ref, err;

	if (hs_park_ref(r) >= 0) {
		snprintf(key, sizeof(key), "%d", hs_park_ref(r));
		ans = json_object_get(h->deleted, key);
		if (ans == NULL) {
			hs_error(r, 503, "the archive did not answer");
			return;
		}
		json_incref(ans);
		json_object_del(h->deleted, key);
		int status = (int)json_integer_value(json_object_get(ans, "status"));
		const char *why = json_string_value(json_object_get(ans, "error"));
		const char *sess = json_string_value(json_object_get(ans, "sessionId"));

		/* A restarted archive answers the ref a crash left it (docs/archive.md
		 * "Deletion"): one of this httpd's only if it names this session;
		 * else (an httpd before this one asked) this one waits on. */
		if (sess != NULL && strcasecmp(sess, rt->session) != 0) {
			json_decref(ans);
			hs_park(r, HS_PARK_DELETE, hs_park_ref(r), HISTORY_DELETE_WAIT_MS);
			return;
		}
		if (status == 204)
			hs_text(r, 204, "application/json", "", 0);
		else if (status == 503) {
			hs_retry_after(r, 5);
			hs_error(r, 503, "%s",
				 why != NULL ? why : "the audit log is not being written");
		} else if (status == 404 || status == 409 || status == 500)
			hs_error(r, status, "%s",
				 why != NULL && why[0] != '\0' ? why
				 : status == 409               ? "the session is live"
							       : "no such session");
		else
			hs_error(r, 502, "the archive answered status %d", status);
		json_decref(ans);
		return;
	}
	rec_flush_session(h, rt->session);
	ref = ++h->next_ref;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (hs_actor(r, &actor, &role) < 0) {
		actor = "";
		role = CFG_ROLE_COUNT;
	}
	msgpack_pack_map(&pk, 6);
	mp_pack_kv_str(&pk, "sentinelId", rt->sentinel);
	mp_pack_kv_str(&pk, "sessionId", rt->session);
	mp_pack_kv_int(&pk, "ref", ref);
	/* archive records the delete (durably) before it answers: who asked. */
	mp_pack_kv_str(&pk, "actor", actor);
	mp_pack_kv_str(&pk, "role", role < CFG_ROLE_COUNT ? cfg_role_name(role) : "");
	mp_pack_kv_str(&pk, "remote", srv_conn_peer(r->sc));
	err = stage_send(h->st, "session.delete", "archive", sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	if (err < 0) {
		hs_error(r, 503, "the archive cannot be reached");
		return;
	}
	log_info("DELETE session %s of %s asked of archive (ref %d)", rt->session, rt->sentinel,
		 ref);
	hs_park(r, HS_PARK_DELETE, ref, HISTORY_DELETE_WAIT_MS);
}

void
history_deleted(struct httpd *h, const struct bus_msg *msg)
{
	int64_t ref = -1, status = 0;
	char key[24], why[256] = "", sess[ID_STR_LEN] = "";
	uint8_t id[16];

	if (mp_get_int(msg->body, "ref", &ref) < 0 ||
	    mp_get_int(msg->body, "status", &status) < 0 || ref < 0)
		return;
	mp_get_strbuf(msg->body, "error", why, sizeof(why));
	if (mp_get_strbuf(msg->body, "sessionId", sess, sizeof(sess)) < 0 || id_parse(sess, id) < 0)
		sess[0] = '\0';
	/* Forgotten before any answer says 204, whoever asked. */
	if (status == 204 && sess[0] != '\0')
		ar_forget(h, id);
	snprintf(key, sizeof(key), "%lld", (long long)ref);
	if (h->deleted == NULL)
		h->deleted = json_object();
	json_object_set_new(h->deleted, key,
			    json_pack("{s:I, s:s, s:s?}", "status", (json_int_t)status, "error",
				      why, "sessionId", sess[0] != '\0' ? sess : NULL));
	hs_unpark(h, HS_PARK_DELETE, (int)ref);
	/* An answer nobody waits for any more (timed out) is dropped. */
	json_object_del(h->deleted, key);
}

void
history_handle(struct httpd *h, struct hreq *r)
{
	const struct route *rt = hs_route(r);
	struct ar_seglist l;
	struct ar_sess s;
	json_t *j;
	int err;

	if (rt->kind == ROUTE_SESSION) {
		history_delete(h, r);
		return;
	}
	if (rt->kind == ROUTE_SESSIONS) {
		err = ar_sessions_json(h, rt->sentinel, &j);
		if (err == -ENOENT)
			hs_error(r, 404, "sentinel %s not found", rt->sentinel);
		else if (err < 0)
			hs_error(r, 500, "out of memory");
		else
			hs_json(r, 200, j);
		return;
	}
	if (ar_session(h, rt->sentinel, rt->session, &s) < 0) {
		hs_error(r, 404, "session %s of sentinel %s not found", rt->session, rt->sentinel);
		return;
	}
	switch (rt->kind) {
	case ROUTE_SEGMENTS:
		if (ar_segments(h, &s, &l) < 0) {
			hs_error(r, 500, "out of memory");
			return;
		}
		hs_json(r, 200, ar_segments_json(&s, &l));
		ar_seglist_free(&l);
		break;
	case ROUTE_INIT:
		history_init(h, r, &s);
		break;
	case ROUTE_SEGMENT:
		history_segment(h, r, &s);
		break;
	default:
		hs_error(r, 404, "no such resource");
		break;
	}
}
