/* wd_bus: vigild's end of the control bus: hello, heartbeats, routing of
 * messages addressed to another stage or to every stage, the operator
 * console's requests (bus.h), and the answers' way back, which never blocks
 * vigild; config.update and token.revoke go on to wd_cfg.c and wd_rev.c.
 * Runs in vigild only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

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

/* A new connection must say hello from the pid vigild started under that
 * name (the stage's, or a worker's). */
void
wd_bus_service_new(struct wd *wd, int slot)
{
	int fd = wd->bus_conn[slot];
	struct wd_child *c = NULL;
	struct bus_msg msg;
	int n;
	int64_t pid = 0;

	n = bus_recv(fd, wd_bus_buf, sizeof(wd_bus_buf));
	if (n == -EAGAIN)
		return;
	wd->bus_conn[slot] = -1;
	if (n <= 0 || bus_decode(wd_bus_buf, (size_t)n, &msg) < 0) {
		close(fd);
		return;
	}
	if (strcmp(msg.type, "hello") == 0)
		c = wd_child_named(wd, msg.from);
	mp_get_int(msg.body, "pid", &pid);
	if (c == NULL || pid != c->pid || pid == 0) {
		log_warn(0,
			 "bus: refused a connection from '%s' (pid %lld): not a stage vigild "
			 "started",
			 msg.from, (long long)pid);
		close(fd);
	} else {
		wd_on_hello(wd, c, fd);
		wd_act_hello(wd, c);
	}
	bus_msg_release(&msg);
}

void
wd_bus_reset(struct wd_child *c)
{
	while (c->out != NULL) {
		struct wd_pkt *p = c->out;

		c->out = p->next;
		free(p);
	}
	c->out_tail = NULL;
	c->out_bytes = 0;
	c->follow = false;
	c->follow_drops = 0;
}

/* Sends the answers waiting for c, as many as the socket takes. */
static void
wd_bus_flush(struct wd_child *c)
{
	while (c->out != NULL && c->bus_fd >= 0) {
		struct wd_pkt *p = c->out;
		int r = bus_send(c->bus_fd, p->data, p->len);

		if (r == -EAGAIN)
			return;
		if (r < 0)
			log_warn(r, "bus: answer to %s lost", c->name);
		c->out = p->next;
		c->out_bytes -= p->len;
		free(p);
	}
	if (c->out == NULL)
		c->out_tail = NULL;
}

static struct wd_child *
wd_peer_child(struct wd *wd, const struct wd_peer *peer)
{
	struct wd_child *c;

	if (peer->ctl || peer->slot < 0 || (unsigned)peer->slot >= wd->n_child)
		return NULL;
	c = &wd->child[peer->slot];
	return c->bus_fd >= 0 && c->bus_gen == peer->gen ? c : NULL;
}

const char *
wd_peer_name(const struct wd *wd, const struct wd_peer *peer)
{
	/* A ctl connection stands in for httpd. */
	if (peer->ctl || peer->slot < 0 || (unsigned)peer->slot >= wd->n_child)
		return "httpd";
	return wd->child[peer->slot].name;
}

int
wd_peer_send(struct wd *wd, const struct wd_peer *peer, const void *msg, size_t len)
{
	struct wd_child *c;
	struct wd_pkt *p;
	int r;

	if (peer->ctl)
		return wd_ctl_bus_event(wd, peer, msg, len, false);
	c = wd_peer_child(wd, peer);
	if (c == NULL)
		return -ENOTCONN; /* the asker restarted: nobody waits for this answer */
	if (c->out == NULL) {
		r = bus_send(c->bus_fd, msg, len);
		if (r != -EAGAIN)
			return r;
	}
	/* The stage reads slower than it asks: the answer waits, up to a bound. */
	if (c->out_bytes + len > WD_OUT_MAX) {
		log_warn(0, "bus: %s reads nothing; an answer is dropped", c->name);
		return -ENOBUFS;
	}
	p = malloc(sizeof(*p) + len);
	if (p == NULL)
		return -ENOMEM;
	p->next = NULL;
	p->len = len;
	memcpy(p->data, msg, len);
	if (c->out_tail != NULL)
		c->out_tail->next = p;
	else
		c->out = p;
	c->out_tail = p;
	c->out_bytes += len;
	return 0;
}

int
wd_bus_send(struct wd *wd, struct wd_child *c, const void *msg, size_t len)
{
	struct wd_peer peer = { .ctl = false, .slot = (int)(c - wd->child), .gen = c->bus_gen };

	return wd_peer_send(wd, &peer, msg, len);
}

int
wd_peer_offer(struct wd *wd, const struct wd_peer *peer, const void *msg, size_t len)
{
	struct wd_child *c;
	int queued;

	if (peer->ctl)
		return wd_ctl_bus_event(wd, peer, msg, len, true);
	c = wd_peer_child(wd, peer);
	if (c == NULL)
		return -ENOTCONN;
	/* Half of the socket's buffer stays for answers, stage states and
	 * status: a flood of lines must not crowd them out. */
	if (c->out != NULL ||
	    (ioctl(c->bus_fd, SIOCOUTQ, &queued) == 0 && queued > c->bus_sndbuf / 2))
		return -EAGAIN;
	return bus_send(c->bus_fd, msg, len);
}

