/* wd: spawn, watch and restart the stages. Runs in vigild only. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "mp.h"
#include "proc.h"
#include "wd.h"

static const char *const wd_state_names[WD_N_STATES] = {
	[WD_DOWN] = "down",         [WD_STARTING] = "starting", [WD_RUNNING] = "running",
	[WD_STOPPING] = "stopping", [WD_BACKOFF] = "backoff",   [WD_FAILED] = "failed",
};

const char *
wd_state_name(enum wd_state state)
{
	return (unsigned)state < WD_N_STATES ? wd_state_names[state] : "?";
}

static void
wd_set_state(struct wd *wd, struct wd_child *c, enum wd_state state)
{
	bool was_running = c->state == WD_RUNNING;

	if (c->state == state)
		return;
	c->state = state;
	wd->ops->state_changed(wd, c);
	/* A worker that stops counts no more: its clients are on their way to
	 * the others, which must not refuse them for limits.max_proctors. */
	if (c->worker >= 0 && was_running)
		wd_load_send(wd, c->which, NULL);
}

/* In the child between fork and exec: only async-signal-safe calls. */
static void
wd_exec_child(struct wd *wd, struct wd_child *c, int log_w, const char *prog)
{
	char env_pid[32], env_name[64], env_worker[16];
	const char *argv[4] = { prog, NULL, NULL, NULL };
	sigset_t none;
	int devnull;

	setpgid(0, 0); /* the terminal's ^C reaches vigild only, which stops the stages in order */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(log_w, 1) < 0 || dup2(log_w, 2) < 0)
		_exit(127);
	if (c->listen_fd >= 0) {
		if (c->listen_fd == 3)
			fcntl(3, F_SETFD, 0);
		else if (dup2(c->listen_fd, 3) < 0)
			_exit(127);
		snprintf(env_pid, sizeof(env_pid), "%d", (int)getpid());
		snprintf(env_name, sizeof(env_name), "%s", bus_stage_name(c->which));
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", env_pid, 1);
		setenv("LISTEN_FDNAMES", env_name, 1);
	} else {
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDNAMES");
	}
	/* A worker learns its index (its name, its views file) from here. */
	if (c->worker >= 0) {
		snprintf(env_worker, sizeof(env_worker), "%d", c->worker);
		setenv("VIGIL_WORKER", env_worker, 1);
	} else {
		unsetenv("VIGIL_WORKER");
	}
	if (wd->config_path[0] != '\0') {
		argv[1] = "--config";
		argv[2] = wd->config_path;
	}
	execv(prog, (char *const *)argv);
	dprintf(2, "vigild: execv(%s) failed: %s\n", prog, strerror(errno));
	_exit(127);
}

static int
wd_spawn(struct wd *wd, struct wd_child *c)
{
	const char *prog = wd->stage_path[c->which];
	int pipefd[2];
	pid_t pid;

	if (c->log_fd >= 0)
		wd_read_log(wd, c);
	if (c->log_fd >= 0) {
		close(c->log_fd);
		c->log_fd = -1;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -errno;
	}
	if (pid == 0)
		wd_exec_child(wd, c, pipefd[1], prog);
	close(pipefd[1]);
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	c->log_fd = pipefd[0];
	c->pid = pid;
	c->started_ms = c->last_beat_ms = proc_mono_ms();
	c->deadline_ms = 0;
	c->aborting = false;
	c->restart_after_stop = false;
	json_decref(c->heartbeat);
	c->heartbeat = NULL;
	log_info("%s: started %s (pid %d)", c->name, prog, (int)pid);
	wd_set_state(wd, c, WD_STARTING);
	return 0;
}

int
wd_start(struct wd *wd, struct wd_child *c)
{
	if (c->state != WD_DOWN && c->state != WD_BACKOFF && c->state != WD_FAILED)
		return -EALREADY;
	if (c->state == WD_FAILED || c->state == WD_DOWN) {
		c->n_fail = 0;
		c->backoff_ms = WD_BACKOFF_MIN_MS;
	}
	return wd_spawn(wd, c);
}

static void
wd_send_stop(struct wd_child *c, bool restart)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (c->bus_fd >= 0) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		bus_pack_begin(&pk, "stop", "vigild", c->name);
		msgpack_pack_map(&pk, 1);
		mp_pack_kv_str(&pk, "reason", restart ? "restart" : "shutdown");
		if (bus_send(c->bus_fd, sb.data, sb.size) == 0) {
			msgpack_sbuffer_destroy(&sb);
			return;
		}
		msgpack_sbuffer_destroy(&sb);
	}
	kill(c->pid, SIGTERM);
}

