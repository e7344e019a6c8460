/* stage: command line, config, bus hello/heartbeat and signals for every stage program. */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "audit.h"
#include "log.h"
#include "mp.h"
#include "net.h"
#include "proc.h"
#include "stage.h"

/* How long a new stage waits for vigild's answer to its hello. */
#define STAGE_HELLO_WAIT_MS  2000
#define STAGE_AUDIT_DRAIN_MS 3000

static void stage_await_vigild(struct stage *st);

/* The process's name: the stage's, or a worker's ("relay/1"); log_open keeps
 * a pointer to it for the life of the process. */
static char stage_name_buf[BUS_NAME_MAX];

struct stage {
	enum bus_stage which;
	int worker; /* VIGIL_WORKER from vigild; -1: the stage's one process */
	/* the connections of the stage's workers as vigild last told (workers.load) */
	int64_t peer_conns[BUS_WORKERS_MAX];
	int64_t load_sent; /* the connections last told to vigild (load); -1 none */
	struct cfg *cfg;
	char *config_path; /* NULL: built-in defaults */
	int bus_fd;
	int sig_fd;
	int listen_fd;
	bool stopping;
	bool restarting;
	bool reload;
	bool have_revoked; /* vigild's list came (stage_await_vigild) */
	json_t *overrides; /* the console's live keys from vigild's config.reload, or NULL */
	uint8_t *revoked;  /* vigild's "revoked": n_revoked digests back to back */
	size_t n_revoked;
	int64_t started_ms;
	int64_t last_beat_ms;
	struct proc_sample last_sample;
	struct stage_metrics metrics;
	/* the loop's rounds since the last heartbeat */
	double loop_sum, loop_max, loop_min;
	uint64_t loop_n;
	struct audit *audit; /* this stage's audit records until archive has them */
	stage_msg_fn on_msg;
	void *on_msg_ctx;
	stage_stats_fn on_stats;
	void *on_stats_ctx;
};

static void
stage_usage(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: %s [--config FILE]\n"
		"A vigil stage, normally started by vigild, which hands it its listening socket.\n"
		"\n"
		"  -c, --config FILE  configuration file (default: built-in defaults)\n"
		"  -h, --help         show this help and exit\n"
		"  -V, --version      show the version and exit\n"
		"\n"
		"Exit status: 0 stopped cleanly, 1 runtime failure, 2 usage or config error.\n",
		prog);
}

static const char *
stage_parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			stage_usage(stdout, argv[0]);
			exit(0);
		case 'V':
			printf("%s %s\n", argv[0], VIGIL_VERSION);
			exit(0);
		default:
			stage_usage(stderr, argv[0]);
			exit(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
		exit(2);
	}
	return config;
}

static int
stage_send_hello(struct stage *st)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "hello", stage_name_buf, "vigild");
	msgpack_pack_map(&pk, 3);
	mp_pack_kv_str(&pk, "stage", bus_stage_name(st->which));
	mp_pack_kv_int(&pk, "pid", getpid());
	mp_pack_kv_str(&pk, "version", VIGIL_VERSION);
	r = bus_send(st->bus_fd, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

static int
stage_open_signals(struct stage *st)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before any thread exists, so threads (GStreamer, ring waiters) inherit it. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	st->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return st->sig_fd < 0 ? -errno : 0;
}

/* Every proctor, sentinel or HTTP client is a descriptor: the soft limit
 * (1024 on a stock Debian login) goes up to the hard one (524288 under
 * systemd), as the limits in the config are the bound that counts. */
static void
stage_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn(-errno, "setrlimit(RLIMIT_NOFILE) failed");
}

static int stage_read_bus(struct stage *st);

/* The worker index vigild gave (VIGIL_WORKER), -1 without one, and the
 * process's name from it. */
static int
stage_take_worker(enum bus_stage which)
{
	const char *w = getenv("VIGIL_WORKER");
	int worker = -1;

	if (w != NULL && w[0] >= '0' && w[0] < '0' + BUS_WORKERS_MAX && w[1] == '\0')
		worker = w[0] - '0';
	unsetenv("VIGIL_WORKER"); /* not for what the stage may start in turn */
	if (worker >= 0)
		snprintf(stage_name_buf, sizeof(stage_name_buf), "%s/%d", bus_stage_name(which),
			 worker);
	else
		snprintf(stage_name_buf, sizeof(stage_name_buf), "%s", bus_stage_name(which));
	return worker;
}

