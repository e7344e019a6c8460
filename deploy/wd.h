/* wd: vigild's supervision of the four stages.
 *
 * Each stage is a child with a state machine (s6-supervise is the model):
 *
 *            spawn            hello
 *   DOWN ----------> STARTING ------> RUNNING
 *    ^  ^               |  exit/miss     |  exit, missed heartbeats (SIGABRT)
 *    |  |               v                v
 *    |  |   delay    BACKOFF <-----------+-----> FAILED (exit 2, or 5 deaths in 10 s)
 *    |  |   over --> spawn                          |
 *    |  +--- STOPPING <-- stop (operator, shutdown) |  operator start/restart
 *    +----------------------------------------------+
 *
 * Restart delays double from 100 ms to 10 s and go back to 100 ms after a
 * minute of stable running. Only vigild runs this code.
 */
#ifndef VIGIL_WD_H
#define VIGIL_WD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "bus.h"
#include "cfg.h"

#define WD_LOG_LINES      1000
#define WD_BACKOFF_MIN_MS 100
#define WD_BACKOFF_MAX_MS 10000
#define WD_STABLE_MS      60000
#define WD_FAIL_COUNT     5
#define WD_FAIL_WINDOW_MS 10000
#define WD_STOP_GRACE_MS  5000 /* asked to stop -> SIGKILL */
#define WD_ABORT_GRACE_MS 3000 /* SIGABRT for a hung stage -> SIGKILL */
#define WD_MAX_CONNS      16

enum wd_state {
	WD_DOWN = 0,
	WD_STARTING,
	WD_RUNNING,
	WD_STOPPING,
	WD_BACKOFF,
	WD_FAILED,
	WD_N_STATES,
};

struct wd_child {
	enum bus_stage which;
	enum wd_state state;
	pid_t pid;
	int log_fd;    /* read end of the stage's stdout+stderr, -1 */
	int bus_fd;    /* its bus connection once it said hello, -1 */
	int listen_fd; /* socket handed down as fd 3, -1 for archive */
	bool restart_after_stop;
	bool aborting;                                 /* SIGABRT sent for missed heartbeats */
	int64_t started_ms, last_beat_ms, deadline_ms; /* monotonic ms */
	int64_t backoff_ms;
	int64_t fail_ms[WD_FAIL_COUNT];
	unsigned n_fail;
	unsigned restarts;
	char last_exit[96]; /* "exited with status 1", "killed by signal 6" */
	json_t *heartbeat;  /* last heartbeat body, NULL before the first */
	char *log[WD_LOG_LINES];
	unsigned log_head, log_count;
	char partial[1024];
	size_t partial_len;
};

struct wd_rev;

struct wd {
	struct cfg *cfg;                     /* the file, with the overrides on top */
	char config_path[4096];              /* absolute, "" for built-in defaults */
	char stage_path[BUS_N_STAGES][4096]; /* the vigil-<stage> programs */
	char ring_name[64];
	char run_dir[4096];
	struct wd_child child[BUS_N_STAGES];
	char listen_name[BUS_N_STAGES][64];
	int bus_listen_fd, ctl_listen_fd, sig_fd;
	int bus_conn[WD_MAX_CONNS]; /* connections that have not said hello yet */
	int ctl_conn[WD_MAX_CONNS];
	bool ctl_watch[WD_MAX_CONNS];
	bool shutdown;
	bool foreground;
	int64_t started_ms;
	int64_t ring_sentinels; /* the ring's sentinel slots: limits.max_sentinels at start */
	json_t *overrides;      /* the console's live keys (wd_cfg.c), NULL: the file alone */
	struct wd_rev *rev;     /* revoked tokens (wd_rev.c) */
};

const char *wd_state_name(enum wd_state state);

