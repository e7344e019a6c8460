/* wd: vigild's supervision of the four stages.
 *
 * A stage runs as one process, or as several workers (relay.workers: relay/0
 * .. relay/N-1, each a reader of the ring accepting on the one listening
 * socket). Every process is a child with its own state machine (s6-supervise
 * is the model):
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
 * minute of stable running. The children are kept by stage, then worker, in
 * one table (struct wd); a name on the bus, in ctl requests and in status is
 * the stage's ("relay": every worker of it) or a worker's ("relay/1"). Only
 * vigild runs this code.
 *
 *   vigild.c  the process: arguments, signals, the poll loop
 *   vigild_setup.c  before and after the loop: lock, ring, sockets, detach
 *   wd.c      the state machine above: spawn, stop, kill, exits, heartbeats
 *   wd_table.c  the children by stage and worker, their names, their load
 *   wd_log.c  the stages' log lines: kept, parsed, passed on, followed
 *   wd_act.c  operators' actions that wait for their outcome (stage.set,
 *             vigilctl restart ...) and the announced shutdown
 *   wd_bus.c  the bus: hello, heartbeats, routing, the console's requests
 *   wd_ctl.c  ctl.sock for vigilctl
 */
#ifndef VIGIL_WD_H
#define VIGIL_WD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "bus.h"
#include "cfg.h"
#include "log.h"

#define WD_LOG_LINES      1000
#define WD_BACKOFF_MIN_MS 100
#define WD_BACKOFF_MAX_MS 10000
#define WD_STABLE_MS      60000
#define WD_FAIL_COUNT     5
#define WD_FAIL_WINDOW_MS 10000
#define WD_STOP_GRACE_MS  5000 /* asked to stop -> SIGKILL */
#define WD_ABORT_GRACE_MS 3000 /* SIGABRT for a hung stage -> SIGKILL */
#define WD_MAX_CONNS      16
#define WD_LINE_MAX       1024         /* a longer line is cut into several */
#define WD_LOG_READ_MAX   (64u << 10)  /* read from one stage's pipe per loop round */
#define WD_OUT_MAX        (4u << 20)   /* answers queued for one stage's bus connection */
#define WD_CTL_OUT_MAX    (4u << 20)   /* unsent bytes of one ctl connection: closed beyond */
#define WD_CTL_LOG_MAX    (256u << 10) /* log events wait no longer: dropped and counted */
#define WD_WAIT_MS        30000        /* an action that waits gives up after */
#define WD_WAITS_MAX      32
#define WD_REF_MAX        128 /* a request's ref, packed */
#define WD_SHUTDOWN_MAX_S 3600
#define WD_MAX_CHILDREN   (BUS_N_STAGES - 1 + BUS_WORKERS_MAX)

enum wd_state {
	WD_DOWN = 0,
	WD_STARTING,
	WD_RUNNING,
	WD_STOPPING,
	WD_BACKOFF,
	WD_FAILED,
	WD_N_STATES,
};

/* One log line of a stage, as kept for logs and the console. */
struct wd_line {
	char *text; /* valid UTF-8, no NUL, no newline */
	uint32_t len;
	enum log_level level; /* from the line; info for a line of another form */
	int64_t time_ms;      /* unix ms: the line's own time, or when it came */
};

/* Messages for a stage's bus connection that must not be lost when its
 * queue is full (answers): sent in order as the socket takes them. */
struct wd_pkt {
	struct wd_pkt *next;
	size_t len;
	unsigned char data[];
};

struct wd_child {
	enum bus_stage which;
	int worker; /* its index among the stage's workers; -1: the stage's one process */
	char name[BUS_NAME_MAX]; /* "relay", "relay/1": on the bus, in logs and status */
	enum wd_state state;
	pid_t pid;
	int log_fd;    /* read end of the stage's stdout+stderr, -1 */
	int bus_fd;    /* its bus connection once it said hello, -1 */
	int listen_fd; /* the stage's socket (struct wd's), handed down as fd 3; -1 for archive */
	bool restart_after_stop;
	bool aborting;                                 /* SIGABRT sent for missed heartbeats */
	int64_t started_ms, last_beat_ms, deadline_ms; /* monotonic ms */
	int64_t backoff_ms;
	int64_t fail_ms[WD_FAIL_COUNT];
	unsigned n_fail;
	unsigned restarts;
	char last_exit[96]; /* "exited with status 1", "killed by signal 6" */
	json_t *heartbeat;  /* last heartbeat body, NULL before the first */
	int64_t load;       /* its connections as it last said (heartbeat, load); 0 while down */
	struct wd_line log[WD_LOG_LINES];
	unsigned log_head, log_count;
	char partial[WD_LINE_MAX];
	size_t partial_len;
	/* the bus connection's own state, reset at each hello */
	unsigned bus_gen;              /* counts hellos: answers go to the asker only */
	int bus_sndbuf;                /* SO_SNDBUF of bus_fd */
	struct wd_pkt *out, *out_tail; /* answers the socket did not take yet */
	size_t out_bytes;
	bool follow;           /* logs.follow { on: true }: every new line as log.line */
	uint64_t follow_drops; /* log.line not sent since the last one that was */
};

