/* wd_audit: what operators do from the server's shell (vigilctl) goes into
 * the audit log (PROTOCOL.md section 9), as the console's actions do from
 * httpd. vigild keeps its own outbox (common/audit.h) towards archive; an
 * action's answer goes back to vigilctl once its record is durable, or after
 * WD_AUDIT_WAIT_MS (archive may be the stage the operator is restarting, and
 * an operator must always be able to act). The actor is the Unix user on the
 * other end of the control socket; remote is "local". */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit.h"
#include "log.h"
#include "mp.h"
#include "proc.h"
#include "wd.h"

#define WD_AUDIT_WAIT_MS 5000

/* An answer held until its record is durable. */
struct wd_audit_hold {
	struct wd *wd;
	int slot;
	unsigned gen;
	json_t *ans;
};

static int
wd_audit_send(void *ctx, const void *body, size_t len)
{
	struct wd *wd = ctx;
	struct wd_child *c = &wd->child[wd->first[BUS_ARCHIVE]];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	if (wd->n_child == 0 || c->bus_fd < 0)
		return -ENOTCONN;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "audit.append", "vigild", "archive");
	msgpack_sbuffer_write(&sb, body, len);
	r = bus_send(c->bus_fd, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

int
wd_audit_init(struct wd *wd)
{
	wd->audit = audit_new("vigild", wd_audit_send, wd);
	return wd->audit != NULL ? 0 : -ENOMEM;
}

void
wd_audit_free(struct wd *wd)
{
	audit_free(wd->audit);
	wd->audit = NULL;
}

bool
wd_audit_drained(struct wd *wd)
{
	int64_t now = proc_mono_ms();

	if (wd->audit == NULL || audit_idle(wd->audit))
		return true;
	if (wd->audit_drain_ms == 0)
		wd->audit_drain_ms = now;
	return now - wd->audit_drain_ms >= WD_AUDIT_WAIT_MS;
}

void
wd_audit_on_bus(struct wd *wd, const struct bus_msg *msg)
{
	if (wd->audit != NULL)
		audit_on_msg(wd->audit, msg);
}

void
wd_audit_tick(struct wd *wd)
{
	if (wd->audit != NULL)
		audit_tick(wd->audit);
}

/* The Unix user of the vigilctl on the other end. */
static void
wd_audit_user(int fd, char *out, size_t size)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		snprintf(out, size, "unknown");
		return;
	}
	if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(out, size, "%s", pw.pw_name);
	else
		snprintf(out, size, "uid %u", (unsigned)cred.uid);
}

/* The action and its fields for a ctl request that is an operator's act;
 * NULL for the ones that only look (status, logs, config, revoked, watch). */
static json_t *
wd_audit_fields(const char *cmd, json_t *req, const char **ret_action)
{
	const char *type = json_string_value(json_object_get(req, "type"));
	json_t *body = json_object_get(req, "body");

	if (strcmp(cmd, "start") == 0 || strcmp(cmd, "stop") == 0 || strcmp(cmd, "restart") == 0 ||
	    strcmp(cmd, "kill") == 0) {
		*ret_action = "stage.set";
		return json_pack("{s:O?, s:s}", "stage", json_object_get(req, "stage"), "state",
				 cmd);
	}
	if (strcmp(cmd, "reload") == 0) {
		*ret_action = "config.reload";
		return json_object();
	}
	if (strcmp(cmd, "config.update") == 0) {
		*ret_action = "config.update";
		return json_pack("{s:O?}", "config", json_object_get(req, "config"));
	}
	if (strcmp(cmd, "config.set") == 0) {
		const char *key = json_string_value(json_object_get(req, "key"));

		*ret_action = "config.update";
		/* auth.tokens' value is YAML text with the secrets in it. */
		if (key != NULL && strncmp(key, "auth.tokens", 11) == 0)
			return json_pack("{s:s, s:s}", "key", key, "value", "***");
		return json_pack("{s:O?, s:O?}", "key", json_object_get(req, "key"), "value",
				 json_object_get(req, "value"));
	}
	if (strcmp(cmd, "revoke") == 0) {
		*ret_action = "token.revoke";
		return json_pack("{s:s}", "token", "***");
	}
	if (strcmp(cmd, "lift") == 0) {
		*ret_action = "token.lift";
		return json_pack("{s:O?}", "name", json_object_get(req, "name"));
	}
	if (strcmp(cmd, "shutdown") == 0) {
		*ret_action = "shutdown";
		return json_pack("{s:O?}", "in", json_object_get(req, "in"));
	}
	if (strcmp(cmd, "send") == 0) {
		/* Anything at all can be put on the bus: the body is not kept
		 * (it may carry a token), what it was and where it went is. */
		*ret_action = "bus.send";
		return json_pack("{s:O?, s:s?}", "to", json_object_get(req, "to"), "type", type);
	}
	if (strcmp(cmd, "bus") == 0 && type != NULL && strcmp(type, "stage.set") == 0) {
		*ret_action = "stage.set";
		return json_pack("{s:O?, s:O?}", "stage", json_object_get(body, "stage"), "state",
				 json_object_get(body, "state"));
	}
	if (strcmp(cmd, "bus") == 0 && type != NULL && strcmp(type, "shutdown.request") == 0) {
		*ret_action = "shutdown";
		return json_pack("{s:O?}", "in", json_object_get(body, "in"));
	}
	return NULL;
}

static void
wd_audit_release(void *ctx, int status)
{
	struct wd_audit_hold *h = ctx;
	struct wd *wd = h->wd;

	if (status < 0)
		log_warn(status, "audit: a vigilctl action's record is not on disk yet; "
				 "answering anyway");
	if (wd->ctl[h->slot].fd >= 0 && wd->ctl[h->slot].gen == h->gen)
		wd_ctl_write(wd, h->slot, h->ans);
	json_decref(h->ans);
	free(h);
}

json_t *
wd_audit_ctl(struct wd *wd, int slot, const char *cmd, json_t *req, json_t *ans)
{
	const char *action = NULL, *key, *error;
	struct wd_audit_hold *h;
	json_t *fields, *rec, *v;
	char user[64];

	fields = cmd != NULL ? wd_audit_fields(cmd, req, &action) : NULL;
	if (fields == NULL)
		return ans;
	audit_mask(fields);
	wd_audit_user(wd->ctl[slot].fd, user, sizeof(user));
	rec = audit_record_as(action, user, "operator", "local");
	if (rec == NULL) {
		json_decref(fields);
		return ans;
	}
	json_object_foreach(fields, key, v) json_object_set(rec, key, v);
	json_decref(fields);
	/* What came of it, when the answer says so now. */
	if (ans != NULL && json_is_false(json_object_get(ans, "ok"))) {
		error = json_string_value(json_object_get(ans, "error"));
		json_object_set_new(rec, "result", json_string(error != NULL ? error : "error"));
	} else if (ans != NULL) {
		json_object_set_new(rec, "result", json_string("ok"));
		if (strcmp(action, "token.revoke") == 0)
			json_object_set(rec, "name", json_object_get(ans, "name"));
	}
	h = ans != NULL ? malloc(sizeof(*h)) : NULL;
	if (h == NULL) {
		audit_emit(wd->audit, rec, 0, NULL, NULL);
		return ans;
	}
	*h = (struct wd_audit_hold){ .wd = wd, .slot = slot, .gen = wd->ctl[slot].gen, .ans = ans };
	audit_emit(wd->audit, rec, WD_AUDIT_WAIT_MS, wd_audit_release, h);
	return NULL;
}