void
wd_stop(struct wd *wd, struct wd_child *c, bool restart)
{
	switch (c->state) {
	case WD_STARTING:
	case WD_RUNNING:
		log_info("%s: stopping (pid %d)", c->name, (int)c->pid);
		wd_send_stop(c, restart && !wd->shutdown);
		c->deadline_ms = proc_mono_ms() + WD_STOP_GRACE_MS;
		c->restart_after_stop = restart;
		wd_set_state(wd, c, WD_STOPPING);
		break;
	case WD_STOPPING:
		c->restart_after_stop = restart;
		break;
	case WD_BACKOFF:
	case WD_FAILED:
	case WD_DOWN:
		if (restart)
			wd_start(wd, c);
		else
			wd_set_state(wd, c, WD_DOWN);
		break;
	default:
		break;
	}
}

void
wd_kill(struct wd *wd, struct wd_child *c)
{
	if (c->state == WD_STARTING || c->state == WD_RUNNING || c->state == WD_STOPPING) {
		log_warn(0, "%s: killing pid %d (SIGKILL)", c->name, (int)c->pid);
		kill(c->pid, SIGKILL);
	}
	(void)wd;
}

static void
wd_describe_exit(struct wd_child *c, int status)
{
	if (WIFEXITED(status))
		snprintf(c->last_exit, sizeof(c->last_exit), "exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(c->last_exit, sizeof(c->last_exit), "killed by signal %d (%s)%s",
			 WTERMSIG(status), strsignal(WTERMSIG(status)),
			 WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(c->last_exit, sizeof(c->last_exit), "ended (status 0x%x)", status);
}

/* Records a death; true when the stage has died WD_FAIL_COUNT times within the window. */
static bool
wd_count_failure(struct wd_child *c, int64_t now)
{
	unsigned in_window = 0;

	c->fail_ms[c->n_fail % WD_FAIL_COUNT] = now;
	c->n_fail++;
	for (unsigned i = 0; i < WD_FAIL_COUNT && i < c->n_fail; i++) {
		if (now - c->fail_ms[i] <= WD_FAIL_WINDOW_MS)
			in_window++;
	}
	return in_window >= WD_FAIL_COUNT;
}

void
wd_on_exit(struct wd *wd, struct wd_child *c, int status)
{
	int64_t now = proc_mono_ms();
	const char *name = c->name;

	wd_describe_exit(c, status);
	/* What it sent before it ended still counts: an audit.ack that a vigilctl
	 * answer waits for comes last from an archive that is stopping. */
	if (c->bus_fd >= 0)
		wd_bus_service(wd, c);
	if (c->bus_fd >= 0) {
		close(c->bus_fd);
		c->bus_fd = -1;
	}
	wd_bus_reset(c);
	wd_on_load(wd, c, 0); /* its clients are gone with it */
	wd_read_log(wd, c);
	c->pid = 0;
	if (c->state == WD_STOPPING || wd->shutdown) {
		log_info("%s: stopped (%s)", name, c->last_exit);
		if (c->restart_after_stop && !wd->shutdown) {
			c->restarts++;
			c->n_fail = 0;
			c->backoff_ms = WD_BACKOFF_MIN_MS;
			if (wd_spawn(wd, c) == 0)
				return;
		}
		wd_set_state(wd, c, WD_DOWN);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
		log_error(0, "%s: %s (usage or config error): not restarted", name, c->last_exit);
		wd_set_state(wd, c, WD_FAILED);
		return;
	}
	if (now - c->started_ms >= WD_STABLE_MS)
		c->backoff_ms = WD_BACKOFF_MIN_MS;
	if (wd_count_failure(c, now)) {
		log_error(0, "%s: %s; %d failures in %d s: marked failed until an operator acts",
			  name, c->last_exit, WD_FAIL_COUNT, WD_FAIL_WINDOW_MS / 1000);
		wd_set_state(wd, c, WD_FAILED);
		return;
	}
	log_warn(0, "%s: %s; restarting in %lld ms", name, c->last_exit, (long long)c->backoff_ms);
	c->deadline_ms = now + c->backoff_ms;
	c->backoff_ms =
		c->backoff_ms * 2 > WD_BACKOFF_MAX_MS ? WD_BACKOFF_MAX_MS : c->backoff_ms * 2;
	wd_set_state(wd, c, WD_BACKOFF);
}

void
wd_on_hello(struct wd *wd, struct wd_child *c, int bus_fd)
{
	socklen_t len = sizeof(c->bus_sndbuf);

	if (c->bus_fd >= 0)
		close(c->bus_fd);
	wd_bus_reset(c);
	c->bus_fd = bus_fd;
	c->bus_gen++;
	if (getsockopt(bus_fd, SOL_SOCKET, SO_SNDBUF, &c->bus_sndbuf, &len) < 0)
		c->bus_sndbuf = 0;
	c->last_beat_ms = proc_mono_ms();
	/* First on the connection, before any other message: the stage waits for them
	 * (stage_new) before it serves a client. */
	wd_cfg_send(wd, c);
	wd_rev_send(wd, c);
	if (c->worker >= 0)
		wd_load_send(wd, c->which, c);
	if (c->state == WD_STARTING) {
		log_info("%s: running (pid %d)", c->name, (int)c->pid);
		wd_set_state(wd, c, WD_RUNNING);
	}
}

void
wd_on_heartbeat(struct wd *wd, struct wd_child *c, json_t *body)
{
	json_t *conns = json_object_get(body, "connections");

	json_decref(c->heartbeat);
	c->heartbeat = body;
	c->last_beat_ms = proc_mono_ms();
	if (json_is_integer(conns))
		wd_on_load(wd, c, json_integer_value(conns));
}

static void
wd_check_child(struct wd *wd, struct wd_child *c, int64_t now)
{
	const char *name = c->name;

	switch (c->state) {
	case WD_BACKOFF:
		if (now >= c->deadline_ms && !wd->shutdown) {
			c->restarts++;
			if (wd_spawn(wd, c) < 0)
				c->deadline_ms = now + c->backoff_ms;
		}
		break;
	case WD_STARTING:
	case WD_RUNNING:
		if (c->aborting) {
			if (now >= c->deadline_ms)
				kill(c->pid, SIGKILL);
		} else if (now - c->last_beat_ms > wd->cfg->timeout_heartbeat_ms) {
			/* Stopped or spinning: SIGABRT leaves a core; SIGCONT wakes a stopped one. */
			log_error(0, "%s: no heartbeat for %lld ms: aborting pid %d", name,
				  (long long)(now - c->last_beat_ms), (int)c->pid);
			kill(c->pid, SIGABRT);
			kill(c->pid, SIGCONT);
			c->aborting = true;
			c->deadline_ms = now + WD_ABORT_GRACE_MS;
		}
		break;
	case WD_STOPPING:
		if (now >= c->deadline_ms && c->pid > 0) {
			log_warn(0, "%s: did not stop in time: SIGKILL", name);
			kill(c->pid, SIGKILL);
			kill(c->pid, SIGCONT);
			c->deadline_ms = now + WD_STOP_GRACE_MS;
		}
		break;
	default:
		break;
	}
}

int
wd_tick(struct wd *wd)
{
	int64_t now = proc_mono_ms(), next = now + 1000;

	for (unsigned i = 0; i < wd->n_child; i++) {
		struct wd_child *c = &wd->child[i];

		wd_check_child(wd, c, now);
		if ((c->state == WD_BACKOFF || c->state == WD_STOPPING || c->aborting) &&
		    c->deadline_ms < next)
			next = c->deadline_ms;
	}
	return next <= now ? 0 : (int)(next - now);
}

json_t *
wd_child_json(const struct wd *wd, const struct wd_child *c)
{
	int64_t now = proc_mono_ms();
	bool up = c->state == WD_STARTING || c->state == WD_RUNNING || c->state == WD_STOPPING;

	json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:i, s:s, s:O?, s:s}", "name", c->name, "state",
			      wd_state_name(c->state), "pid", (json_int_t)(up ? c->pid : 0),
			      "uptimeMs", (json_int_t)(up ? now - c->started_ms : 0), "restarts",
			      (int)c->restarts, "lastExit", c->last_exit, "heartbeat", c->heartbeat,
			      "listen", wd->listen_name[c->which]);

	/* A worker says which: its name is "<stage>/<worker>". */
	if (j != NULL && c->worker >= 0 &&
	    json_object_set_new(j, "worker", json_integer(c->worker)) < 0) {
		json_decref(j);
		j = NULL;
	}
	return j;
}