/* Where a console request came from and its answers go: a stage's bus
 * connection (httpd's), or a ctl.sock connection that handed vigild the
 * message as httpd would have sent it ({"cmd":"bus"}), which gets the
 * answers as JSON lines. gen tells a reused slot from the asker. */
struct wd_peer {
	bool ctl;
	int slot; /* index in wd->child, or the ctl connection */
	unsigned gen;
};

/* A ctl.sock connection. Writes never block vigild: what the socket does
 * not take waits in out; a client that lets WD_CTL_OUT_MAX pile up is
 * closed, and log events beyond WD_CTL_LOG_MAX are dropped and counted. */
struct wd_ctl_conn {
	int fd; /* -1: free */
	unsigned gen;
	bool watch;      /* stage events and bus broadcasts */
	unsigned follow; /* bit per child (index in wd->child): its new lines as {"event":"log"} */
	bool follow_bus; /* logs.follow through {"cmd":"bus"}: log.line events */
	uint64_t drops;  /* {"event":"log"} dropped since the last one sent */
	uint64_t bus_drops;
	char *out;
	size_t out_len, out_cap;
};

/* An action waiting for its outcome (wd_act.c). */
enum wd_act {
	WD_ACT_START = 0,
	WD_ACT_STOP,
	WD_ACT_RESTART,
	WD_ACT_KILL,
	WD_N_ACTS,
};

struct wd_wait {
	bool used;
	bool bus_form; /* answered as stage.result; else as vigilctl's JSON */
	struct wd_peer peer;
	char name[BUS_NAME_MAX]; /* as asked: a stage, or one worker */
	unsigned first, n;       /* the children it acts on */
	enum wd_act act;
	pid_t old_pid[BUS_WORKERS_MAX];
	bool rolling;        /* a restart of workers: one at a time */
	bool silent;         /* nobody waits (ctl's "wait": false): the roll goes on unanswered */
	unsigned next;       /* rolling: the child (from first) restarting now */
	int64_t deadline_ms; /* monotonic */
	unsigned char ref[WD_REF_MAX]; /* the request's ref, packed msgpack */
	size_t ref_len;
};

struct wd_rev;
struct wd;

/* What the process around wd does for it: wd calls these, never vigild.c by name. */
struct wd_ops {
	/* A child changed state: tell the bus and the ctl watchers. */
	void (*state_changed)(struct wd *wd, struct wd_child *c);
};

struct wd {
	const struct wd_ops *ops;
	struct cfg *cfg;                     /* the file, with the overrides on top */
	char config_path[4096];              /* absolute, "" for built-in defaults */
	char stage_path[BUS_N_STAGES][4096]; /* the vigil-<stage> programs */
	char ring_name[64];
	char run_dir[4096];
	/* Every process, by stage then worker: stage s is child[first[s]] ..
	 * child[first[s] + count[s] - 1]. */
	struct wd_child child[WD_MAX_CHILDREN];
	unsigned n_child;
	unsigned first[BUS_N_STAGES], count[BUS_N_STAGES];
	int listen_fd[BUS_N_STAGES]; /* -1 for archive */
	char listen_name[BUS_N_STAGES][64];
	int bus_listen_fd, ctl_listen_fd, sig_fd;
	int bus_conn[WD_MAX_CONNS]; /* connections that have not said hello yet */
	struct wd_ctl_conn ctl[WD_MAX_CONNS];
	unsigned ctl_gen;
	struct wd_wait waits[WD_WAITS_MAX];
	int64_t shutdown_mono_ms; /* the announced stop, monotonic; 0: none */
	int64_t shutdown_at_ms;   /* the same in unix ms, as announced */
	bool shutdown;
	bool foreground;
	int64_t started_ms;
	int64_t ring_sentinels; /* the ring's sentinel slots: limits.max_sentinels at start */
	json_t *overrides;      /* the console's live keys (wd_cfg.c), NULL: the file alone */
	json_t *boot;           /* cfg_to_json (redacted) of the config vigild started with */
	struct wd_rev *rev;     /* revoked tokens (wd_rev.c) */
	struct audit *audit;    /* vigilctl's actions on their way to the audit log (wd_audit.c) */
	int64_t audit_drain_ms; /* monotonic: shutdown began waiting for audit acks; 0 */
};

