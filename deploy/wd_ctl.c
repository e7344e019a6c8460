/* wd_ctl: vigild's control socket, <run_dir>/ctl.sock, for vigilctl.
 *
 * One JSON object per line each way. Requests and answers:
 *   {"cmd":"status"}        {"ok":true, "instance", "pid", "uptimeMs", "stages":[...]}
 *   {"cmd":"start"|"stop"|"restart"|"kill", "stage":NAME}
 *                           {"ok":true}; "start" without a stage starts all that are down
 *   {"cmd":"reload"}        {"ok":true} or {"ok":false, "error":"FILE:L:C: ..."}
 *   {"cmd":"logs", "stage":NAME, "lines":N}
 *                           {"ok":true, "lines":[...]}
 *   {"cmd":"shutdown"}      {"ok":true}, then vigild stops every stage and exits
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
 * Runs in vigild only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "env.h"
#include "log.h"
#include "proc.h"
#include "wd.h"

static void
wd_ctl_close(struct wd *wd, int slot)
{
	close(wd->ctl_conn[slot]);
	wd->ctl_conn[slot] = -1;
	wd->ctl_watch[slot] = false;
}

static int
wd_ctl_write(int fd, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	size_t len, off = 0;
	int r = 0;

	if (text == NULL)
		return -ENOMEM;
	len = strlen(text);
	text[len++] = '\n'; /* json_dumps leaves room: the NUL becomes the newline */
	while (off < len) {
		ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		off += (size_t)n;
	}
	free(text);
	return r;
}

int
wd_ctl_accept(struct wd *wd)
{
	struct timeval tv = { .tv_sec = 2 };
	int fd, slot;

	fd = accept4(wd->ctl_listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (slot = 0; slot < WD_MAX_CONNS && wd->ctl_conn[slot] >= 0; slot++)
		;
	if (slot == WD_MAX_CONNS) {
		close(fd);
		return -EMFILE;
	}
	/* A vigilctl that stops reading must not stall the supervisor. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	wd->ctl_conn[slot] = fd;
	wd->ctl_watch[slot] = false;
	return 0;
}

json_t *
wd_status_json(const struct wd *wd)
{
	json_t *stages = json_array();

	for (int i = 0; i < BUS_N_STAGES; i++)
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

/* The stage a request names, or NULL after setting *ret_err. */
static struct wd_child *
wd_ctl_stage(struct wd *wd, json_t *req, json_t **ret_err)
{
	const char *name = json_string_value(json_object_get(req, "stage"));
	int which;

	if (name == NULL) {
		*ret_err = wd_ctl_error("%s", "missing \"stage\"");
		return NULL;
	}
	which = bus_stage_parse(name);
	if (which < 0) {
		*ret_err = wd_ctl_error("unknown stage '%s' (ingest, relay, archive, httpd)", name);
		return NULL;
	}
	return &wd->child[which];
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
	int target, r = 0;

	if (to == NULL || type == NULL || (body != NULL && !json_is_object(body)))
		return wd_ctl_error("send needs \"to\", \"type\" and an object \"body\"");
	target = strcmp(to, "*") == 0 ? -1 : bus_stage_parse(to);
	if (target < -1)
		return wd_ctl_error("unknown stage '%s'", to);
	r = wd_pack_msg(&sb, type, to, body, err, sizeof(err));
	if (r < 0)
		return wd_ctl_error("body: %s", err);
	for (int i = 0; i < BUS_N_STAGES; i++) {
		if ((target == -1 || target == i) && wd->child[i].bus_fd >= 0 &&
		    bus_send(wd->child[i].bus_fd, sb.data, sb.size) < 0)
			r = -EIO;
	}
	msgpack_sbuffer_destroy(&sb);
	if (target >= 0 && wd->child[target].bus_fd < 0)
		return wd_ctl_error("%s is not connected to the bus", to);
	return r < 0 ? wd_ctl_error("%s", "bus_send() failed") : json_pack("{s:b}", "ok", 1);
}

static json_t *
wd_ctl_handle(struct wd *wd, int slot, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	json_t *err = NULL;
	struct wd_child *c;
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
	if (strcmp(cmd, "watch") == 0) {
		wd->ctl_watch[slot] = true;
		return json_pack("{s:b}", "ok", 1);
	}
	if (strcmp(cmd, "shutdown") == 0) {
		log_info("shutdown asked over ctl.sock");
		wd->shutdown = true;
		return json_pack("{s:b}", "ok", 1);
	}
	if (strcmp(cmd, "reload") == 0) {
		if (vigild_reload(wd, msg, sizeof(msg)) < 0)
			return wd_ctl_error("%s", msg);
		return json_pack("{s:b}", "ok", 1);
	}
	if (strcmp(cmd, "start") == 0 && json_object_get(req, "stage") == NULL) {
		for (int i = 0; i < BUS_N_STAGES; i++)
			wd_start(wd, &wd->child[i]);
		return json_pack("{s:b}", "ok", 1);
	}
	c = wd_ctl_stage(wd, req, &err);
	if (c == NULL)
		return err;
	if (strcmp(cmd, "start") == 0) {
		if (wd_start(wd, c) < 0)
			return wd_ctl_error("%s is already running", bus_stage_name(c->which));
	} else if (strcmp(cmd, "stop") == 0) {
		wd_stop(wd, c, false);
	} else if (strcmp(cmd, "restart") == 0) {
		wd_stop(wd, c, true);
	} else if (strcmp(cmd, "kill") == 0) {
		wd_kill(wd, c);
	} else if (strcmp(cmd, "logs") == 0) {
		json_int_t n = json_integer_value(json_object_get(req, "lines"));

		if (n <= 0 || n > WD_LOG_LINES)
			n = json_object_get(req, "lines") == NULL ? 100 : WD_LOG_LINES;
		return json_pack("{s:b, s:o}", "ok", 1, "lines", wd_log_tail(c, (unsigned)n));
	} else {
		return wd_ctl_error("unknown command '%s'", cmd);
	}
	return json_pack("{s:b}", "ok", 1);
}

void
wd_ctl_service(struct wd *wd, int slot)
{
	char buf[4096];
	json_error_t jerr;
	json_t *req, *ans;
	ssize_t n;

	/* Requests are one short line; a client sends one and waits for the answer. */
	n = recv(wd->ctl_conn[slot], buf, sizeof(buf) - 1, MSG_DONTWAIT);
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
	if (ans == NULL || wd_ctl_write(wd->ctl_conn[slot], ans) < 0)
		wd_ctl_close(wd, slot);
	json_decref(ans);
}

void
wd_ctl_broadcast(struct wd *wd, json_t *event)
{
	for (int i = 0; i < WD_MAX_CONNS; i++) {
		if (wd->ctl_conn[i] >= 0 && wd->ctl_watch[i] &&
		    wd_ctl_write(wd->ctl_conn[i], event) < 0)
			wd_ctl_close(wd, i);
	}
}
