/* vigild_setup: what vigild does before its loop and after it: find the
 * stage programs, take the instance lock, open the listening sockets, create
 * the ring, bus.sock and ctl.sock, detach, write the pid file; and undo it.
 * vigild.c's main sequences these. Runs in vigild only. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "ring.h"
#include "vigild.h"

/* Programs live beside vigild when installed, in build/<folder>/ in the build tree. */
int
vigild_find_stages(struct wd *wd)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n < 0)
		return -errno;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	*slash = '\0';
	for (int i = 0; i < BUS_N_STAGES; i++) {
		const char *name = bus_stage_name(i);
		char *path = wd->stage_path[i];
		const char *dir = getenv("VIGIL_STAGE_DIR");

		int n1 = snprintf(path, sizeof(wd->stage_path[i]), "%s/vigil-%s",
				  dir != NULL ? dir : exe, name);

		if (n1 > 0 && (size_t)n1 < sizeof(wd->stage_path[i]) && access(path, X_OK) == 0)
			continue;
		n1 = snprintf(path, sizeof(wd->stage_path[i]), "%s/../%s/vigil-%s", exe, name,
			      name);
		if (n1 < 0 || (size_t)n1 >= sizeof(wd->stage_path[i]) || access(path, X_OK) != 0) {
			fprintf(stderr, "vigild: vigil-%s not found beside %s\n", name, exe);
			return -ENOENT;
		}
	}
	return 0;
}

/* The instance lock: an abstract Unix socket named after the instance, so it
 * vanishes with the process and leaves no file behind. A second vigild learns
 * the holder's pid from SO_PEERCRED. */
int
vigild_lock(const char *instance)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	socklen_t len;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int fd, probe;

	snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "vigil-%s.lock", instance);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(addr.sun_path + 1));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, len) == 0 && listen(fd, 4) == 0)
		return fd;
	close(fd);
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, len) == 0 &&
	    getsockopt(probe, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
		fprintf(stderr,
			"vigild: instance '%s' is already running (vigild pid %d); "
			"not starting a second one\n",
			instance, (int)cred.pid);
	else
		fprintf(stderr,
			"vigild: instance '%s' is already running; "
			"not starting a second one\n",
			instance);
	if (probe >= 0)
		close(probe);
	return -EADDRINUSE;
}

int
vigild_open_listeners(struct wd *wd)
{
	const struct cfg_listen *addr[BUS_N_STAGES] = {
		[BUS_INGEST] = &wd->cfg->listen_ingest,
		[BUS_RELAY] = &wd->cfg->listen_relay,
		[BUS_HTTPD] = &wd->cfg->listen_http,
	};
	static const char *const key[BUS_N_STAGES] = {
		[BUS_INGEST] = "listen.ingest",
		[BUS_RELAY] = "listen.relay",
		[BUS_HTTPD] = "listen.http",
	};

	unsigned workers[BUS_N_STAGES] = { 1, 1, 1, 1 };

	/* Every relay worker accepts on the one relay socket (docs/server.md). */
	workers[BUS_RELAY] = cfg_relay_workers(wd->cfg);

	for (int i = 0; i < BUS_N_STAGES; i++)
		wd->listen_fd[i] = -1;
	for (int i = 0; i < BUS_N_STAGES; i++) {
		int fd = -1;

		if (addr[i] != NULL) {
			fd = net_listen(addr[i]);
			if (fd < 0) {
				fprintf(stderr, "vigild: cannot listen on %s:%u (%s): %s\n",
					addr[i]->host, addr[i]->port, key[i], strerror(-fd));
				return fd;
			}
			net_local_name(fd, wd->listen_name[i], sizeof(wd->listen_name[i]), NULL);
		}
		wd->listen_fd[i] = fd;
	}
	wd_init_children(wd, workers);
	return 0;
}

int
vigild_create_ring(struct wd *wd)
{
	struct ring_params p = {
		.data_size = wd->cfg->ring_size,
		.n_sentinels = (uint32_t)wd->cfg->max_sentinels,
		.max_segment_bytes = (uint32_t)wd->cfg->max_message_bytes,
	};
	int r;

	snprintf(wd->ring_name, sizeof(wd->ring_name), "/vigil-%s", wd->cfg->instance);
	wd->ring_sentinels = wd->cfg->max_sentinels;
	/* We hold the instance lock: a ring left behind is from a vigild that died. */
	ring_unlink(wd->ring_name);
	r = ring_create(wd->ring_name, &p);
	if (r < 0)
		fprintf(stderr, "vigild: ring_create(%s, %llu bytes) failed: %s\n", wd->ring_name,
			(unsigned long long)p.data_size, strerror(-r));
	return r;
}

/* "http://127.0.0.1:8080/" for a printable bound address; wildcards become loopback. */
static void
vigild_url(const char *name, const char *scheme, const char *path, char *buf, size_t size)
{
	const char *colon = strrchr(name, ':');

	if (strncmp(name, "0.0.0.0:", 8) == 0 || strncmp(name, "[::]:", 5) == 0)
		snprintf(buf, size, "%s://127.0.0.1%s%s", scheme, colon, path);
	else
		snprintf(buf, size, "%s://%s%s", scheme, name, path);
}