const char *wd_state_name(enum wd_state state);

/* wd_table.c: the children by stage and worker, their names, their load. */
/* The table of children: workers[s] processes for stage s (1 but for relay),
 * each named, on the stage's listening socket (wd->listen_fd). */
void wd_init_children(struct wd *wd, const unsigned workers[BUS_N_STAGES]);
void wd_free_children(struct wd *wd);
/* The children a name designates: a stage's (all its workers) or one
 * worker's. 0, or -EINVAL for an unknown name (or a worker the stage does
 * not have). */
int wd_lookup(const struct wd *wd, const char *name, unsigned *ret_first, unsigned *ret_n);
/* The child of exactly that name ("relay" for a stage of one process,
 * "relay/1" for a worker), or NULL. */
struct wd_child *wd_child_named(struct wd *wd, const char *name);
/* A worker's connections (bus "load", or its heartbeat's): when they changed,
 * every worker of its stage gets workers.load { connections: [per worker] }. */
void wd_on_load(struct wd *wd, struct wd_child *c, int64_t connections);
/* workers.load to one worker of the stage (to), or to each (to NULL): the
 * running workers' connections, 0 for one that does not run. */
void wd_load_send(struct wd *wd, enum bus_stage which, struct wd_child *to);

/* wd.c: the state machine. */
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
json_t *wd_child_json(const struct wd *wd, const struct wd_child *c);

/* wd_log.c: the stages' log lines. */
/* Reads what the stage printed, at most WD_LOG_READ_MAX bytes a call (a
 * stage that floods its pipe cannot hold the loop); keeps the last
 * WD_LOG_LINES lines, echoes them on vigild's stderr, offers each new one to
 * the followers. */
void wd_read_log(struct wd *wd, struct wd_child *c);
void wd_log_free(struct wd_child *c);
/* The last n lines of the children [first, first + n_child) (a stage's
 * workers, merged in time), oldest first, as a JSON array of strings. */
json_t *wd_log_tail(const struct wd *wd, unsigned first, unsigned n_child, unsigned n);
/* logs.request { ref, stage, lines }: log.lines to peer (stage: a stage,
 * its workers' lines merged, or one worker), in as many packets
 * as BUS_MSG_MAX takes, or { ref, error }. */
void wd_log_request(struct wd *wd, const struct wd_peer *peer, const msgpack_object *body);
/* logs.follow { on }: every new line of every stage as log.line, or not. */
void wd_log_follow(struct wd *wd, const struct wd_peer *peer, const msgpack_object *body);

/* wd_act.c: actions that answer once done, and the announced shutdown. */
/* An operator's start, stop, restart or kill of a stage (stage.set, or the
 * ctl commands). Refused at once (unknown stage or state, start of a running
 * stage, kill of one that is not running, during shutdown); else answered
 * once the stage is where it was asked to be (start: running; stop: down;
 * restart and kill: running with a new pid), when it failed, or after
 * WD_WAIT_MS (a rolling restart: that for each worker). A stage of workers
 * acts on all of them, and a restart is rolling: one worker at a time, the
 * next once the one before runs again, so that the others keep serving; a
 * worker's name ("relay/1") acts on that one. bus_form: as stage.result {
 * ref, stage, state, pid|error } (and pids, each worker's), else as
 * vigilctl's {"ok":...}; without wait (ctl only), {"ok":true} as soon as the
 * action is taken. */
void wd_act_request(struct wd *wd, const struct wd_peer *peer, const msgpack_object *ref,
		    const char *stage, const char *state, bool bus_form, bool wait);
/* Announces the ordered stop for in_ms from now (every stage gets
 * shutdown.notice { at }) and returns at, in unix ms. A second call replaces
 * the time. */
int64_t wd_shutdown_schedule(struct wd *wd, int64_t in_ms);
/* shutdown.request { ref, in } -> shutdown.result { ref, at } or { ref, error }. */
void wd_shutdown_request(struct wd *wd, const struct wd_peer *peer, const msgpack_object *body);
/* A stage changed state: answers the waits it settles. */
void wd_act_state_changed(struct wd *wd, struct wd_child *c);
/* A stage said hello: it learns of an announced stop it missed. */
void wd_act_hello(struct wd *wd, struct wd_child *c);
/* Timers: waits that ran out, the announced stop. Returns the milliseconds
 * until the next deadline (at most 1000). */
