/* bus: msgpack codec and SOCK_SEQPACKET helpers for the control bus. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus.h"
#include "mp.h"

static const char *const bus_stage_names[BUS_N_STAGES] = {
	[BUS_INGEST] = "ingest",
	[BUS_RELAY] = "relay",
	[BUS_ARCHIVE] = "archive",
	[BUS_HTTPD] = "httpd",
};

const char *
bus_stage_name(enum bus_stage stage)
{
	if ((unsigned)stage >= BUS_N_STAGES)
		return "?";
	return bus_stage_names[stage];
}

const char *
bus_state_public(const char *state)
{
	if (strcmp(state, "running") == 0 || strcmp(state, "starting") == 0 ||
	    strcmp(state, "stopping") == 0)
		return state;
	return "offline";
}

int
bus_stage_parse(const char *name)
{
	for (int i = 0; i < BUS_N_STAGES; i++) {
		if (strcmp(name, bus_stage_names[i]) == 0)
			return i;
	}
	return -EINVAL;
}

int
bus_name_parse(const char *name, int *ret_worker)
{
	const char *slash = strchr(name, '/');
	char stage[BUS_NAME_MAX];
	int which;

	*ret_worker = -1;
	if (slash == NULL)
		return bus_stage_parse(name);
	/* "relay/1": one digit below BUS_WORKERS_MAX, nothing after it. */
	if ((size_t)(slash - name) >= sizeof(stage) || slash[1] < '0' ||
	    slash[1] >= '0' + BUS_WORKERS_MAX || slash[2] != '\0')
		return -EINVAL;
	memcpy(stage, name, (size_t)(slash - name));
	stage[slash - name] = '\0';
	which = bus_stage_parse(stage);
	if (which < 0)
		return which;
	*ret_worker = slash[1] - '0';
	return which;
}

int
bus_decode(const void *buf, size_t len, struct bus_msg *ret_msg)
{
	const msgpack_object *root, *body;
	struct bus_msg msg;
	int r;

	memset(&msg, 0, sizeof(msg));
	msgpack_unpacked_init(&msg.unp);
	/* Checked before unpacking: a hostile count must not make msgpack-c allocate. */
	if (mp_unpack(&msg.unp, buf, len, NULL) < 0)
		goto err_bad;
	root = &msg.unp.data;
	if (root->type != MSGPACK_OBJECT_MAP)
		goto err_bad;
	if (mp_get_strbuf(root, "type", msg.type, sizeof(msg.type)) < 0 || msg.type[0] == '\0')
		goto err_bad;
	if (mp_get_strbuf(root, "from", msg.from, sizeof(msg.from)) < 0)
		goto err_bad;
	r = mp_get_strbuf(root, "to", msg.to, sizeof(msg.to));
	if (r < 0 && r != -ENOENT)
		goto err_bad;
	if (mp_get_map(root, "body", &body) < 0)
		goto err_bad;
	msg.body = body;
	*ret_msg = msg;
	return 0;

err_bad:
	msgpack_unpacked_destroy(&msg.unp);
	return -EBADMSG;
}

void
bus_msg_release(struct bus_msg *msg)
{
	msgpack_unpacked_destroy(&msg->unp);
	msg->body = NULL;
}

void
bus_pack_begin(msgpack_packer *pk, const char *type, const char *from, const char *to)
{
	msgpack_pack_map(pk, to != NULL ? 4 : 3);
	mp_pack_kv_str(pk, "type", type);
	mp_pack_kv_str(pk, "from", from);
	if (to != NULL)
		mp_pack_kv_str(pk, "to", to);
	mp_pack_str(pk, "body");
}

static int
bus_addr(const char *path, struct sockaddr_un *ret_addr)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	*ret_addr = addr;
	return 0;
}

int
bus_listen(const char *path)
{
	struct sockaddr_un addr;
	int fd, r;

	r = bus_addr(path, &addr);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A socket file left by a crashed vigild: the instance lock is held, so it is stale. */
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
		r = -errno;
		goto err_close;
	}
	return fd;

err_close:
	close(fd);
	return r;
}

int
bus_connect(const char *path)
{
	struct sockaddr_un addr;
	int fd, r;

	r = bus_addr(path, &addr);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Connect blocking (local, immediate), then switch to non-blocking. */
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		goto err_close;
	}
	return fd;

err_close:
	close(fd);
	return r;
}

int
bus_send(int fd, const void *buf, size_t len)
{
	ssize_t n;

	if (len > BUS_MSG_MAX)
		return -EMSGSIZE;
	do
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return 0;
}

int
bus_recv(int fd, void *buf, size_t size)
{
	ssize_t n;

	do
		n = recv(fd, buf, size, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return (int)n;
}