static int
stage_audit_send(void *ctx, const void *body, size_t len)
{
	return stage_send(ctx, "audit.append", "archive", body, len);
}

struct stage *
stage_new(enum bus_stage which, int argc, char **argv)
{
	char err[CFG_ERR_MAX], path[512];
	const char *config;
	enum log_level level;
	struct stage *st;
	int r, worker;

	config = stage_parse_args(argc, argv);
	worker = stage_take_worker(which);
	log_open(stage_name_buf);
	/* A fixed threshold: every large buffer (a message, a segment copy) is
	 * its own mapping and goes back to the system when freed. glibc's default
	 * raises the threshold after such a free, and a stage that once held a
	 * large message would keep that much of its heap for good. */
	mallopt(M_MMAP_THRESHOLD, 128 << 10);
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->which = which;
	st->worker = worker;
	st->load_sent = -1;
	st->bus_fd = -1;
	st->sig_fd = -1;
	st->listen_fd = -1;
	if (config != NULL && (st->config_path = strdup(config)) == NULL) {
		r = -ENOMEM;
		goto err_free;
	}
	r = cfg_load(config, &st->cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s\n", err);
		exit(2);
	}
	if (log_level_parse(st->cfg->log_level, &level) == 0)
		log_set_level(level);
	stage_raise_nofile();
	r = stage_open_signals(st);
	if (r < 0) {
		log_error(r, "signalfd() failed");
		goto err_free;
	}
	st->audit = audit_new(stage_name_buf, stage_audit_send, st);
	if (st->audit == NULL) {
		r = -ENOMEM;
		goto err_free;
	}
	st->started_ms = proc_mono_ms();
	proc_sample(&st->last_sample);
	st->last_beat_ms = st->started_ms;
	snprintf(path, sizeof(path), "%s/bus.sock", st->cfg->run_dir);
	st->bus_fd = bus_connect(path);
	if (st->bus_fd < 0) {
		log_warn(st->bus_fd, "bus_connect(%s) failed, running without vigild", path);
		st->bus_fd = -1;
	} else if ((r = stage_send_hello(st)) < 0) {
		log_error(r, "sending hello on the bus failed");
		goto err_free;
	} else {
		stage_await_vigild(st);
	}
	log_info("started (version %s, pid %d)", VIGIL_VERSION, (int)getpid());
	return st;

err_free:
	stage_free(st);
	errno = -r;
	return NULL;
}

/* A stage that stops hands its last records (the views its proctors ended,
 * say) to the writer before it goes, within a bound: archive stops last. */
static void
stage_audit_drain(struct stage *st)
{
	int64_t deadline = proc_mono_ms() + STAGE_AUDIT_DRAIN_MS, left;
	struct pollfd pfd;

	st->on_msg = NULL; /* the stage's own state is gone by now */
	while (st->bus_fd >= 0 && !audit_idle(st->audit)) {
		left = deadline - proc_mono_ms();
		if (left <= 0) {
			log_warn(0,
				 "audit: the writer did not confirm the last records within %d ms",
				 STAGE_AUDIT_DRAIN_MS);
			return;
		}
		audit_tick(st->audit);
		pfd = (struct pollfd){ .fd = st->bus_fd, .events = POLLIN };
		if (poll(&pfd, 1, left > 100 ? 100 : (int)left) < 0 && errno != EINTR)
			return;
		if (stage_read_bus(st) < 0)
			return;
	}
}

void
stage_free(struct stage *st)
{
	if (st == NULL)
		return;
	if (st->audit != NULL) {
		stage_audit_drain(st);
		audit_free(st->audit);
	}
	if (st->listen_fd >= 0)
		close(st->listen_fd);
	if (st->bus_fd >= 0)
		close(st->bus_fd);
	if (st->sig_fd >= 0)
		close(st->sig_fd);
	cfg_free(st->cfg);
	json_decref(st->overrides);
	free(st->revoked);
	free(st->config_path);
	free(st);
}

