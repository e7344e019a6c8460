/* wd_ctl: vigild's control socket, <run_dir>/ctl.sock, for vigilctl.
 *
 * One JSON object per line each way. Requests and answers:
 *   {"cmd":"status"}        {"ok":true, "instance", "pid", "uptimeMs", "stages":[...]}
 *   {"cmd":"start"|"stop"|"restart"|"kill", "stage":NAME, "wait":BOOL}
 *                           NAME: a stage (all its workers), or one worker ("relay/1")
 *                           {"ok":true} once the action is taken; with "wait":true once
 *                           the stage got there: {"ok":true, "stage", "state", "pid"}
 *                           (as stage.result, wd_act.c); "start" without a stage starts
 *                           all that are down
 *   {"cmd":"reload"}        {"ok":true, "config", "applied":[keys], "restartRequired":[keys],
 *                           "warnings":[...]} or {"ok":false, "error":"FILE:L:C: ..."}
 *   {"cmd":"logs", "stage":NAME, "lines":N, "follow":BOOL}
 *                           {"ok":true, "lines":[...]}; with "follow":true, then one
 *                           {"event":"log", "stage", "level", "time", "line"} per new line
 *                           ("dropped":N on the first after lines were dropped)
 *   {"cmd":"shutdown"}      {"ok":true}, then vigild stops every stage and exits
 *   {"cmd":"shutdown", "in":SECONDS}
 *                           {"ok":true, "at":UNIX_MS}: the stages get shutdown.notice now,
 *                           and stop in order at "at" (a second one replaces the time)
 *   {"cmd":"watch"}         {"ok":true}, then one {"event":"stage",...} per change and
 *                           one {"event":"bus",...} per broadcast on the bus
 *   {"cmd":"send", "to":STAGE|"*", "type":T, "body":{...}}
 *                           {"ok":true}: puts a message on the bus as vigild (operators'
 *                           and tests' way to ask a stage what relay would ask)
 *   {"cmd":"config"}        {"ok":true, "config":{effective, secrets "***"},
 *                           "overrides":{the live keys over the file}}
 *   {"cmd":"config.update", "config":{...}}, {"cmd":"config.set", "key":"a.b", "value":YAML}
 *                           {"ok":true, "applied":[keys], "restartRequired":[keys]} or
 *                           {"ok":false, "error":"config.update: KEY: expected ..."}: the
 *                           bus's config.update, one implementation (wd_cfg.c)
 *   {"cmd":"revoke", "token":T}   {"ok":true, "name", "role"}: kept in data_dir, then every
 *                           stage refuses it and closes its connections (3004)
 *   {"cmd":"revoked"}       {"ok":true, "revoked":[{name, role, digest (a prefix), revokedAt}]}
 *   {"cmd":"lift", "name":NAME|DIGEST-PREFIX}   {"ok":true, "lifted":{...}}
 *   {"cmd":"bus", "type":T, "body":{...}}
 *                           {"ok":true}: vigild takes a console request (stage.set,
 *                           logs.request, logs.follow, shutdown.request) as if httpd had
 *                           sent it on the bus, and its answers come back on this
 *                           connection as {"event":"bus", "type", "from", "to", "body"}
 * Writes never block vigild (struct wd_ctl_conn). Runs in vigild only.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "env.h"
#include "log.h"
#include "mp.h"
#include "proc.h"
#include "wd.h"

void
wd_ctl_init(struct wd *wd)
{
	for (int i = 0; i < WD_MAX_CONNS; i++)
		wd->ctl[i] = (struct wd_ctl_conn){ .fd = -1 };
}

static void
wd_ctl_close(struct wd *wd, int slot)
{
	struct wd_ctl_conn *k = &wd->ctl[slot];

	if (k->fd >= 0)
		close(k->fd);
	free(k->out);
	/* The generation goes on: answers still owed to this client go nowhere. */
	*k = (struct wd_ctl_conn){ .fd = -1, .gen = k->gen };
}

