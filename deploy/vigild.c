/* vigild: the watchdog parent. Takes the instance lock, creates the ring, the
 * bus and the listening sockets, starts the four stages and keeps them
 * running; answers vigilctl on ctl.sock. Signals arrive through a signalfd
 * read in the one poll loop. The setup before the loop and the teardown
 * after it are in vigild_setup.c. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "files.h"
#include "log.h"
#include "mp.h"
#include "proc.h"
#include "vigild.h"

#define VIGILD_READY_TIMEOUT_MS 15000

/* Stop order: no new media first, archive last so it stores all ingest wrote. */
static const enum bus_stage vigild_stop_order[BUS_N_STAGES] = {
	BUS_INGEST,
	BUS_RELAY,
	BUS_HTTPD,
	BUS_ARCHIVE,
};

struct vigild_opts {
	const char *config;
	bool foreground;
	bool check_config;
};

static void
vigild_usage(FILE *f)
{
	fprintf(f,
		"Usage: vigild --config FILE [--foreground]\n"
		"The vigil supervisor: creates the segment ring and the control bus, opens the\n"
		"listening sockets, starts vigil-ingest, -relay, -archive and -httpd and restarts\n"
		"them when they fail. Operators talk to it with vigilctl.\n"
		"\n"
		"  -c, --config FILE   configuration file (default /etc/vigil/vigil.yaml if it exists)\n"
		"  -f, --foreground    stay in the foreground and log to stderr\n"
		"      --check-config  print the effective configuration as JSON and exit\n"
		"  -h, --help          show this help and exit\n"
		"  -V, --version       show the version and exit\n"
		"\n"
		"Signals: TERM/INT stop every stage in order and exit; HUP reloads the config.\n"
		"Exit status: 0 clean stop, 1 runtime failure (e.g. already running),\n"
		"2 usage or config error.\n");
}

static void
vigild_parse_args(int argc, char **argv, struct vigild_opts *o)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:fhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'C':
			o->check_config = true;
			break;
		case 'h':
			vigild_usage(stdout);
			exit(0);
		case 'V':
			printf("vigild %s\n", VIGIL_VERSION);
			exit(0);
		default:
			vigild_usage(stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vigild: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	if (o->config == NULL && access("/etc/vigil/vigil.yaml", F_OK) == 0)
		o->config = "/etc/vigil/vigil.yaml";
}

static void
vigild_state_changed(struct wd *wd, struct wd_child *c)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	json_t *event;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "stage.state", "vigild", "*");
	msgpack_pack_map(&pk, 3);
	mp_pack_kv_str(&pk, "stage", c->name);
	mp_pack_kv_str(&pk, "state", wd_state_name(c->state));
	mp_pack_kv_int(&pk, "pid", c->pid);
	/* Queued if need be: httpd's console must not miss a change. */
	for (unsigned i = 0; i < wd->n_child; i++) {
		if (wd->child[i].bus_fd >= 0)
			wd_bus_send(wd, &wd->child[i], sb.data, sb.size);
	}
	msgpack_sbuffer_destroy(&sb);
	event = json_pack("{s:s, s:s, s:s, s:i, s:I}", "event", "stage", "stage", c->name, "state",
			  wd_state_name(c->state), "pid", (int)c->pid, "restarts",
			  (json_int_t)c->restarts);
	if (event != NULL)
		wd_ctl_broadcast(wd, event);
	json_decref(event);
	wd_act_state_changed(wd, c);
}

static int
vigild_open_signals(struct wd *wd)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	wd->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return wd->sig_fd < 0 ? -errno : 0;
}

static void
vigild_reap(struct wd *wd)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < wd->n_child; i++) {
			if (wd->child[i].pid == pid)
				wd_on_exit(wd, &wd->child[i], status);
		}
	}
}

static void
vigild_service_signals(struct wd *wd)
{
	struct signalfd_siginfo si;
	char err[CFG_ERR_MAX];
	json_t *result;

	while (read(wd->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			vigild_reap(wd);
			break;
		case SIGHUP:
			if (wd_cfg_reload(wd, &result, err, sizeof(err)) == 0)
				json_decref(result);
			break;
		default:
			if (!wd->shutdown)
				log_info("signal %d: stopping the stages in order",
					 (int)si.ssi_signo);
			wd->shutdown = true;
			break;
		}
	}
}

/* During shutdown: stop the first stage in order that still runs (all its
 * workers at once). True once all are down. */
static bool
vigild_shutdown_step(struct wd *wd)
{
	for (int i = 0; i < BUS_N_STAGES; i++) {
		enum bus_stage s = vigild_stop_order[i];
		bool stopping = false;

		for (unsigned k = wd->first[s]; k < wd->first[s] + wd->count[s]; k++) {
			struct wd_child *c = &wd->child[k];

			/* Archive writes the audit log: vigild's records first. */
			if (c->which == BUS_ARCHIVE && c->state == WD_RUNNING &&
			    !wd_audit_drained(wd))
				return false;
			if (c->state == WD_BACKOFF)
				wd_stop(wd, c, false);
			if (c->state == WD_STARTING || c->state == WD_RUNNING)
				wd_stop(wd, c, false);
			stopping |= c->state == WD_STOPPING;
		}
		if (stopping)
			return false;
	}
	return true;
}