size_t
vigild_banner(const struct wd *wd, bool up, char *buf, size_t size)
{
	char ingest[128], relay[128], http[128];
	size_t len;
	int n;

	vigild_url(wd->listen_name[BUS_INGEST], "ws", "/sentinel", ingest, sizeof(ingest));
	vigild_url(wd->listen_name[BUS_RELAY], "ws", "/proctor", relay, sizeof(relay));
	vigild_url(wd->listen_name[BUS_HTTPD], "http", "/", http, sizeof(http));
	/* getpid(): this is the process that stays, whether or not it detached. */
	if (up)
		n = snprintf(buf, size,
			     "vigil '%s' is up (vigild pid %d)\n"
			     "  sentinels connect to  %s\n"
			     "  proctors connect to   %s\n"
			     "  web app and HTTP API  %s\n"
			     "  stages:",
			     wd->cfg->instance, (int)getpid(), ingest, relay, http);
	else
		n = snprintf(buf, size, "vigil '%s' (vigild pid %d): not every stage came up:",
			     wd->cfg->instance, (int)getpid());
	len = n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
	for (unsigned i = 0; i < wd->n_child && len < size; i++) {
		const struct wd_child *c = &wd->child[i];
		const char *sep = i + 1 < wd->n_child ? "," : "\n";

		if (c->state == WD_RUNNING)
			n = snprintf(buf + len, size - len, " %s %d%s", c->name, (int)c->pid, sep);
		else
			n = snprintf(buf + len, size - len, " %s %s%s%s%s%s", c->name,
				     wd_state_name(c->state), c->last_exit[0] ? " (" : "",
				     c->last_exit, c->last_exit[0] ? ")" : "", sep);
		if (n > 0)
			len += (size_t)n < size - len ? (size_t)n : size - len - 1;
	}
	return len;
}

/* Forks; the parent waits until the stages are up, prints the banner the
 * child sends and exits. The child keeps the instance lock, and listens on it
 * again: SO_PEERCRED names the process that last called listen(), so a second
 * vigild is told the pid of this one, not of the parent that exits. */
int
vigild_detach(struct wd *wd, int lock_fd, int *ret_ready_fd)
{
	char path[4200], text[VIGILD_BANNER_MAX + 1];
	int pipefd[2], logfd, devnull;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pipefd[1]);
		/* 'y' or 'n', then the banner, then EOF (the child closes its end). */
		while (len < sizeof(text) - 1 &&
		       ((n = read(pipefd[0], text + len, sizeof(text) - 1 - len)) > 0 ||
			(n < 0 && errno == EINTR)))
			len += n > 0 ? (size_t)n : 0;
		text[len] = '\0';
		if (len == 0 || text[0] != 'y') {
			fprintf(stderr,
				"vigild: the stages did not all come up; vigild runs on (see "
				"'vigilctl status', 'vigilctl logs STAGE' and %s/vigild.log)\n%s",
				wd->run_dir, len > 1 ? text + 1 : "");
			exit(1);
		}
		fputs(text + 1, stdout);
		exit(0);
	}
	close(pipefd[0]);
	setsid();
	if (listen(lock_fd, 4) < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/vigild.log", wd->run_dir);
	logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (logfd < 0 || devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 ||
	    dup2(logfd, 2) < 0)
		return -errno;
	close(logfd);
	close(devnull);
	*ret_ready_fd = pipefd[1];
	return 0;
}

void
vigild_cleanup(struct wd *wd)
{
	char path[4200];

	wd_free_children(wd);
	for (int i = 0; i < BUS_N_STAGES; i++) {
		if (wd->listen_fd[i] >= 0)
			close(wd->listen_fd[i]);
		wd->listen_fd[i] = -1;
	}
	for (int i = 0; i < WD_MAX_CONNS; i++) {
		if (wd->bus_conn[i] >= 0)
			close(wd->bus_conn[i]);
	}
	wd_ctl_free(wd);
	snprintf(path, sizeof(path), "%s/bus.sock", wd->run_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ctl.sock", wd->run_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/vigild.pid", wd->run_dir);
	unlink(path);
	if (wd->ring_name[0] != '\0')
		ring_unlink(wd->ring_name);
}

int
vigild_write_pidfile(struct wd *wd)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/vigild.pid", wd->run_dir);
	f = fopen(path, "we");
	if (f == NULL)
		return -errno;
	fprintf(f, "%d\n", (int)getpid());
	return fclose(f) == 0 ? 0 : -errno;
}

int
vigild_open_sockets(struct wd *wd)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/bus.sock", wd->run_dir);
	wd->bus_listen_fd = bus_listen(path);
	if (wd->bus_listen_fd < 0) {
		fprintf(stderr, "vigild: bus_listen(%s) failed: %s\n", path,
			strerror(-wd->bus_listen_fd));
		return wd->bus_listen_fd;
	}
	snprintf(path, sizeof(path), "%s/ctl.sock", wd->run_dir);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0) {
		struct sockaddr_un addr = { .sun_family = AF_UNIX };

		if (strlen(path) >= sizeof(addr.sun_path)) {
			close(fd);
			errno = ENAMETOOLONG;
			fd = -1;
			goto out_err;
		}
		memcpy(addr.sun_path, path, strlen(path) + 1);
		if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
			close(fd);
			fd = -1;
		}
	}
out_err:
	if (fd < 0) {
		fprintf(stderr, "vigild: cannot listen on %s: %s\n", path, strerror(errno));
		return -errno;
	}
	chmod(path, 0660);
	wd->ctl_listen_fd = fd;
	return 0;
}