/* Sends what the socket takes now; -errno when the client is gone. */
static int
wd_ctl_flush(struct wd_ctl_conn *k)
{
	size_t off = 0;
	int r = 0;

	while (off < k->out_len) {
		ssize_t n =
			send(k->fd, k->out + off, k->out_len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != EAGAIN)
				r = -errno;
			break;
		}
		off += (size_t)n;
	}
	memmove(k->out, k->out + off, k->out_len - off);
	k->out_len -= off;
	return r;
}

void
wd_ctl_free(struct wd *wd)
{
	for (int i = 0; i < WD_MAX_CONNS; i++) {
		/* What fits in the socket now: vigilctl stop's answer. */
		if (wd->ctl[i].fd >= 0 && wd->ctl[i].out_len > 0)
			(void)wd_ctl_flush(&wd->ctl[i]);
		wd_ctl_close(wd, i);
	}
}

/* Appends one line; limit: what may wait in all, this line included. */
static int
wd_ctl_queue(struct wd_ctl_conn *k, json_t *msg, size_t limit)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	size_t len;
	int r = 0;

	if (text == NULL)
		return -ENOMEM;
	len = strlen(text);
	if (k->out_len + len + 1 > limit) {
		r = -ENOBUFS;
		goto out_free;
	}
	if (k->out_len + len + 1 > k->out_cap) {
		size_t cap = k->out_cap > 0 ? k->out_cap : 4096;
		char *out;

		while (cap < k->out_len + len + 1)
			cap *= 2;
		out = realloc(k->out, cap);
		if (out == NULL) {
			r = -ENOMEM;
			goto out_free;
		}
		k->out = out;
		k->out_cap = cap;
	}
	memcpy(k->out + k->out_len, text, len);
	k->out[k->out_len + len] = '\n';
	k->out_len += len + 1;
out_free:
	free(text);
	return r;
}

int
wd_ctl_write(struct wd *wd, int slot, json_t *msg)
{
	struct wd_ctl_conn *k = &wd->ctl[slot];
	int r;

	if (k->fd < 0)
		return -ENOTCONN;
	r = wd_ctl_queue(k, msg, WD_CTL_OUT_MAX);
	if (r == 0)
		r = wd_ctl_flush(k);
	if (r < 0) {
		if (r == -ENOBUFS)
			log_warn(0, "ctl.sock: a client reads nothing (%zu bytes waiting): closed",
				 k->out_len);
		wd_ctl_close(wd, slot);
	}
	return r;
}

int
wd_ctl_offer(struct wd *wd, int slot, json_t *msg)
{
	struct wd_ctl_conn *k = &wd->ctl[slot];

	if (k->fd < 0)
		return -ENOTCONN;
	/* Lines that may be lost leave room for answers and stage events. */
	if (k->out_len > WD_CTL_LOG_MAX || wd_ctl_queue(k, msg, WD_CTL_OUT_MAX) < 0)
		return -EAGAIN;
	if (wd_ctl_flush(k) < 0) {
		wd_ctl_close(wd, slot);
		return -ENOTCONN;
	}
	return 0;
}

int
wd_ctl_bus_event(struct wd *wd, const struct wd_peer *peer, const void *msg, size_t len,
		 bool droppable)
{
	struct bus_msg m;
	json_t *ev;
	int r;

	if (peer->slot < 0 || peer->slot >= WD_MAX_CONNS || wd->ctl[peer->slot].fd < 0 ||
	    wd->ctl[peer->slot].gen != peer->gen)
		return -ENOTCONN;
	if (bus_decode(msg, len, &m) < 0)
		return -EBADMSG;
	ev = json_pack("{s:s, s:s, s:s, s:s, s:o*}", "event", "bus", "type", m.type, "from", m.from,
		       "to", m.to, "body", mp_to_json(m.body));
	bus_msg_release(&m);
	if (ev == NULL)
		return -ENOMEM;
	r = droppable ? wd_ctl_offer(wd, peer->slot, ev) : wd_ctl_write(wd, peer->slot, ev);
	json_decref(ev);
	return r;
}

