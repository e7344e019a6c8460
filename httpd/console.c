/* console: the operator console (console.h; PROTOCOL.md section 7).
 *
 * An operator's requests that vigild answers (stage.set, logs, config.update,
 * shutdown) go over the bus with a ref of the console's; the answer finds the
 * operator by that ref, so an answer for an operator who left is dropped.
 * What the console pushes (status and metrics every second and at each stage
 * change, log lines) goes through each connection's send queue, which holds
 * at most 256 replies (wss): an operator who does not read loses lines,
 * counted and said, never memory. Loop thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "console_internal.h"
#include "record.h"
#include "env.h"
#include "httpd.h"
#include "id.h"
#include "log.h"
#include "metrics.h"
#include "mjpeg.h"
#include "mp.h"
#include "proc.h"
#include "wss.h"

/* ---- answers ---- */

void
con_result_ok(struct wss_msg *m, const char *ref, uint32_t n_more)
{
	wss_msg_begin(m, "server.result", 2 + n_more);
	mp_pack_kv_str(&m->pk, "ref", ref);
	mp_pack_kv_str(&m->pk, "status", "OK");
}

void
con_error(struct wss_conn *c, const char *ref, const char *fmt, ...)
{
	struct wss_msg m;
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	wss_msg_begin(&m, "server.result", 2);
	mp_pack_kv_str(&m.pk, "ref", ref);
	mp_pack_kv_str(&m.pk, "error", text);
	wss_msg_send(c, &m);
}

static void
con_send_all(struct console *con, struct wss_msg *m)
{
	for (struct wss_conn *c = wss_first(con->wss); c != NULL; c = wss_next(c)) {
		if (con_sess(c)->authed && !wss_conn_closing(c))
			wss_conn_send(c, m->sb.data, m->sb.size);
	}
	msgpack_sbuffer_destroy(&m->sb);
}

/* ---- status and metrics ---- */

static void
con_pack_status(struct httpd *h, struct wss_msg *m)
{
	json_t *st = metrics_status_json(h), *stages = json_object_get(st, "stages"), *v;
	const char *name;

	wss_msg_begin(m, "server.status", 5);
	mp_pack_kv_str(&m->pk, "state", json_string_value(json_object_get(st, "state")));
	mp_pack_kv_int(&m->pk, "sentinels", json_integer_value(json_object_get(st, "sentinels")));
	mp_pack_kv_int(&m->pk, "proctors", json_integer_value(json_object_get(st, "proctors")));
	mp_pack_kv_int(&m->pk, "operators", con_of(h)->operators);
	mp_pack_str(&m->pk, "stages");
	msgpack_pack_map(&m->pk, json_object_size(stages));
	json_object_foreach(stages, name, v)
	{
		const char *state = json_string_value(json_object_get(v, "state"));

		mp_pack_kv_str(&m->pk, name, bus_state_public(state != NULL ? state : ""));
	}
	json_decref(st);
}

static void
con_pack_metrics(struct httpd *h, struct wss_msg *m)
{
	json_t *j = metrics_api_json(h);

	wss_msg_begin(m, "server.metrics", (uint32_t)json_object_size(j));
	for (void *it = json_object_iter(j); it != NULL; it = json_object_iter_next(j, it)) {
		mp_pack_str(&m->pk, json_object_iter_key(it));
		mp_pack_json(&m->pk, json_object_iter_value(it));
	}
	json_decref(j);
}

void
console_status(struct httpd *h)
{
	struct console *con = con_of(h);
	struct wss_msg m;

	if (con == NULL || con->operators == 0 || h->status == NULL)
		return;
	con->last_push_ms = proc_mono_ms();
	con_pack_status(h, &m);
	con_send_all(con, &m);
	con_pack_metrics(h, &m);
	con_send_all(con, &m);
}

/* A fresh status from vigild, whose arrival pushes it (console_status). */
static void
con_ask_status(struct httpd *h)
{
	h->status_asked_ms = proc_mono_ms();
	if (stage_send(h->st, "status.request", "vigild", "\x80", 1) < 0)
		log_debug("status.request not sent");
}

/* ---- requests that vigild answers: their slots ---- */

struct con_pending *
con_pending_new(struct console *con, struct wss_conn *c, enum con_kind kind, const char *ref)
{
	for (int i = 0; i < CON_PENDING_MAX; i++) {
		struct con_pending *p = &con->pending[i];

		if (p->ref != 0)
			continue;
		if (++con->next_ref <= 0)
			con->next_ref = 1;
		*p = (struct con_pending){ .ref = con->next_ref,
					   .kind = kind,
					   .c = c,
					   .deadline_ms = proc_mono_ms() + CON_RESULT_MS };
		return p;
	}
	con_error(c, ref, "too many requests wait for vigild; retry");
	return NULL;
}

