/* console_req: the operator's requests that change the server, and vigild's
 * answers to them: operator.stage.set, operator.config.update,
 * operator.token.revoke, operator.shutdown (PROTOCOL.md section 7; the bus
 * messages in common/bus.h). Loop thread. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "console_internal.h"
#include "log.h"
#include "mjpeg.h"
#include "mp.h"

/* An act held until its record is durable. */
struct con_act {
	struct httpd *h;
	size_t len;
	char data[]; /* the bus request to vigild, whole */
};

/* The record is on disk (or the writer did not say so in time: the operator
 * must be able to act, restarting archive itself included): vigild acts. */
static void
con_act_go(void *ctx, int status)
{
	struct con_act *a = ctx;
	int r;

	if (status == -ESHUTDOWN) {
		log_warn(status,
			 "audit: an operator's act dropped: httpd stops before it is recorded");
		free(a);
		return;
	}
	if (status < 0)
		log_warn(status, "audit: an operator's act is not recorded yet; acting anyway");
	r = stage_send(a->h->st, NULL, "vigild", a->data, a->len);
	if (r < 0)
		log_warn(r, "an operator's request could not be sent to vigild");
	free(a);
}

/* The audit record of an operator's act from this console, with the
 * request's fields (secrets as "***"); fields is taken. */
static json_t *
con_record(struct wss_conn *c, const char *action, json_t *fields)
{
	json_t *rec = audit_record_as(action, con_sess(c)->name, "operator", wss_conn_peer(c));
	const char *key;
	json_t *v;

	if (rec != NULL && fields != NULL) {
		audit_mask(fields);
		json_object_foreach(fields, key, v) json_object_set(rec, key, v);
	}
	json_decref(fields);
	return rec;
}

/* Like con_bus_send, but vigild hears of the act only once its record is
 * durable (PROTOCOL.md section 9: recorded before it is acknowledged). */
static void
con_bus_send_recorded(struct httpd *h, struct wss_conn *c, msgpack_sbuffer *sb, const char *action,
		      json_t *fields)
{
	struct con_act *a = malloc(sizeof(*a) + sb->size);
	json_t *rec = con_record(c, action, fields);

	if (a == NULL) {
		json_decref(rec);
		msgpack_sbuffer_destroy(sb);
		con_error(c, action, "out of memory");
		return;
	}
	a->h = h;
	a->len = sb->size;
	memcpy(a->data, sb->data, sb->size);
	msgpack_sbuffer_destroy(sb);
	audit_emit(stage_audit(h->st), rec, CON_AUDIT_WAIT_MS, con_act_go, a);
}

void
con_stage_set(struct httpd *h, struct wss_conn *c, const msgpack_object *p)
{
	static const char *const states[] = { "start", "stop", "restart", "kill" };
	const char *ref = "operator.stage.set";
	char stage[16], state[16];
	struct con_pending *pd;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	bool known = false;
	int worker;

	/* A stage, or one relay worker ("relay/1"; vigild knows which exist). */
	if (mp_get_strbuf(p, "stage", stage, sizeof(stage)) < 0 ||
	    bus_name_parse(stage, &worker) < 0) {
		con_error(c, ref, "stage must be one of ingest, relay, archive, httpd");
		return;
	}
	if (mp_get_strbuf(p, "state", state, sizeof(state)) == 0) {
		for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
			known |= strcmp(state, states[i]) == 0;
	}
	if (!known) {
		con_error(c, ref, "state must be one of start, stop, restart, kill");
		return;
	}
	/* The console runs in httpd: stopping it would end this connection and
	 * every other operator's, with nothing left to start it again from here. */
	if (strcmp(stage, "httpd") == 0 && strcmp(state, "stop") == 0) {
		con_error(c, ref,
			  "httpd serves this console: stopping it would cut every operator off "
			  "(vigilctl stop httpd can)");
		return;
	}
	pd = con_pending_new(con_of(h), c, CON_K_STAGE, ref);
	if (pd == NULL)
		return;
	con_bus_begin(&sb, &pk, "stage.set", pd->ref, 2);
	mp_pack_kv_str(&pk, "stage", stage);
	mp_pack_kv_str(&pk, "state", state);
	con_bus_send_recorded(h, c, &sb, "stage.set",
			      json_pack("{s:s, s:s}", "stage", stage, "state", state));
	log_info("operator %s: %s %s", con_sess(c)->name, state, stage);
}