int
wd_ctl_accept(struct wd *wd)
{
	int fd, slot;

	fd = accept4(wd->ctl_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return -errno;
	for (slot = 0; slot < WD_MAX_CONNS && wd->ctl[slot].fd >= 0; slot++)
		;
	if (slot == WD_MAX_CONNS) {
		close(fd);
		return -EMFILE;
	}
	/* Non-blocking: a vigilctl that stops reading must not stall the supervisor. */
	wd->ctl[slot] = (struct wd_ctl_conn){ .fd = fd, .gen = ++wd->ctl_gen };
	return 0;
}

json_t *
wd_status_json(const struct wd *wd)
{
	json_t *stages = json_array();

	for (unsigned i = 0; i < wd->n_child; i++)
		json_array_append_new(stages, wd_child_json(wd, &wd->child[i]));
	return json_pack("{s:b, s:s, s:i, s:I, s:s, s:s, s:o}", "ok", 1, "instance",
			 wd->cfg->instance, "pid", (int)getpid(), "uptimeMs",
			 (json_int_t)(proc_mono_ms() - wd->started_ms), "version", VIGIL_VERSION,
			 "config", wd->config_path, "stages", stages);
}

static json_t *wd_ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *
wd_ctl_error(const char *fmt, ...)
{
	char text[CFG_ERR_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", text);
}

/* The children the request's stage names (a stage, or one worker of it):
 * 0, or -EINVAL after setting *ret_err. */
static int
wd_ctl_stage(struct wd *wd, json_t *req, unsigned *ret_first, unsigned *ret_n, json_t **ret_err)
{
	const char *name = json_string_value(json_object_get(req, "stage"));

	if (name == NULL) {
		*ret_err = wd_ctl_error("%s", "missing \"stage\"");
		return -EINVAL;
	}
	if (wd_lookup(wd, name, ret_first, ret_n) < 0) {
		*ret_err = wd_ctl_error("unknown stage '%s' (ingest, relay, archive, httpd)", name);
		return -EINVAL;
	}
	return 0;
}

/* The body goes through the envelope codec's JSON reader, so it becomes the
 * same msgpack a stage would have packed. */
int
wd_pack_msg(msgpack_sbuffer *sb, const char *type, const char *to, json_t *body, char *err,
	    size_t errlen)
{
	msgpack_packer pk;
	json_t *env_json;
	struct env *env;
	char *text;
	int r;

	env_json = json_pack("{s:s, s:O?}", "type", type, "payload", body);
	text = env_json != NULL ? json_dumps(env_json, JSON_COMPACT) : NULL;
	json_decref(env_json);
	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = env_decode(text, strlen(text), ENV_JSON, &env, err, errlen);
	free(text);
	if (r < 0)
		return r;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, type, "vigild", to);
	msgpack_pack_object(&pk, *env_payload(env));
	env_free(env);
	return 0;
}

static json_t *
wd_ctl_send(struct wd *wd, json_t *req)
{
	const char *to = json_string_value(json_object_get(req, "to"));
	const char *type = json_string_value(json_object_get(req, "type"));
	json_t *body = json_object_get(req, "body");
	msgpack_sbuffer sb;
	char err[160];
	unsigned first = 0, n = 0, connected = 0;
	int r = 0;

	if (to == NULL || type == NULL || (body != NULL && !json_is_object(body)))
		return wd_ctl_error("send needs \"to\", \"type\" and an object \"body\"");
	if (strcmp(to, "*") == 0)
		n = wd->n_child;
	else if (wd_lookup(wd, to, &first, &n) < 0)
		return wd_ctl_error("unknown stage '%s'", to);
	r = wd_pack_msg(&sb, type, to, body, err, sizeof(err));
	if (r < 0)
		return wd_ctl_error("body: %s", err);
	for (unsigned i = first; i < first + n; i++) {
		if (wd->child[i].bus_fd < 0)
			continue;
		connected++;
		if (bus_send(wd->child[i].bus_fd, sb.data, sb.size) < 0)
			r = -EIO;
	}
	msgpack_sbuffer_destroy(&sb);
	if (strcmp(to, "*") != 0 && connected == 0)
		return wd_ctl_error("%s is not connected to the bus", to);
	return r < 0 ? wd_ctl_error("%s", "bus_send() failed") : json_pack("{s:b}", "ok", 1);
}

/* {"cmd":"logs"}: the last lines of the children [first, first + n) (all of
 * a stage's workers merged in time), and with "follow" every new one after. */
static json_t *
wd_ctl_logs(struct wd *wd, int slot, unsigned first, unsigned n_child, json_t *req)
{
	json_t *lines = json_object_get(req, "lines");
	json_int_t n = json_integer_value(lines);

	if (lines == NULL)
		n = 100;
	else if (!json_is_integer(lines) || n < 0)
		return wd_ctl_error("lines: expected an integer from 0 to %d", WD_LOG_LINES);
	if (n > WD_LOG_LINES)
		n = WD_LOG_LINES;
	if (json_is_true(json_object_get(req, "follow"))) {
		for (unsigned i = first; i < first + n_child; i++)
			wd->ctl[slot].follow |= 1u << i;
	}
	return json_pack("{s:b, s:o}", "ok", 1, "lines",
			 wd_log_tail(wd, first, n_child, (unsigned)n));
}

/* {"cmd":"shutdown"}: now, as `vigilctl stop`; with "in", announced. */
static json_t *
wd_ctl_shutdown(struct wd *wd, json_t *req)
{
	json_t *in = json_object_get(req, "in");
	double s = json_number_value(in);

	if (in == NULL) {
		log_info("shutdown asked over ctl.sock");
		wd->shutdown = true;
		return json_pack("{s:b}", "ok", 1);
	}
	if (!json_is_number(in) || !(s >= 0 && s <= WD_SHUTDOWN_MAX_S))
		return wd_ctl_error("in: expected seconds from 0 to %d", WD_SHUTDOWN_MAX_S);
	if (wd->shutdown)
		return wd_ctl_error("%s", "vigil is shutting down");
	return json_pack("{s:b, s:I}", "ok", 1, "at",
			 (json_int_t)wd_shutdown_schedule(wd, (int64_t)llround(s * 1000)));
}

/* {"cmd":"bus"}: a console request handled as if httpd had sent it. */
static json_t *
wd_ctl_bus(struct wd *wd, int slot, json_t *req)
{
	const char *type = json_string_value(json_object_get(req, "type"));
	json_t *body = json_object_get(req, "body"), *ok, *ans = NULL;
	struct wd_peer peer = { .ctl = true, .slot = slot, .gen = wd->ctl[slot].gen };
	msgpack_sbuffer sb;
	struct bus_msg msg;
	char err[160];
	int r;

	if (type == NULL || (body != NULL && !json_is_object(body)))
		return wd_ctl_error("bus needs \"type\" and an object \"body\"");
	r = wd_pack_msg(&sb, type, "vigild", body, err, sizeof(err));
	if (r < 0)
		return wd_ctl_error("body: %s", err);
	/* msg's strings point into sb. */
	if (bus_decode(sb.data, sb.size, &msg) < 0) {
		msgpack_sbuffer_destroy(&sb);
		return wd_ctl_error("%s", "body: not a bus message");
	}
	/* The acknowledgement first, then the answers in the order they come. */
	ok = json_pack("{s:b}", "ok", 1);
	if (ok != NULL && wd_ctl_write(wd, slot, ok) == 0 && !wd_bus_console(wd, &peer, &msg))
		ans = wd_ctl_error("'%s' is not a request vigild takes from httpd", type);
	json_decref(ok);
	bus_msg_release(&msg);
	msgpack_sbuffer_destroy(&sb);
	return ans;
}

/* The answer to req, or NULL when it was given already or comes later. */
static json_t *
wd_ctl_dispatch(struct wd *wd, int slot, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	struct wd_peer peer = { .ctl = true, .slot = slot, .gen = wd->ctl[slot].gen };
	json_t *err = NULL;
	unsigned first, n;
	char msg[CFG_ERR_MAX];

	if (cmd == NULL)
		return wd_ctl_error("%s", "missing \"cmd\"");
	if (strcmp(cmd, "status") == 0)
		return wd_status_json(wd);
	if (strcmp(cmd, "send") == 0)
		return wd_ctl_send(wd, req);
	if (strcmp(cmd, "config") == 0 || strcmp(cmd, "config.update") == 0 ||
	    strcmp(cmd, "config.set") == 0)
		return wd_cfg_ctl(wd, cmd, req);
	if (strcmp(cmd, "revoke") == 0 || strcmp(cmd, "revoked") == 0 || strcmp(cmd, "lift") == 0)
		return wd_rev_ctl(wd, cmd, req);
	if (strcmp(cmd, "bus") == 0)
		return wd_ctl_bus(wd, slot, req);
	if (strcmp(cmd, "watch") == 0) {
		wd->ctl[slot].watch = true;
		return json_pack("{s:b}", "ok", 1);
	}
	if (strcmp(cmd, "shutdown") == 0)
		return wd_ctl_shutdown(wd, req);
	if (strcmp(cmd, "reload") == 0) {
		json_t *result;

		if (wd_cfg_reload(wd, &result, msg, sizeof(msg)) < 0)
			return wd_ctl_error("%s", msg);
		if (result == NULL || json_object_set_new(result, "ok", json_true()) < 0) {
			json_decref(result);
			return json_pack("{s:b}", "ok",
					 1); /* reloaded; only the details are short */
		}
		return result;
	}
	if (strcmp(cmd, "start") == 0 && json_object_get(req, "stage") == NULL) {
		for (unsigned i = 0; i < wd->n_child; i++)
			wd_start(wd, &wd->child[i]);
		return json_pack("{s:b}", "ok", 1);
	}
	if (strcmp(cmd, "start") == 0 || strcmp(cmd, "stop") == 0 || strcmp(cmd, "restart") == 0 ||
	    strcmp(cmd, "kill") == 0) {
		const char *stage = json_string_value(json_object_get(req, "stage"));

		if (stage == NULL)
			return wd_ctl_error("%s", "missing \"stage\"");
		wd_act_request(wd, &peer, NULL, stage, cmd, false,
			       json_is_true(json_object_get(req, "wait")));
		return NULL;
	}
	if (strcmp(cmd, "logs") != 0)
		return wd_ctl_error("unknown command '%s'", cmd);
	if (wd_ctl_stage(wd, req, &first, &n, &err) < 0)
		return err;
	return wd_ctl_logs(wd, slot, first, n, req);
}

/* Every operator's act is recorded before vigilctl hears it is done. */
static json_t *
wd_ctl_handle(struct wd *wd, int slot, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));

	return wd_audit_ctl(wd, slot, cmd, req, wd_ctl_dispatch(wd, slot, req));
}