static struct con_pending *
con_pending_find(struct console *con, const msgpack_object *body)
{
	int64_t ref;

	if (mp_get_int(body, "ref", &ref) < 0 || ref <= 0)
		return NULL;
	for (int i = 0; i < CON_PENDING_MAX; i++) {
		if (con->pending[i].ref == ref)
			return &con->pending[i];
	}
	return NULL;
}

bool
con_bus_send(struct httpd *h, struct wss_conn *c, const char *ref, msgpack_sbuffer *sb)
{
	int r = stage_send(h->st, NULL, "vigild", sb->data, sb->size);

	msgpack_sbuffer_destroy(sb);
	if (r < 0) {
		con_error(c, ref, "vigild could not be asked (%s); retry", strerror(-r));
		return false;
	}
	return true;
}

void
con_bus_begin(msgpack_sbuffer *sb, msgpack_packer *pk, const char *type, int ref, uint32_t n)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
	bus_pack_begin(pk, type, "httpd", "vigild");
	msgpack_pack_map(pk, 1 + n);
	mp_pack_kv_int(pk, "ref", ref);
}

/* ---- the connection ---- */

/* operator.auth and operator.auth.refresh: an operator's token, remembered
 * (its digest) for a revocation. 0, or the refusal's reason in *ret_why. */
static int
con_token(struct httpd *h, struct wss_conn *c, const msgpack_object *p, const char **ret_why)
{
	struct con_sess *s = con_sess(c);
	const struct tok_info *info;
	int r = wss_conn_check_token(c, h->tok, p, CFG_ROLE_OPERATOR, &info);

	if (r < 0) {
		*ret_why = tok_refusal(r, CFG_ROLE_OPERATOR);
		rec_refused(h, "/api/ws", wss_conn_peer(c), r == -EACCES ? NULL : info, *ret_why);
		return r;
	}
	snprintf(s->name, sizeof(s->name), "%s", info->name);
	s->token_expires = info->expires;
	s->expiry_warned = false;
	return 0;
}

static void
con_auth(struct httpd *h, struct wss_conn *c, const msgpack_object *p)
{
	struct con_sess *s = con_sess(c);
	struct console *con = con_of(h);
	const char *why;
	char reason[96];
	struct wss_msg m;

	if (wss_check_version(p, reason, sizeof(reason)) < 0) {
		log_info("operator refused (3002): %s", reason);
		wss_reject(c, 3002, reason);
		return;
	}
	if (con_token(h, c, p, &why) < 0) {
		log_info("operator refused (3001): %s", why);
		wss_reject(c, 3001, why);
		return;
	}
	id_new(s->id);
	s->authed = true;
	con->operators++;
	wss_msg_begin(&m, "server.auth.success", 2);
	mp_pack_kv_str(&m.pk, "operatorId", s->id);
	mp_pack_str(&m.pk, "expiresAt");
	if (s->token_expires > 0)
		msgpack_pack_int64(&m.pk, s->token_expires * 1000);
	else
		msgpack_pack_nil(&m.pk);
	wss_msg_send(c, &m);
	wss_conn_registered(c);
	log_info("operator %s '%s' signed in", s->id, s->name);
	if (h->status != NULL) {
		con_pack_status(h, &m);
		wss_msg_send(c, &m);
		con_pack_metrics(h, &m);
		wss_msg_send(c, &m);
	}
	con_ask_status(h);
}

static void
con_refresh(struct httpd *h, struct wss_conn *c, const msgpack_object *p)
{
	struct wss_msg m;
	const char *why;

	if (con_token(h, c, p, &why) < 0) {
		con_error(c, "operator.auth.refresh", "%s", why);
		return;
	}
	con_result_ok(&m, "operator.auth.refresh", 1);
	mp_pack_str(&m.pk, "expiresAt");
	if (con_sess(c)->token_expires > 0)
		msgpack_pack_int64(&m.pk, con_sess(c)->token_expires * 1000);
	else
		msgpack_pack_nil(&m.pk);
	wss_msg_send(c, &m);
}