static bool
vigild_all_up(const struct wd *wd)
{
	for (unsigned i = 0; i < wd->n_child; i++) {
		if (wd->child[i].state != WD_RUNNING)
			return false;
	}
	return true;
}

/* A failed stage stays down until an operator acts: no use waiting for it. */
static bool
vigild_any_failed(const struct wd *wd)
{
	for (unsigned i = 0; i < wd->n_child; i++) {
		if (wd->child[i].state == WD_FAILED)
			return true;
	}
	return false;
}

enum {
	PFD_SIG = 0,
	PFD_BUS,
	PFD_CTL,
	PFD_FIXED,
};

static int
vigild_loop(struct wd *wd, int ready_fd)
{
	struct pollfd pfd[PFD_FIXED + 2 * WD_MAX_CONNS + 2 * WD_MAX_CHILDREN];
	int owner[sizeof(pfd) / sizeof(pfd[0])];
	int64_t ready_deadline = proc_mono_ms() + VIGILD_READY_TIMEOUT_MS;
	bool ready_pending = true;

	for (;;) {
		nfds_t n = PFD_FIXED;
		int timeout = wd_tick(wd), act_timeout = wd_act_tick(wd);

		log_tick();
		wd_audit_tick(wd);
		if (act_timeout < timeout)
			timeout = act_timeout;

		if (wd->shutdown && vigild_shutdown_step(wd))
			return 0;
		if (ready_pending && (vigild_all_up(wd) || vigild_any_failed(wd) ||
				      proc_mono_ms() > ready_deadline)) {
			char text[VIGILD_BANNER_MAX + 1];
			bool up = vigild_all_up(wd);
			size_t len = vigild_banner(wd, up, text + 1, sizeof(text) - 1);

			ready_pending = false;
			text[0] = up ? 'y' : 'n';
			if (wd->foreground) {
				fputs(text + 1, up ? stdout : stderr);
				fflush(up ? stdout : stderr);
			} else {
				/* The parent prints it and exits: 0 with 'y'. */
				if (write(ready_fd, text, len + 1) < 0)
					log_warn(-errno, "readiness pipe");
				close(ready_fd);
			}
		}
		pfd[PFD_SIG] = (struct pollfd){ .fd = wd->sig_fd, .events = POLLIN };
		pfd[PFD_BUS] = (struct pollfd){ .fd = wd->bus_listen_fd, .events = POLLIN };
		pfd[PFD_CTL] = (struct pollfd){ .fd = wd->ctl_listen_fd, .events = POLLIN };
		/* owner: 0..15 new bus conns, 100+ ctl conns, 200+ children's bus, 300+ their logs */
		for (int i = 0; i < WD_MAX_CONNS; i++) {
			if (wd->bus_conn[i] >= 0) {
				owner[n] = i;
				pfd[n++] =
					(struct pollfd){ .fd = wd->bus_conn[i], .events = POLLIN };
			}
			if (wd->ctl[i].fd >= 0) {
				owner[n] = 100 + i;
				pfd[n++] = (struct pollfd){
					.fd = wd->ctl[i].fd,
					.events = POLLIN | (wd->ctl[i].out_len > 0 ? POLLOUT : 0)
				};
			}
		}
		for (int i = 0; i < (int)wd->n_child; i++) {
			if (wd->child[i].bus_fd >= 0) {
				owner[n] = 200 + i;
				pfd[n++] = (struct pollfd){
					.fd = wd->child[i].bus_fd,
					.events = POLLIN | (wd->child[i].out != NULL ? POLLOUT : 0)
				};
			}
			if (wd->child[i].log_fd >= 0) {
				owner[n] = 300 + i;
				pfd[n++] = (struct pollfd){ .fd = wd->child[i].log_fd,
							    .events = POLLIN };
			}
		}
		if (ready_pending && timeout > 100)
			timeout = 100;
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_error(-errno, "poll() failed");
			return -errno;
		}
		if (pfd[PFD_SIG].revents)
			vigild_service_signals(wd);
		if (pfd[PFD_BUS].revents)
			wd_bus_accept(wd);
		if (pfd[PFD_CTL].revents)
			wd_ctl_accept(wd);
		for (nfds_t i = PFD_FIXED; i < n; i++) {
			int o = owner[i];

			if (pfd[i].revents == 0)
				continue;
			if (o < 100)
				wd_bus_service_new(wd, o);
			else if (o < 200)
				wd_ctl_service(wd, o - 100);
			else if (o < 300)
				wd_bus_service(wd, &wd->child[o - 200]);
			else
				wd_read_log(wd, &wd->child[o - 300]);
		}
	}
}

static const struct wd_ops vigild_wd_ops = {
	.state_changed = vigild_state_changed,
};