const msgpack_object *
wd_ref(const msgpack_object *body)
{
	static const msgpack_object nil = { .type = MSGPACK_OBJECT_NIL };
	const msgpack_object *ref = mp_map_get(body, "ref");
	msgpack_sbuffer sb;
	msgpack_packer pk;
	bool fits;

	if (ref == NULL)
		return &nil;
	/* Echoed in every answer: a ref of any type, within reason. */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, *ref);
	fits = sb.size <= WD_REF_MAX;
	msgpack_sbuffer_destroy(&sb);
	return fits ? ref : &nil;
}

bool
wd_bus_console(struct wd *wd, const struct wd_peer *peer, const struct bus_msg *msg)
{
	char stage[BUS_NAME_MAX], state[16];

	if (strcmp(msg->type, "stage.set") == 0) {
		/* wd_act_request names what is missing or wrong. */
		if (mp_get_strbuf(msg->body, "stage", stage, sizeof(stage)) < 0)
			stage[0] = '\0';
		if (mp_get_strbuf(msg->body, "state", state, sizeof(state)) < 0)
			state[0] = '\0';
		wd_act_request(wd, peer, wd_ref(msg->body), stage, state, true, true);
	} else if (strcmp(msg->type, "logs.request") == 0) {
		wd_log_request(wd, peer, msg->body);
	} else if (strcmp(msg->type, "logs.follow") == 0) {
		wd_log_follow(wd, peer, msg->body);
	} else if (strcmp(msg->type, "shutdown.request") == 0) {
		wd_shutdown_request(wd, peer, msg->body);
	} else {
		return false;
	}
	return true;
}

static void
wd_bus_route(struct wd *wd, struct wd_child *from, const struct bus_msg *msg, size_t len)
{
	unsigned first, n;

	if (strcmp(msg->to, "*") == 0) {
		/* A token never leaves vigild towards a watcher. */
		json_t *body = strcmp(msg->type, "token.revoke") == 0
				       ? json_pack("{s:s}", "token", "***")
				       : mp_to_json(msg->body);
		json_t *ev = json_pack("{s:s, s:s, s:s, s:o*}", "event", "bus", "type", msg->type,
				       "from", msg->from, "body", body);

		if (strcmp(msg->type, "audit.ready") == 0)
			wd_audit_on_bus(wd, msg);
		/* Operators (vigilctl watch) and tests see every broadcast as it passes. */
		if (ev != NULL)
			wd_ctl_broadcast(wd, ev);
		json_decref(ev);
		for (unsigned i = 0; i < wd->n_child; i++) {
			if (&wd->child[i] != from && wd->child[i].bus_fd >= 0)
				bus_send(wd->child[i].bus_fd, wd_bus_buf, len);
		}
		return;
	}
	/* To a stage: to every worker of it; to "relay/1": to that one. */
	if (wd_lookup(wd, msg->to, &first, &n) < 0) {
		log_warn(0, "bus: %s sent '%s' to unknown '%s'", msg->from, msg->type, msg->to);
		return;
	}
	/* A stage that is down misses the message: bus messages are state, not a
	 * queue. The sender gets it too when it is to its own name (archive's
	 * own audit records go to the writer, itself, this way). */
	for (unsigned i = first; i < first + n; i++) {
		if (wd->child[i].bus_fd >= 0)
			bus_send(wd->child[i].bus_fd, wd_bus_buf, len);
	}
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

	r = st != NULL ? wd_pack_msg(&sb, "status", c->name, st, err, sizeof(err)) : -ENOMEM;
	json_decref(st);
	if (r < 0) {
		log_warn(r, "bus: status for %s not packed", c->name);
		return;
	}
	/* An answer: queued when the socket is full (of log lines, say). */
	r = wd_bus_send(wd, c, sb.data, sb.size);
	if (r < 0)
		log_warn(r, "bus: status for %s not sent", c->name);
	msgpack_sbuffer_destroy(&sb);
}

void
wd_bus_service(struct wd *wd, struct wd_child *c)
{
	struct wd_peer peer = { .ctl = false, .slot = (int)(c - wd->child), .gen = c->bus_gen };
	struct bus_msg msg;
	int64_t load;
	int n;

	wd_bus_flush(c);
	while (c->bus_fd >= 0) {
		n = bus_recv(c->bus_fd, wd_bus_buf, sizeof(wd_bus_buf));
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			close(c->bus_fd);
			c->bus_fd = -1;
			wd_bus_reset(c);
			return;
		}
		if (bus_decode(wd_bus_buf, (size_t)n, &msg) < 0) {
			log_warn(0, "bus: malformed message from %s ignored", c->name);
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
		else if (strcmp(msg.type, "load") == 0)
			wd_on_load(wd, c,
				   mp_get_int(msg.body, "connections", &load) == 0 ? load : -1);
		else if (strcmp(msg.type, "status.request") == 0)
			wd_bus_status(wd, c);
		else if (strcmp(msg.type, "config.update") == 0)
			wd_cfg_on_bus(wd, c, &msg);
		else if (strcmp(msg.type, "audit.ack") == 0)
			wd_audit_on_bus(wd, &msg);
		else
			wd_bus_console(wd, &peer, &msg);
		bus_msg_release(&msg);
	}
}