void
wd_ctl_service(struct wd *wd, int slot)
{
	struct wd_ctl_conn *k = &wd->ctl[slot];
	char buf[4096];
	json_error_t jerr;
	json_t *req, *ans;
	ssize_t n;

	if (k->out_len > 0 && wd_ctl_flush(k) < 0) {
		wd_ctl_close(wd, slot);
		return;
	}
	/* Requests are one short line; a client sends one and waits for the answer. */
	n = recv(k->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		wd_ctl_close(wd, slot);
		return;
	}
	buf[n] = '\0';
	req = json_loads(buf, JSON_DISABLE_EOF_CHECK, &jerr);
	if (req == NULL || !json_is_object(req))
		ans = wd_ctl_error("bad request: %s", req == NULL ? jerr.text : "not an object");
	else
		ans = wd_ctl_handle(wd, slot, req);
	json_decref(req);
	if (ans != NULL && k->fd >= 0)
		wd_ctl_write(wd, slot, ans);
	json_decref(ans);
}

void
wd_ctl_broadcast(struct wd *wd, json_t *event)
{
	for (int i = 0; i < WD_MAX_CONNS; i++) {
		if (wd->ctl[i].fd >= 0 && wd->ctl[i].watch)
			wd_ctl_write(wd, i, event);
	}
}