void wd_init_child(struct wd_child *c, enum bus_stage which, int listen_fd);
void wd_free_child(struct wd_child *c);
/* Starts the stage now (DOWN, BACKOFF or FAILED: the failure record is cleared). */
int wd_start(struct wd *wd, struct wd_child *c);
/* Asks the stage to stop (bus "stop", SIGTERM without a bus), SIGKILL after a grace period. */
void wd_stop(struct wd *wd, struct wd_child *c, bool restart);
/* SIGKILL now; the stage is then restarted as after a crash. */
void wd_kill(struct wd *wd, struct wd_child *c);
void wd_on_exit(struct wd *wd, struct wd_child *c, int status);
void wd_on_hello(struct wd *wd, struct wd_child *c, int bus_fd);
void wd_on_heartbeat(struct wd *wd, struct wd_child *c, json_t *body);
/* Timers: restarts after backoff, heartbeat misses, stop escalation. Returns
 * the milliseconds until the next deadline (at most 1000). */
int wd_tick(struct wd *wd);
/* Reads what the stage printed; keeps the last WD_LOG_LINES lines. */
void wd_read_log(struct wd *wd, struct wd_child *c);
/* The last n lines, oldest first, as a JSON array of strings. */
json_t *wd_log_tail(const struct wd_child *c, unsigned n);
json_t *wd_child_json(const struct wd *wd, const struct wd_child *c);

/* Implemented by vigild.c: a stage changed state (tell the bus and ctl watchers). */
void vigild_state_changed(struct wd *wd, struct wd_child *c);
/* Implemented by vigild.c: re-reads the config; on error keeps the old one and fills err. */
int vigild_reload(struct wd *wd, char *err, size_t errlen);

/* wd_bus.c: the bus from vigild's side. */
int wd_bus_accept(struct wd *wd);
void wd_bus_service_new(struct wd *wd, int slot);
void wd_bus_service(struct wd *wd, struct wd_child *c);

/* wd_cfg.c: live configuration. The overrides are the console's live keys
 * (config.update, vigilctl config set), kept in memory over the file until a
 * reload from the file. wd_cfg_on_bus answers config.update with
 * config.result; wd_cfg_ctl answers ctl's "config", "config.update" and
 * "config.set"; wd_cfg_send tells one stage (after its hello) or every stage
 * (c NULL) config.reload { overrides? }; wd_cfg_adopt makes cfg vigild's own
 * (warning about the keys that wait for a vigild restart) and frees the old. */
void wd_cfg_on_bus(struct wd *wd, struct wd_child *from, const struct bus_msg *msg);
json_t *wd_cfg_ctl(struct wd *wd, const char *cmd, json_t *req);
void wd_cfg_send(struct wd *wd, struct wd_child *c);
void wd_cfg_adopt(struct wd *wd, struct cfg *cfg);
/* A reload from the file: drops the overrides. */
void wd_cfg_drop(struct wd *wd);

/* wd_rev.c: revoked tokens, durable in data_dir/.revoked-tokens. wd_rev_open
 * loads the file at start (-EINVAL with err for a file it cannot read: vigild
 * must not start and forget a revocation) and drops the digests of tokens the
 * config no longer has, as wd_rev_prune does after a reload from the file.
 * wd_rev_from_bus takes token.revoke { token } and persists it before the bus
 * carries it on; wd_rev_send gives one stage (after hello) or all (c NULL)
 * revoked { digests }; wd_rev_ctl answers ctl's "revoke", "revoked", "lift". */
int wd_rev_open(struct wd *wd, char *err, size_t errlen);
void wd_rev_free(struct wd *wd);
void wd_rev_prune(struct wd *wd);
void wd_rev_from_bus(struct wd *wd, const struct bus_msg *msg);
void wd_rev_send(struct wd *wd, struct wd_child *c);
json_t *wd_rev_ctl(struct wd *wd, const char *cmd, json_t *req);

/* wd_ctl.c: the ctl socket for vigilctl, one JSON request and answer per line. */
int wd_ctl_accept(struct wd *wd);
void wd_ctl_service(struct wd *wd, int slot);
void wd_ctl_broadcast(struct wd *wd, json_t *event);
json_t *wd_status_json(const struct wd *wd);
/* Packs a bus message from vigild with a JSON body (through the envelope
 * codec, as a stage would pack it) into sb, which the caller destroys on
 * success. -EBADMSG (err says why), -ENOMEM. */
int wd_pack_msg(msgpack_sbuffer *sb, const char *type, const char *to, json_t *body, char *err,
		size_t errlen);

#endif