int wd_act_tick(struct wd *wd);

/* wd_bus.c: the bus from vigild's side. */
int wd_bus_accept(struct wd *wd);
void wd_bus_service_new(struct wd *wd, int slot);
/* Sends the answers waiting for c, then reads what c sent. */
void wd_bus_service(struct wd *wd, struct wd_child *c);
/* The bus connection of c is gone or new: queued answers and following end. */
void wd_bus_reset(struct wd_child *c);
/* Handles a console request (stage.set, logs.request, logs.follow,
 * shutdown.request) from peer; false for another type. */
bool wd_bus_console(struct wd *wd, const struct wd_peer *peer, const struct bus_msg *msg);
/* An answer (a packed bus message) for peer, never lost to a full socket
 * queue nor waited for: queued up to WD_OUT_MAX. -ENOTCONN when the asker
 * is gone. */
int wd_peer_send(struct wd *wd, const struct wd_peer *peer, const void *msg, size_t len);
/* wd_peer_send to stage c's bus connection (a stage state, a status). */
int wd_bus_send(struct wd *wd, struct wd_child *c, const void *msg, size_t len);
/* A message that may be lost (log.line): sent only while the connection has
 * room left for answers, -EAGAIN otherwise. */
int wd_peer_offer(struct wd *wd, const struct wd_peer *peer, const void *msg, size_t len);
/* The stage name in an answer's "to". */
const char *wd_peer_name(const struct wd *wd, const struct wd_peer *peer);
/* The request's "ref" (any type, packed at most WD_REF_MAX bytes), else nil. */
const msgpack_object *wd_ref(const msgpack_object *body);

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
/* Drops the overrides. */
void wd_cfg_drop(struct wd *wd);
/* A reload from the file (SIGHUP, vigilctl reload): the overrides dropped,
 * the file adopted and sent to the stages. *ret_result: { applied: [live keys
 * whose value changed], restartRequired: [other keys whose value differs from
 * the one vigild started with], warnings: [tokens that expired or expire
 * within a day] }. A bad file changes nothing: -EINVAL with the line in err. */
int wd_cfg_reload(struct wd *wd, json_t **ret_result, char *err, size_t errlen);
/* Logs a warning for each token that expired or expires within a day, and
 * appends the same line to notes (a JSON array) unless it is NULL. */
void wd_cfg_warn_tokens(const struct cfg *cfg, json_t *notes);

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
/* wd_audit.c */
int wd_audit_init(struct wd *wd);
void wd_audit_free(struct wd *wd);
/* audit.ack addressed to vigild, and archive's audit.ready. */
void wd_audit_on_bus(struct wd *wd, const struct bus_msg *msg);
void wd_audit_tick(struct wd *wd);
/* During shutdown, before archive (the writer) is stopped: true once
 * vigild's own records are acknowledged, or WD_AUDIT_WAIT_MS after the
 * first call. vigilctl stop's record must not be cut off by the stop. */
bool wd_audit_drained(struct wd *wd);
/* Records a ctl request that is an operator's act (with what came of it, from
 * ans) and returns ans to send now, or NULL: it goes once the record is
 * durable. Requests that only look return ans as it is. */
json_t *wd_audit_ctl(struct wd *wd, int slot, const char *cmd, json_t *req, json_t *ans);

void wd_ctl_init(struct wd *wd);
void wd_ctl_free(struct wd *wd);
int wd_ctl_accept(struct wd *wd);
/* Sends what waits, then reads a request. */
void wd_ctl_service(struct wd *wd, int slot);
void wd_ctl_broadcast(struct wd *wd, json_t *event);
/* Queues one JSON line for the connection; a client that lets
 * WD_CTL_OUT_MAX pile up is closed (-ENOBUFS). */
int wd_ctl_write(struct wd *wd, int slot, json_t *msg);
/* The same for what may be lost (log events): -EAGAIN once WD_CTL_LOG_MAX
 * waits. */
int wd_ctl_offer(struct wd *wd, int slot, json_t *msg);
/* A bus message for a ctl peer, as {"event":"bus","type",...,"body"}. */
int wd_ctl_bus_event(struct wd *wd, const struct wd_peer *peer, const void *msg, size_t len,
		     bool droppable);
json_t *wd_status_json(const struct wd *wd);
/* Packs a bus message from vigild with a JSON body (through the envelope
 * codec, as a stage would pack it) into sb, which the caller destroys on
 * success. -EBADMSG (err says why), -ENOMEM. */
int wd_pack_msg(msgpack_sbuffer *sb, const char *type, const char *to, json_t *body, char *err,
		size_t errlen);

#endif