static void
con_message(void *ctx, struct wss_conn *c, const void *buf, size_t len, bool binary,
	    int64_t rx_done_us)
{
	struct httpd *h = ctx;
	struct con_sess *s = con_sess(c);
	const msgpack_object *p;
	struct env *env = wss_decode(c, buf, len, binary);
	const char *type;
	struct wss_msg m;

	if (env == NULL)
		return;
	type = env_type(env);
	p = env_payload(env);
	if (s->revoked) {
		/* Its token is revoked: nothing more is done for it. */
	} else if (!s->authed) {
		if (strcmp(type, "operator.auth") == 0)
			con_auth(h, c, p);
		else
			wss_reject(c, 3001, "The first message must be operator.auth");
	} else if (strcmp(type, "operator.stage.set") == 0) {
		con_stage_set(h, c, p);
	} else if (strcmp(type, "operator.logs") == 0) {
		con_logs(h, c, p);
	} else if (strcmp(type, "operator.console") == 0) {
		con_console(h, c, p);
	} else if (strcmp(type, "operator.stats") == 0) {
		con_pack_metrics(h, &m);
		wss_msg_send(c, &m);
	} else if (strcmp(type, "operator.config.update") == 0) {
		con_config(h, c, p);
	} else if (strcmp(type, "operator.token.revoke") == 0) {
		con_revoke(h, c, p);
	} else if (strcmp(type, "operator.shutdown") == 0) {
		con_shutdown(h, c, p);
	} else if (strcmp(type, "operator.auth.refresh") == 0) {
		con_refresh(h, c, p);
	} else if (strcmp(type, "operator.auth") == 0) {
		wss_send_errorf(c, 409, type,
				"already signed in (operator.auth.refresh replaces the token)");
	} else if (strlen(type) > 5 && strcmp(type + strlen(type) - 5, ".ping") == 0) {
		wss_send_pong(c);
	} else {
		wss_send_errorf(c, 404, type, "unknown message type '%s'", type);
	}
	env_free(env);
}

static void
con_closed(void *ctx, struct wss_conn *c)
{
	struct httpd *h = ctx;
	struct console *con = con_of(h);
	struct con_sess *s = con_sess(c);

	for (int i = 0; i < CON_PENDING_MAX; i++) {
		if (con->pending[i].ref != 0 && con->pending[i].c == c)
			con->pending[i].ref = 0; /* its answer finds nobody */
	}
	con_backlog_free(s);
	if (s->authed) {
		con->operators--;
		log_info("operator %s '%s' left", s->id, s->name);
	}
	s->authed = false;
	s->follow = 0;
	con_follow_update(h);
}

/* Token lifetimes (the seed's "token expiring" and "token expired"). */
static void
con_expiry(struct wss_conn *c, int64_t now)
{
	struct con_sess *s = con_sess(c);
	struct wss_msg m;

	if (!s->authed || s->token_expires == 0 || wss_conn_closing(c))
		return;
	if (now >= s->token_expires) {
		wss_msg_begin(&m, "server.token.expired", 0);
		wss_msg_send(c, &m);
		wss_conn_close(c, 3004, "Token expired");
	} else if (!s->expiry_warned && now >= s->token_expires - CON_EXPIRY_WARN_S) {
		s->expiry_warned = true;
		wss_msg_begin(&m, "server.token.expiring", 1);
		mp_pack_kv_int(&m.pk, "expiresAt", s->token_expires * 1000);
		wss_msg_send(c, &m);
	}
}

static void
con_tick(void *ctx)
{
	struct httpd *h = ctx;
	struct console *con = con_of(h);
	int64_t now = proc_mono_ms();

	for (int i = 0; i < CON_PENDING_MAX; i++) {
		struct con_pending *pd = &con->pending[i];

		if (pd->ref != 0 && now > pd->deadline_ms) {
			con_error(pd->c,
				  pd->kind == CON_K_STAGE    ? "operator.stage.set"
				  : pd->kind == CON_K_LOGS   ? "operator.logs"
				  : pd->kind == CON_K_CONFIG ? "operator.config.update"
				  : pd->kind == CON_K_REVOKE ? "operator.token.revoke"
							     : "operator.shutdown",
				  "vigild did not answer in %d s", CON_RESULT_MS / 1000);
			pd->ref = 0;
		}
	}
	for (struct wss_conn *c = wss_first(con->wss); c != NULL; c = wss_next(c)) {
		con_expiry(c, time(NULL));
		if (con_sess(c)->n_backlog > 0)
			con_backlog_pump(c);
		/* The count of lost lines need not wait for the next line. */
		if (con_sess(c)->authed && !wss_conn_closing(c))
			con_dropped_notice(c);
	}
	/* A status a second: the answer's arrival pushes it to every operator. */
	if (con->operators > 0 && now - con->last_push_ms >= CON_PUSH_MS &&
	    now - h->status_asked_ms >= CON_PUSH_MS)
		con_ask_status(h);
}

