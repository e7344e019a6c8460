/* wd_bus: vigild's end of the control bus: hello, heartbeats, and routing of
 * messages addressed to another stage or to every stage; config.update and
 * token.revoke go on to wd_cfg.c and wd_rev.c. Runs in vigild only. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "mp.h"
#include "wd.h"

static char wd_bus_buf[BUS_MSG_MAX];

int
wd_bus_accept(struct wd *wd)
{
	int fd, slot;

	fd = accept4(wd->bus_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return -errno;
	for (slot = 0; slot < WD_MAX_CONNS && wd->bus_conn[slot] >= 0; slot++)
		;
	if (slot == WD_MAX_CONNS) {
		close(fd);
		return -EMFILE;
	}
	wd->bus_conn[slot] = fd;
	return 0;
}

/* A new connection must say hello from the pid vigild started for that stage. */
void
wd_bus_service_new(struct wd *wd, int slot)
{
	int fd = wd->bus_conn[slot];
	struct bus_msg msg;
	int n, which;
	int64_t pid = 0;

	n = bus_recv(fd, wd_bus_buf, sizeof(wd_bus_buf));
	if (n == -EAGAIN)
		return;
	wd->bus_conn[slot] = -1;
	if (n <= 0 || bus_decode(wd_bus_buf, (size_t)n, &msg) < 0) {
		close(fd);
		return;
	}
	which = strcmp(msg.type, "hello") == 0 ? bus_stage_parse(msg.from) : -EINVAL;
	mp_get_int(msg.body, "pid", &pid);
	if (which < 0 || pid != wd->child[which].pid || pid == 0) {
		log_warn(0,
			 "bus: refused a connection from '%s' (pid %lld): not a stage vigild "
			 "started",
			 msg.from, (long long)pid);
		close(fd);
	} else {
		wd_on_hello(wd, &wd->child[which], fd);
	}
	bus_msg_release(&msg);
}

static void
wd_bus_route(struct wd *wd, struct wd_child *from, const struct bus_msg *msg, size_t len)
{
	int to;

	if (strcmp(msg->to, "*") == 0) {
		/* A token never leaves vigild towards a watcher. */
		json_t *body = strcmp(msg->type, "token.revoke") == 0
				       ? json_pack("{s:s}", "token", "***")
				       : mp_to_json(msg->body);
		json_t *ev = json_pack("{s:s, s:s, s:s, s:o*}", "event", "bus", "type", msg->type,
				       "from", msg->from, "body", body);

		/* Operators (vigilctl watch) and tests see every broadcast as it passes. */
		if (ev != NULL)
			wd_ctl_broadcast(wd, ev);
		json_decref(ev);
		for (int i = 0; i < BUS_N_STAGES; i++) {
			if (&wd->child[i] != from && wd->child[i].bus_fd >= 0)
				bus_send(wd->child[i].bus_fd, wd_bus_buf, len);
		}
		return;
	}
	to = bus_stage_parse(msg->to);
	if (to < 0) {
		log_warn(0, "bus: %s sent '%s' to unknown '%s'", msg->from, msg->type, msg->to);
		return;
	}
	/* A stage that is down misses the message: bus messages are state, not a queue. */
	if (wd->child[to].bus_fd >= 0)
		bus_send(wd->child[to].bus_fd, wd_bus_buf, len);
}

/* "status.request" from a stage (httpd's /health, /metrics, /api/status): the
 * answer "status" carries the same body as vigilctl's status. */
static void
wd_bus_status(struct wd *wd, struct wd_child *c)
{
	json_t *st = wd_status_json(wd);
	msgpack_sbuffer sb;
	char err[160];
	int r;

	r = st != NULL ? wd_pack_msg(&sb, "status", bus_stage_name(c->which), st, err, sizeof(err))
		       : -ENOMEM;
	json_decref(st);
	if (r < 0) {
		log_warn(r, "bus: status for %s not packed", bus_stage_name(c->which));
		return;
	}
	r = bus_send(c->bus_fd, sb.data, sb.size);
	if (r < 0)
		log_warn(r, "bus: status for %s not sent", bus_stage_name(c->which));
	msgpack_sbuffer_destroy(&sb);
}

void
wd_bus_service(struct wd *wd, struct wd_child *c)
{
	struct bus_msg msg;
	int n;

	while (c->bus_fd >= 0) {
		n = bus_recv(c->bus_fd, wd_bus_buf, sizeof(wd_bus_buf));
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			close(c->bus_fd);
			c->bus_fd = -1;
			return;
		}
		if (bus_decode(wd_bus_buf, (size_t)n, &msg) < 0) {
			log_warn(0, "bus: malformed message from %s ignored",
				 bus_stage_name(c->which));
			continue;
		}
		/* A revocation is on disk before the bus carries it on to the stages. */
		if (strcmp(msg.type, "token.revoke") == 0 &&
		    (strcmp(msg.to, "*") == 0 || strcmp(msg.to, "vigild") == 0))
			wd_rev_from_bus(wd, &msg);
		if (msg.to[0] != '\0' && strcmp(msg.to, "vigild") != 0)
			wd_bus_route(wd, c, &msg, (size_t)n);
		else if (strcmp(msg.type, "heartbeat") == 0)
			wd_on_heartbeat(wd, c, mp_to_json(msg.body));
		else if (strcmp(msg.type, "status.request") == 0)
			wd_bus_status(wd, c);
		else if (strcmp(msg.type, "config.update") == 0)
			wd_cfg_on_bus(wd, c, &msg);
		bus_msg_release(&msg);
	}
}