int
stage_reload(struct stage *st)
{
	char err[CFG_ERR_MAX];
	struct cfg *cfg;
	enum log_level level;
	int r;

	msgpack_sbuffer sb;
	msgpack_packer pk;

	r = cfg_load_over(st->config_path, st->overrides, &cfg, err, sizeof(err));
	if (r < 0) {
		log_error(0, "config reload refused, keeping the running one: %s", err);
	} else {
		cfg_free(st->cfg);
		st->cfg = cfg;
		if (log_level_parse(cfg->log_level, &level) == 0)
			log_set_level(level);
		log_info("configuration reloaded%s",
			 st->overrides ? ", with the live overrides from vigild on top" : "");
	}
	/* Operators (vigilctl watch) see each stage take the new config or not. */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, r < 0 ? 2 : 1);
	mp_pack_kv_bool(&pk, "ok", r == 0);
	if (r < 0)
		mp_pack_kv_str(&pk, "error", err);
	stage_send(st, "config.reloaded", "*", sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

void
stage_on_stats(struct stage *st, stage_stats_fn fn, void *ctx)
{
	st->on_stats = fn;
	st->on_stats_ctx = ctx;
}

const uint8_t *
stage_revoked(const struct stage *st, size_t *ret_n)
{
	*ret_n = st->n_revoked;
	return st->revoked;
}

int
stage_set_revoked(const struct stage *st, struct tok_store *store)
{
	return tok_set_revoked(store, st->revoked, st->n_revoked);
}

bool
stage_restarting(const struct stage *st)
{
	return st->restarting;
}

const struct cfg *
stage_cfg(const struct stage *st)
{
	return st->cfg;
}

struct stage_metrics *
stage_metrics(struct stage *st)
{
	return &st->metrics;
}

void
stage_on_message(struct stage *st, stage_msg_fn fn, void *ctx)
{
	st->on_msg = fn;
	st->on_msg_ctx = ctx;
}

int
stage_listen_fd(struct stage *st, const struct cfg_listen *addr)
{
	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");

	if (st->listen_fd >= 0)
		return st->listen_fd;
	/* The socket activation convention: LISTEN_PID names us, the socket is fd 3. */
	if (fds != NULL && pid != NULL && atoi(fds) >= 1 && atoi(pid) == (int)getpid()) {
		st->listen_fd = 3;
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDNAMES");
		return st->listen_fd;
	}
	st->listen_fd = net_listen(addr);
	return st->listen_fd;
}

int
stage_bus_fd(const struct stage *st)
{
	return st->bus_fd;
}

int
stage_signal_fd(const struct stage *st)
{
	return st->sig_fd;
}

bool
stage_stopping(const struct stage *st)
{
	return st->stopping;
}

bool
stage_take_reload(struct stage *st)
{
	bool r = st->reload;

	st->reload = false;
	return r;
}

static void
stage_service_signals(struct stage *st)
{
	struct signalfd_siginfo si;

	while (read(st->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			st->reload = true;
		} else {
			log_info("signal %d: stopping", (int)si.ssi_signo);
			st->stopping = true;
		}
	}
}

/* vigild's "revoked" { digests: [hex] }: the whole list, replacing the one before. A
 * malformed list is ignored whole rather than half-applied. */
static int
stage_take_revoked(struct stage *st, const msgpack_object *body)
{
	const msgpack_object *list;
	uint8_t *digests = NULL;
	uint32_t n;

	if (mp_get_array(body, "digests", &list) < 0)
		return -EBADMSG;
	n = list->via.array.size;
	if (n > 0 && (digests = reallocarray(NULL, n, TOK_DIGEST_LEN)) == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *o = &list->via.array.ptr[i];

		if (o->type != MSGPACK_OBJECT_STR ||
		    tok_digest_parse(o->via.str.ptr, o->via.str.size,
				     digests + (size_t)i * TOK_DIGEST_LEN) < 0) {
			free(digests);
			return -EBADMSG;
		}
	}
	free(st->revoked);
	st->revoked = digests;
	st->n_revoked = n;
	st->have_revoked = true;
	return 0;
}

/* config.reload { overrides? }: the next reload reads the file with these on top;
 * without overrides (vigilctl reload, SIGHUP to vigild) it reads the file alone. */
static void
stage_take_overrides(struct stage *st, const msgpack_object *body)
{
	const msgpack_object *over;
	json_t *j = NULL;

	if (mp_get_map(body, "overrides", &over) == 0 && over->via.map.size > 0) {
		j = mp_to_json(over);
		if (j == NULL)
			log_error(-ENOMEM,
				  "the live overrides were lost: reloading the file alone");
	}
	json_decref(st->overrides);
	st->overrides = j;
	st->reload = true;
}

/* vigild's workers.load { connections: [per worker] }: what the stage's
 * other workers serve. */
static void
stage_take_load(struct stage *st, const msgpack_object *body)
{
	const msgpack_object *list;

	if (mp_get_array(body, "connections", &list) < 0)
		return;
	for (uint32_t i = 0; i < BUS_WORKERS_MAX; i++) {
		const msgpack_object *o = i < list->via.array.size ? &list->via.array.ptr[i] : NULL;

		st->peer_conns[i] = o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
					    ? (int64_t)o->via.u64
					    : 0;
	}
}

/* Every bus message goes through here, before the stage's loop exists too. */
static void
stage_handle(struct stage *st, const struct bus_msg *msg)
{
	int r;

	if (strcmp(msg->type, "stop") == 0) {
		const char *why = "";
		size_t n_why = 0;

		mp_get_str(msg->body, "reason", &why, &n_why);
		st->restarting = n_why == 7 && memcmp(why, "restart", 7) == 0;
		log_info("vigild asked to stop (%.*s)", (int)n_why, why);
		st->stopping = true;
		return;
	}
	if (strcmp(msg->type, "config.reload") == 0) {
		stage_take_overrides(st, msg->body);
		return;
	}
	if (strcmp(msg->type, "workers.load") == 0) {
		stage_take_load(st, msg->body);
		return;
	}
	if (st->audit != NULL && audit_on_msg(st->audit, msg))
		return;
	if (strcmp(msg->type, "revoked") == 0) {
		size_t before = st->n_revoked;

		r = stage_take_revoked(st, msg->body);
		if (r < 0) {
			log_error(r, "a malformed revocation list from vigild ignored");
			return;
		}
		if (st->n_revoked != before)
			log_info("%zu token%s revoked", st->n_revoked,
				 st->n_revoked == 1 ? " is" : "s are");
	}
	if (st->on_msg != NULL)
		st->on_msg(st->on_msg_ctx, msg);
}

/* Reads one packet: 1 handled, 0 nothing waiting, < 0 the connection is gone. */
static int
stage_read_bus(struct stage *st)
{
	static char buf[BUS_MSG_MAX];
	struct bus_msg msg;
	int n;

	n = bus_recv(st->bus_fd, buf, sizeof(buf));
	if (n == -EAGAIN)
		return 0;
	if (n <= 0) {
		log_error(n, "bus connection to vigild lost: stopping");
		close(st->bus_fd);
		st->bus_fd = -1;
		st->stopping = true;
		return n < 0 ? n : -ECONNRESET;
	}
	if (bus_decode(buf, (size_t)n, &msg) < 0) {
		log_warn(0, "malformed bus message ignored (%d bytes)", n);
		return 1;
	}
	stage_handle(st, &msg);
	bus_msg_release(&msg);
	return 1;
}

static void
stage_service_bus(struct stage *st)
{
	while (st->bus_fd >= 0 && stage_read_bus(st) > 0)
		;
}

/* vigild answers hello with the live overrides (if any) and the revocation
 * list, ahead of anything else on this connection. Waiting for them here
 * means the stage serves no client with the file's limits or a revoked token. */
static void
stage_await_vigild(struct stage *st)
{
	int64_t deadline = proc_mono_ms() + STAGE_HELLO_WAIT_MS, left;
	struct pollfd pfd;

	while (st->bus_fd >= 0 && !st->have_revoked && !st->stopping) {
		left = deadline - proc_mono_ms();
		if (left <= 0) {
			log_warn(0, "vigild sent no revocation list within %d ms: starting without",
				 STAGE_HELLO_WAIT_MS);
			return;
		}
		pfd = (struct pollfd){ .fd = st->bus_fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return;
		if (stage_read_bus(st) < 0)
			return;
	}
	if (stage_take_reload(st))
		stage_reload(st);
}

void
stage_service(struct stage *st)
{
	stage_service_signals(st);
	stage_service_bus(st);
}

int
stage_send(struct stage *st, const char *type, const char *to, const void *body, size_t body_len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	if (st->bus_fd < 0)
		return -ENOTCONN;
	/* The console packs its requests whole (their ref is inside the body). */
	if (type == NULL)
		return bus_send(st->bus_fd, body, body_len);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, type, stage_name_buf, to);
	msgpack_sbuffer_write(&sb, body, body_len);
	r = bus_send(st->bus_fd, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

int
stage_worker(const struct stage *st)
{
	return st->worker;
}

const char *
stage_name(const struct stage *st)
{
	(void)st;
	return stage_name_buf;
}

void
stage_load(struct stage *st, int64_t connections)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	st->metrics.connections = connections;
	if (st->worker < 0 || connections == st->load_sent)
		return;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_int(&pk, "connections", connections);
	/* Lost to a full socket: the heartbeat carries the figure a second later. */
	if (stage_send(st, "load", "vigild", sb.data, sb.size) == 0)
		st->load_sent = connections;
	msgpack_sbuffer_destroy(&sb);
}

int64_t
stage_peer_connections(const struct stage *st)
{
	int64_t sum = 0;

	for (int i = 0; i < BUS_WORKERS_MAX; i++) {
		if (i != st->worker)
			sum += st->peer_conns[i];
	}
	return sum;
}

struct audit *
stage_audit(struct stage *st)
{
	return st->audit;
}

void
stage_loop_round(struct stage *st, double work_s)
{
	if (st->loop_n == 0 || work_s > st->loop_max)
		st->loop_max = work_s;
	if (st->loop_n == 0 || work_s < st->loop_min)
		st->loop_min = work_s;
	st->loop_sum += work_s;
	st->loop_n++;
}

/* The heartbeat covers every round since the one before, not a sample of
 * them: a long round between two heartbeats shows in loopMaxS. */
static void
stage_take_loop(struct stage *st)
{
	struct stage_metrics *m = &st->metrics;

	m->loop_avg_s = st->loop_n > 0 ? st->loop_sum / (double)st->loop_n : 0;
	m->loop_max_s = st->loop_n > 0 ? st->loop_max : 0;
	m->loop_min_s = st->loop_n > 0 ? st->loop_min : 0;
	st->loop_sum = st->loop_max = st->loop_min = 0;
	st->loop_n = 0;
}

void
stage_tick(struct stage *st)
{
	struct audit_figures af;
	struct proc_sample now;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int64_t mono = proc_mono_ms();
	int r;

	log_tick();
	audit_tick(st->audit);
	if (mono - st->last_beat_ms < 1000 || st->bus_fd < 0)
		return;
	st->last_beat_ms = mono;
	if (proc_sample(&now) < 0)
		now = st->last_sample;
	stage_take_loop(st);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	audit_figures(st->audit, &af);
	msgpack_pack_map(&pk, st->on_stats != NULL ? 11 : 10);
	mp_pack_kv_int(&pk, "pid", getpid());
	mp_pack_kv_double(&pk, "cpuPercent", proc_cpu_percent(&st->last_sample, &now));
	mp_pack_kv_int(&pk, "memBytes", proc_rss_bytes());
	mp_pack_kv_int(&pk, "connections", st->metrics.connections);
	mp_pack_kv_double(&pk, "loopAvgS", st->metrics.loop_avg_s);
	mp_pack_kv_double(&pk, "loopMaxS", st->metrics.loop_max_s);
	mp_pack_kv_double(&pk, "loopMinS", st->metrics.loop_min_s);
	mp_pack_kv_int(&pk, "uptimeMs", mono - st->started_ms);
	mp_pack_kv_int(&pk, "auditQueued", (int64_t)af.queued);
	mp_pack_kv_int(&pk, "auditDropped", (int64_t)af.dropped);
	if (st->on_stats != NULL) {
		mp_pack_str(&pk, "stats");
		st->on_stats(st->on_stats_ctx, &pk);
	}
	st->last_sample = now;
	r = stage_send(st, "heartbeat", "vigild", sb.data, sb.size);
	if (r < 0 && r != -EAGAIN)
		log_warn(r, "heartbeat not sent");
	msgpack_sbuffer_destroy(&sb);
}

int
stage_run(struct stage *st)
{
	struct pollfd pfd[2];

	stage_tick(st);
	while (!st->stopping) {
		int64_t wait = 1000 - (proc_mono_ms() - st->last_beat_ms), t0;

		pfd[0] = (struct pollfd){ .fd = st->sig_fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = st->bus_fd, .events = POLLIN };
		if (poll(pfd, 2, wait < 0 ? 0 : (int)wait) < 0 && errno != EINTR)
			return -errno;
		t0 = proc_mono_us();
		stage_service(st);
		if (stage_take_reload(st))
			stage_reload(st);
		stage_tick(st);
		stage_loop_round(st, (double)(proc_mono_us() - t0) / 1e6);
	}
	log_info("stopped");
	return 0;
}