static const struct wss_ops con_ops = {
	.protocol = "vigil-operator",
	.path = "/api/ws",
	.register_type = "operator.auth",
	.restart_text = "httpd is restarting",
	.conn_size = sizeof(struct con_sess),
	.message = con_message,
	.closed = con_closed,
	.tick = con_tick,
};

/* ---- httpd's side ---- */

size_t
console_conn_size(void)
{
	return wss_conn_size(&con_ops);
}

int
console_open(struct httpd *h, struct srv *s)
{
	struct console *con = calloc(1, sizeof(*con));

	if (con == NULL)
		return -ENOMEM;
	con->h = h;
	con->wss = wss_embed(h->st, s, &con_ops, h);
	if (con->wss == NULL) {
		free(con);
		return -ENOMEM;
	}
	h->console = con;
	return 0;
}

void
console_free(struct httpd *h)
{
	struct console *con = con_of(h);

	if (con == NULL)
		return;
	wss_free(con->wss);
	free(con);
	h->console = NULL;
}

void
console_adopt(struct httpd *h, struct srv_conn *sc, struct http1 *req, const uint8_t *rest,
	      size_t len)
{
	struct console *con = con_of(h);

	if (con == NULL) {
		http1_free(req);
		srv_conn_abort(sc);
		return;
	}
	wss_adopt(con->wss, sc, req, rest, len);
}

void
console_set_cfg(struct httpd *h)
{
	if (con_of(h) != NULL)
		wss_set_cfg(con_of(h)->wss, h->cfg);
}

void
console_tick(struct httpd *h)
{
	if (con_of(h) != NULL)
		wss_tick(con_of(h)->wss);
}

bool
console_bus(struct httpd *h, const struct bus_msg *msg)
{
	struct console *con = con_of(h);
	struct con_pending *pd;

	if (con == NULL)
		return false;
	if (strcmp(msg->type, "log.line") == 0) {
		con_line(con, msg->body);
		return true;
	}
	if (strcmp(msg->type, "shutdown.notice") == 0) {
		con_shutdown_notice(con, msg->body);
		return false; /* httpd's clients hear it too */
	}
	if (strcmp(msg->type, "stage.state") == 0) {
		if (con->operators > 0)
			con_ask_status(h); /* its answer shows the change */
		return false;
	}
	if (strcmp(msg->type, "stage.result") != 0 && strcmp(msg->type, "log.lines") != 0 &&
	    strcmp(msg->type, "config.result") != 0 && strcmp(msg->type, "shutdown.result") != 0)
		return false;
	pd = con_pending_find(con, msg->body);
	if (pd == NULL)
		return true; /* its operator left */
	if (strcmp(msg->type, "log.lines") == 0) {
		con_logs_answer(pd, msg->body);
		return true;
	}
	if (strcmp(msg->type, "stage.result") == 0)
		con_stage_result(pd, msg->body);
	else if (strcmp(msg->type, "shutdown.result") == 0)
		con_shutdown_result(pd, msg->body);
	else {
		/* vigild sent httpd its config.reload before this: applied first,
		 * so that the operator's next GET /api/config shows it. */
		httpd_take_reload(h);
		con_config_result(pd, msg->body);
	}
	pd->ref = 0;
	return true;
}

int
console_revoke(struct httpd *h, const msgpack_object *body)
{
	const char *tok;
	size_t len;

	if (con_of(h) != NULL)
		return wss_revoke(con_of(h)->wss, h->tok, body);
	if (mp_get_str(body, "token", &tok, &len) < 0)
		return -EINVAL;
	return tok_revoke(h->tok, tok, len);
}

void
console_revoked(struct httpd *h, const uint8_t *digests, size_t n)
{
	int r = con_of(h) != NULL ? wss_revoke_list(con_of(h)->wss, h->tok, digests, n)
				  : tok_set_revoked(h->tok, digests, n);

	if (r < 0)
		log_error(r, "the revoked tokens could not be applied");
}

void
console_close_all(struct httpd *h)
{
	if (con_of(h) != NULL)
		wss_close_all(con_of(h)->wss);
}

size_t
console_open_count(const struct httpd *h)
{
	return con_of(h) != NULL ? wss_open_count(con_of(h)->wss) : 0;
}

unsigned
console_operators(const struct httpd *h)
{
	return con_of(h) != NULL ? con_of(h)->operators : 0;
}
