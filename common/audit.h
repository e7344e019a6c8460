/* audit: a process's outbox of audit records (PROTOCOL.md section 9,
 * docs/audit.md).
 *
 * Every stage and vigild make records; archive alone writes them. A record
 * goes out over the bus as "audit.append" and stays in the outbox until the
 * writer's "audit.ack" says it is on disk (fsynced). Until then it is sent
 * again when the writer says "audit.ready" (it restarted) and whenever the
 * oldest one has waited too long (a packet the bus dropped): the writer takes
 * each (src, n) once, so a record sent twice is written once. The outbox is
 * bounded; a record that does not fit is counted and refused.
 *
 * Bus messages (common/bus.h):
 *   audit.append  any -> archive   { src, n, base, record }   record: the JSON
 *                   object as text (time, actor, role, remote, action, fields,
 *                   id); n counts from 1 per src; base: the lowest n not yet
 *                   acknowledged (every n below it is on disk already)
 *   audit.ack     archive -> from  { src, n }    every record of src up to n is durable
 *   audit.ready   archive -> *     { }           the writer (re)started: send again
 */
#ifndef VIGIL_AUDIT_H
#define VIGIL_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bus.h"
#include "tok.h"

#define AUDIT_QUEUE_MAX_BYTES (4u << 20)

struct audit;

/* Sends one audit.append body (a msgpack map) to archive: 0, or -errno
 * (-EAGAIN and the rest: it is sent again later). */
typedef int (*audit_send_fn)(void *ctx, const void *body, size_t len);
/* A record is durable (0), or is not yet after the wait the caller chose
 * (-ETIMEDOUT), or could not be queued (-ENOBUFS, -ENOMEM). Called once. */
typedef void (*audit_done_fn)(void *ctx, int status);

struct audit_figures {
	uint64_t queued;  /* records waiting for their ack */
	uint64_t bytes;   /* their size */
	uint64_t acked;   /* records the writer confirmed */
	uint64_t dropped; /* records refused: the outbox was full */
};

/* A new "<who>.<boot>" (boot random): the ids of one process's records are
 * "<who>.<boot>.<n>", n from 1. */
#define AUDIT_SRC_MAX 48
void audit_src_new(const char *who, char *buf, size_t size);

/* who: the process ("relay", "vigild"...), the first part of every record's id. */
struct audit *audit_new(const char *who, audit_send_fn send, void *send_ctx);
void audit_free(struct audit *a);

/* A new record { time: now, actor, role, remote, action }, the caller adds
 * the action's fields. info NULL: actor and role null (a token the
 * configuration does not know). NULL when out of memory. */
json_t *audit_record(const char *action, const struct tok_info *info, const char *remote);
/* The same with the actor named directly (vigilctl's Unix user). */
json_t *audit_record_as(const char *action, const char *actor, const char *role,
			const char *remote);

/* Secrets as "***" in a request kept in a record: every "token" string, at
 * any depth (a config's auth.tokens, a revocation). */
void audit_mask(json_t *j);

/* Queues rec (the reference is taken) and sends it. done (may be NULL) is
 * called when it is durable, or with -ETIMEDOUT when it is not within
 * wait_ms (it stays queued), or at once with the error when it cannot be
 * queued. Returns 0 or that error. */
int audit_emit(struct audit *a, json_t *rec, int wait_ms, audit_done_fn done, void *ctx);
/* A refusal (auth.failed): a stranger can send thousands a second, so at
 * most AUDIT_REFUSALS_PER_S of them go out each second; the rest are counted
 * and the next one that goes carries { suppressed: N }. rec is taken. */
#define AUDIT_REFUSALS_PER_S 20
int audit_emit_refusal(struct audit *a, json_t *rec);
/* Whoever waits with ctx has gone: its callbacks are not called. */
void audit_forget(struct audit *a, void *ctx);
/* The process stops: every waiter is called now with status (the records
 * stay queued). */
void audit_release_waiters(struct audit *a, int status);
/* The same for the waiters whose callback is done only: a part of the
 * process whose state goes before the outbox does. */
void audit_release_fn(struct audit *a, audit_done_fn done, int status);

/* audit.ack and audit.ready; true when msg was one of them. */
bool audit_on_msg(struct audit *a, const struct bus_msg *msg);
/* About every 100 ms to a second: sends again what waited too long, times out waiters. */
void audit_tick(struct audit *a);
/* Nothing is waiting for an ack. */
bool audit_idle(const struct audit *a);
void audit_figures(const struct audit *a, struct audit_figures *ret);

#endif