void
con_stage_result(struct con_pending *pd, const msgpack_object *body)
{
	char stage[16] = "", state[16] = "", err[256];
	const msgpack_object *pids;
	struct wss_msg m;
	int64_t pid = 0;

	mp_get_strbuf(body, "stage", stage, sizeof(stage));
	mp_get_strbuf(body, "state", state, sizeof(state));
	if (mp_get_strbuf(body, "error", err, sizeof(err)) == 0) {
		con_error(pd->c, "operator.stage.set", "%s %s: %s", state, stage, err);
		return;
	}
	mp_get_int(body, "pid", &pid);
	/* A stage of several processes (relay's workers): pid is the first's,
	 * pids every one's, as vigild gives them. */
	pids = mp_map_get(body, "pids");
	if (pids != NULL && pids->type != MSGPACK_OBJECT_ARRAY)
		pids = NULL;
	con_result_ok(&m, "operator.stage.set", pids != NULL ? 4 : 3);
	mp_pack_kv_str(&m.pk, "stage", stage);
	mp_pack_kv_str(&m.pk, "state", state);
	mp_pack_kv_int(&m.pk, "pid", pid);
	if (pids != NULL) {
		mp_pack_str(&m.pk, "pids");
		msgpack_pack_object(&m.pk, *pids);
	}
	wss_msg_send(pd->c, &m);
}

/* ---- configuration, revocation, shutdown ---- */

void
con_config(struct httpd *h, struct wss_conn *c, const msgpack_object *p)
{
	const char *ref = "operator.config.update";
	const msgpack_object *cfg;
	struct con_pending *pd;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (mp_get_map(p, "config", &cfg) < 0) {
		con_error(c, ref, "config must be a map of settings, as in the file");
		return;
	}
	pd = con_pending_new(con_of(h), c, CON_K_CONFIG, ref);
	if (pd == NULL)
		return;
	con_bus_begin(&sb, &pk, "config.update", pd->ref, 1);
	mp_pack_str(&pk, "config");
	msgpack_pack_object(&pk, *cfg);
	if (sb.size > BUS_MSG_MAX) {
		msgpack_sbuffer_destroy(&sb);
		pd->ref = 0;
		con_error(c, ref, "config is over %d bytes", BUS_MSG_MAX);
		return;
	}
	con_bus_send_recorded(h, c, &sb, "config.update",
			      json_pack("{s:o*}", "config", mp_to_json(cfg)));
	log_info("operator %s: config.update", con_sess(c)->name);
}

void
con_config_result(struct con_pending *pd, const msgpack_object *body)
{
	const msgpack_object *applied, *restart;
	char err[512];
	struct wss_msg m;

	if (mp_get_strbuf(body, "error", err, sizeof(err)) == 0) {
		con_error(pd->c, "operator.config.update", "%s", err);
		return;
	}
	con_result_ok(&m, "operator.config.update", 2);
	mp_pack_str(&m.pk, "applied");
	if (mp_get_array(body, "applied", &applied) == 0)
		msgpack_pack_object(&m.pk, *applied);
	else
		msgpack_pack_array(&m.pk, 0);
	mp_pack_str(&m.pk, "restartRequired");
	if (mp_get_array(body, "restartRequired", &restart) == 0)
		msgpack_pack_object(&m.pk, *restart);
	else
		msgpack_pack_array(&m.pk, 0);
	wss_msg_send(pd->c, &m);
}

/* A revocation waiting for its record before it is answered. */
struct con_revoking {
	struct httpd *h;
	int ref; /* its con_pending's */
};

/* The revocation's record is durable (or the writer did not say so in time:
 * it is answered all the same, like the other acts go ahead): the operator
 * hears, and a connection whose own token it was closes after the answer. */
static void
con_revoke_recorded(void *ctx, int status)
{
	struct con_revoking *w = ctx;
	struct console *con = con_of(w->h);
	struct con_pending *pd = NULL;
	struct wss_msg m;

	if (status < 0)
		log_warn(status,
			 "audit: a token's revocation is not recorded yet; answering anyway");
	for (int i = 0; con != NULL && i < CON_PENDING_MAX; i++) {
		if (con->pending[i].ref == w->ref && con->pending[i].kind == CON_K_REVOKE)
			pd = &con->pending[i];
	}
	free(w);
	if (pd == NULL)
		return; /* its operator left */
	con_result_ok(&m, "operator.token.revoke", 0);
	wss_msg_send(pd->c, &m);
	if (con_sess(pd->c)->revoked)
		wss_conn_close(pd->c, 3004, "Token revoked");
	pd->ref = 0;
}

/* Refused at once here (HTTP, live.mjpeg, this console) and, over the bus, by
 * every other stage and by vigild, which keeps it; answered once its record
 * is durable (PROTOCOL.md section 9). A revocation protects, so it acts
 * first: only the answer waits. */
