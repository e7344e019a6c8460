/* stage: what every stage program shares: the command line, the config, the
 * log, the bus connection with hello and heartbeats, the inherited listening
 * socket, and stop/reload signals.
 *
 * The stage's own event loop owns the fds: it polls stage_bus_fd() and
 * stage_signal_fd() and calls stage_service() when either is readable, and
 * stage_tick() about once a second. stage_run() is that loop for a stage with
 * no sockets of its own.
 */
#ifndef VIGIL_STAGE_H
#define VIGIL_STAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "cfg.h"
#include "tok.h"

struct stage;

/* The figures each heartbeat reports: the stage keeps connections up to
 * date; the loop figures are the last heartbeat's, computed from the rounds
 * stage_loop_round() was told of since the heartbeat before. */
struct stage_metrics {
	int64_t connections;
	double loop_avg_s, loop_max_s, loop_min_s;
};

/* Called in the stage process for every bus message that is not stop or
 * config.reload; for "revoked", after stage_revoked() has the new list. */
typedef void (*stage_msg_fn)(void *ctx, const struct bus_msg *msg);
/* Packs one msgpack map of the stage's own figures into each heartbeat ("stats"). */
typedef void (*stage_stats_fn)(void *ctx, msgpack_packer *pk);

/* Parses "--config FILE", "--help", "--version" (printing and exiting 0 for the
 * last two, exiting 2 on a usage or config error after one clear line), opens
 * the log under the stage's name and connects to the bus (a stage started by
 * hand without vigild runs standalone). After hello it waits (up to 2 s) for
 * vigild's answer: the live overrides, already applied to stage_cfg() when it
 * returns, and the revocation list (stage_revoked()). Returns NULL with errno
 * on failure. */
struct stage *stage_new(enum bus_stage which, int argc, char **argv);
void stage_free(struct stage *st);

const struct cfg *stage_cfg(const struct stage *st);
struct stage_metrics *stage_metrics(struct stage *st);
void stage_on_message(struct stage *st, stage_msg_fn fn, void *ctx);
void stage_on_stats(struct stage *st, stage_stats_fn fn, void *ctx);

/* The listening socket vigild handed down (LISTEN_FDS, fd 3), or a socket the
 * stage opens on the configured address when started by hand. -errno on failure. */
int stage_listen_fd(struct stage *st, const struct cfg_listen *addr);

int stage_bus_fd(const struct stage *st); /* -1 when standalone */
int stage_signal_fd(const struct stage *st);
/* Handles what is readable on the bus and signal fds. */
void stage_service(struct stage *st);
/* Sends the heartbeat when a second has passed since the last one. */
void stage_tick(struct stage *st);
/* One round of the stage's loop did work_s seconds of work (the wait for
 * events excluded); the next heartbeat carries the average, longest and
 * shortest round since the one before (loopAvgS, loopMaxS, loopMinS). */
void stage_loop_round(struct stage *st, double work_s);
/* Sends a message with a body packed by the caller (msgpack map bytes) to a stage or "*".
 * type NULL: body is the whole message, envelope included (bus_pack_begin), sent as it is. */
int stage_send(struct stage *st, const char *type, const char *to, const void *body,
	       size_t body_len);
/* The stage's audit outbox (common/audit.h): records go to archive's writer
 * over the bus, acks and retries are handled by stage_service and
 * stage_tick, and stage_free waits (a few seconds at most) for the last. */
struct audit *stage_audit(struct stage *st);
bool stage_stopping(const struct stage *st);
/* True when vigild stops the stage to restart it (clients should reconnect:
 * WebSocket close 1012), false for a shutdown (1001). */
bool stage_restarting(const struct stage *st);
/* Set by config.reload or SIGHUP; the stage clears it after re-reading. */
bool stage_take_reload(struct stage *st);
/* Re-reads the config file, with the live overrides of vigild's last
 * config.reload on top (none after a reload from the file): on success
 * stage_cfg() returns the new one (the old is freed: callers drop their
 * pointers into it); on error the running config stays and the error is
 * logged. Either way config.reloaded { ok, error? } goes to every stage. */
int stage_reload(struct stage *st);
/* The token digests vigild's last "revoked" named, *ret_n of them
 * (TOK_DIGEST_LEN bytes each, back to back; NULL when none); valid until the
 * next one. A stage gives them to every token store it builds
 * (tok_set_revoked), since a store loaded from the config has none. */
const uint8_t *stage_revoked(const struct stage *st, size_t *ret_n);
/* tok_set_revoked(store, stage_revoked()): >= 0, or -ENOMEM. */
int stage_set_revoked(const struct stage *st, struct tok_store *store);

/* Workers (relay.workers): vigild starts a stage as several processes, each
 * told its index (VIGIL_WORKER). stage_worker: that index, -1 for a stage's
 * one process. stage_name: "relay/1" for a worker, else the stage's name; it
 * is the name in the log lines, on the bus ("from") and in audit record ids. */
int stage_worker(const struct stage *st);
const char *stage_name(const struct stage *st);
/* The stage's connections (its metrics' figure); a worker also tells vigild
 * at once when it changed (bus "load"), so that the other workers learn it
 * (workers.load) before the next heartbeat. */
void stage_load(struct stage *st, int64_t connections);
/* The connections the stage's other workers serve, as vigild last said; 0
 * for a stage of one process. */
int64_t stage_peer_connections(const struct stage *st);

/* A loop for a stage that only needs the bus: returns 0 when told to stop. */
int stage_run(struct stage *st);

#endif