int
main(int argc, char **argv)
{
	static struct wd wd = { .ops = &vigild_wd_ops };
	struct vigild_opts opts = { 0 };
	char err[CFG_ERR_MAX];
	int lock_fd, ready_fd = -1, r, ret = 1;
	enum log_level level;

	vigild_parse_args(argc, argv, &opts);
	log_open("vigild");
	memset(wd.bus_conn, -1, sizeof(wd.bus_conn));
	wd_ctl_init(&wd);
	wd.bus_listen_fd = wd.ctl_listen_fd = wd.sig_fd = -1;
	for (int i = 0; i < BUS_N_STAGES; i++)
		wd.listen_fd[i] = -1;
	wd.foreground = opts.foreground;
	wd.started_ms = proc_mono_ms();
	if (cfg_load(opts.config, &wd.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (opts.check_config) {
		json_t *j = cfg_to_json(wd.cfg, true);
		char note[256];

		/* stderr: stdout is the JSON vigilctl reads. */
		for (size_t i = 0; i < wd.cfg->n_tokens; i++) {
			if (cfg_token_expiry_note(&wd.cfg->tokens[i], proc_now_ms() / 1000, note,
						  sizeof(note)))
				fprintf(stderr, "vigild: warning: %s: %s\n", wd.cfg->path, note);
		}

		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
		cfg_free(wd.cfg);
		return 0;
	}
	if (log_level_parse(wd.cfg->log_level, &level) == 0)
		log_set_level(level);
	/* What the ring, sockets and files are made with: a reload that changes
	 * one of these keys is told it waits for a restart. */
	wd.boot = cfg_to_json(wd.cfg, true);
	if (wd.boot == NULL) {
		fprintf(stderr, "vigild: out of memory\n");
		goto out_cfg;
	}
	/* Before detaching: the operator who starts vigil sees these. */
	wd_cfg_warn_tokens(wd.cfg, NULL);
	if (opts.config != NULL && realpath(opts.config, wd.config_path) == NULL) {
		fprintf(stderr, "vigild: %s: %s\n", opts.config, strerror(errno));
		goto out_cfg;
	}
	if (vigild_find_stages(&wd) < 0)
		goto out_cfg;
	if (realpath(wd.cfg->run_dir, wd.run_dir) == NULL) {
		r = files_mkdirs(wd.cfg->run_dir, 0755);
		if (r < 0 || realpath(wd.cfg->run_dir, wd.run_dir) == NULL) {
			fprintf(stderr, "vigild: cannot create run_dir %s: %s\n", wd.cfg->run_dir,
				strerror(r < 0 ? -r : errno));
			goto out_cfg;
		}
	}
	lock_fd = vigild_lock(wd.cfg->instance);
	if (lock_fd < 0)
		goto out_cfg;
	/* Behind the lock: another vigild of the instance may be rewriting the file. */
	if (wd_rev_open(&wd, err, sizeof(err)) < 0) {
		fprintf(stderr, "vigild: %s\n", err);
		ret = 2;
		goto out_lock;
	}
	if (wd_audit_init(&wd) < 0) {
		fprintf(stderr, "vigild: out of memory\n");
		goto out_clean;
	}
	if (vigild_open_listeners(&wd) < 0 || vigild_create_ring(&wd) < 0 ||
	    vigild_open_sockets(&wd) < 0)
		goto out_clean;
	if (!opts.foreground && vigild_detach(&wd, lock_fd, &ready_fd) < 0)
		goto out_clean;
	if (vigild_open_signals(&wd) < 0 || vigild_write_pidfile(&wd) < 0) {
		log_error(-errno, "startup failed");
		goto out_clean;
	}
	log_info("instance '%s': ring %s (%llu bytes), run_dir %s, config %s", wd.cfg->instance,
		 wd.ring_name, (unsigned long long)wd.cfg->ring_size, wd.run_dir,
		 wd.config_path[0] != '\0' ? wd.config_path : "(built-in defaults)");
	for (unsigned i = 0; i < wd.n_child; i++) {
		r = wd_start(&wd, &wd.child[i]);
		if (r < 0)
			log_error(r, "%s: could not be started", wd.child[i].name);
	}
	ret = vigild_loop(&wd, ready_fd) < 0 ? 1 : 0;
	/* A vigilctl answer held for its record (archive, stopped last, may have
	 * gone before acknowledging it) is given now rather than never. */
	audit_release_waiters(wd.audit, -ESHUTDOWN);
	log_info("all stages stopped; exiting");
out_clean:
	vigild_cleanup(&wd);
	if (wd.sig_fd >= 0)
		close(wd.sig_fd);
	if (wd.bus_listen_fd >= 0)
		close(wd.bus_listen_fd);
	if (wd.ctl_listen_fd >= 0)
		close(wd.ctl_listen_fd);
	wd_rev_free(&wd);
	wd_audit_free(&wd);
out_lock:
	close(lock_fd);
out_cfg:
	json_decref(wd.boot);
	wd_cfg_drop(&wd);
	cfg_free(wd.cfg);
	return ret;
}