void
con_revoke(struct httpd *h, struct wss_conn *c, const msgpack_object *p)
{
	const char *ref = "operator.token.revoke", *tok;
	const struct tok_info *info;
	struct con_revoking *w;
	struct con_pending *pd;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	json_t *rec;
	size_t len;
	int r;

	if (mp_get_str(p, "token", &tok, &len) < 0 || len == 0) {
		con_error(c, ref, "token must be a non-empty string");
		return;
	}
	info = NULL;
	if (tok_check(h->tok, tok, len, ~0u, time(NULL), &info) == -EACCES) {
		con_error(c, ref, "no such token in the configuration");
		return;
	}
	pd = con_pending_new(con_of(h), c, CON_K_REVOKE, ref);
	if (pd == NULL)
		return;
	w = malloc(sizeof(*w));
	if (w == NULL) {
		pd->ref = 0;
		con_error(c, ref, "out of memory");
		return;
	}
	*w = (struct con_revoking){ .h = h, .ref = pd->ref };
	/* vigild's fields for its own revocations: the secret masked, the
	 * token's name (its role would overwrite the record's, the operator's). */
	rec = con_record(c, "token.revoke",
			 json_pack("{s:s, s:s?}", "token", "***", "name",
				   info != NULL ? info->name : NULL));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "token.revoke", "httpd", "*");
	msgpack_pack_map(&pk, 1);
	mp_pack_str(&pk, "token");
	msgpack_pack_str(&pk, len);
	msgpack_pack_str_body(&pk, tok, len);
	r = stage_send(h->st, NULL, "*", sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	if (r < 0) {
		json_decref(rec);
		free(w);
		pd->ref = 0;
		con_error(c, ref, "the revocation could not be sent to the other stages; retry");
		return;
	}
	log_info("operator %s revoked a token", con_sess(c)->name);
	tok_revoke(h->tok, tok, len);
	/* This operator's own token: it takes no request more, and closes once
	 * it has its answer (the revocation coming back over the bus too). */
	if (wss_conn_revoked(c, h->tok)) {
		con_sess(c)->revoked = true;
		wss_conn_hold(c);
	}
	mjpeg_revoked(h);
	wss_revoke(con_of(h)->wss, h->tok,
		   &(msgpack_object){ .type = MSGPACK_OBJECT_MAP,
				      .via.map = { 1, &(msgpack_object_kv){
							      .key = { .type = MSGPACK_OBJECT_STR,
								       .via.str = { 5, "token" } },
							      .val = { .type = MSGPACK_OBJECT_STR,
								       .via.str = { (uint32_t)len,
										    tok } } } } });
	/* Last: the answer may come at once (a record that cannot be queued). */
	audit_emit(stage_audit(h->st), rec, CON_AUDIT_WAIT_MS, con_revoke_recorded, w);
}

/* in: a number of seconds, a fraction too (PROTOCOL.md section 7; vigilctl
 * shutdown --in 2.5 and vigild take them). */
void
con_shutdown(struct httpd *h, struct wss_conn *c, const msgpack_object *p)
{
	const char *ref = "operator.shutdown";
	struct con_pending *pd;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	double in = -1;

	/* NaN fails both comparisons. */
	if (mp_get_double(p, "in", &in) < 0 || !(in >= 0 && in <= CON_SHUTDOWN_MAX_S)) {
		con_error(c, ref, "in must be a number of seconds from 0 to %d",
			  CON_SHUTDOWN_MAX_S);
		return;
	}
	pd = con_pending_new(con_of(h), c, CON_K_SHUTDOWN, ref);
	if (pd == NULL)
		return;
	con_bus_begin(&sb, &pk, "shutdown.request", pd->ref, 1);
	mp_pack_kv_double(&pk, "in", in);
	/* The record keeps the number as the operator gave it (5, or 2.5). */
	con_bus_send_recorded(h, c, &sb, "shutdown",
			      json_pack("{s:o*}", "in", mp_to_json(mp_map_get(p, "in"))));
	log_info("operator %s: shutdown in %g s", con_sess(c)->name, in);
}

/* shutdown.result: the one who asked hears when, or why not. */
void
con_shutdown_result(struct con_pending *pd, const msgpack_object *body)
{
	struct wss_msg m;
	char err[256];
	int64_t at = 0;

	if (mp_get_strbuf(body, "error", err, sizeof(err)) == 0) {
		con_error(pd->c, "operator.shutdown", "%s", err);
		return;
	}
	mp_get_int(body, "at", &at);
	con_result_ok(&m, "operator.shutdown", 1);
	mp_pack_kv_int(&m.pk, "at", at);
	wss_msg_send(pd->c, &m);
}

/* shutdown.notice: every operator hears when, and each one who signs in
 * before then too (wss). */
void
con_shutdown_notice(struct console *con, const msgpack_object *body)
{
	int64_t at;

	if (mp_get_int(body, "at", &at) == 0)
		wss_shutdown_notice(con->wss, at);
}

void
console_release(struct httpd *h)
{
	audit_release_fn(stage_audit(h->st), con_act_go, -ESHUTDOWN);
	audit_release_fn(stage_audit(h->st), con_revoke_recorded, -ESHUTDOWN);
}
