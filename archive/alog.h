/* alog: the audit log's one writer (docs/audit.md), a thread of
 * vigil-archive.
 *
 * The stage thread hands it each audit.append as it comes off the bus
 * (alog_push); the writer thread appends the records to the day's file as
 * hash-chained lines, fdatasyncs a whole batch at once, moves `head` on, and
 * only then queues the acks, which the stage thread sends (alog_take_acks
 * when alog_fd() is readable). A failed write or sync takes the batch back
 * (the file is cut to where it was; seq and the chain stay), stops
 * acknowledging and says so in the figures; the senders keep their records
 * and send them again, so nothing is lost while the disk is full.
 */
#ifndef VIGIL_ALOG_H
#define VIGIL_ALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct alog;

struct alog_figures {
	uint64_t seq;     /* the newest durable record */
	uint64_t written; /* records written since start */
	uint64_t dups;    /* records sent twice, written once */
	uint64_t refused; /* malformed records (logged) */
	uint64_t fsyncs;
	double fsync_ms;   /* the last batch's */
	uint64_t failures; /* failed writes or syncs */
	bool ok;           /* the last batch was written */
};

/* Opens (making it) dir, finds where the chain stands (docs/audit.md;
 * a torn last line beyond head is cut off), applies retention and starts
 * the thread. retention_days 0: kept for ever. -errno. */
int alog_open(const char *dir, int64_t retention_days, struct alog **ret);
/* Writes what was pushed and ends the thread (its acks can still be taken). */
void alog_stop(struct alog *al);
void alog_close(struct alog *al);

/* Stage thread. from: the sending stage (where the ack goes). */
void alog_push(struct alog *al, const char *from, const char *src, uint64_t n, uint64_t base,
	       const char *text, size_t len);
/* Stage thread: a record of archive's own that must be durable before what it
 * records is done (a hard delete, docs/archive.md "Deletion"). Unlike a
 * sender's, it is never sent again: it goes into the next batch, and
 * alog_take_acks says how that batch went, once. text is copied; it carries
 * its id, which alog_written finds after a restart. 0, or -ENOMEM (nothing
 * queued). */
int alog_put(struct alog *al, const char *text, size_t len, void *own);
/* Whether the record with this id ("<src>.<n>") was in the log when it was
 * opened: only before the first alog_push or alog_put (the writer thread owns
 * what it reads from then on). */
bool alog_written(struct alog *al, const char *id);
int alog_fd(const struct alog *al);
/* Calls fn for every ack ready: the stage `to`, the src, every n up to it
 * durable; and own_fn for every alog_put: 0 when its record is durable, else
 * -errno, and then it is not in the log (the batch was taken back). Take
 * them before alog_close: an own ctx not taken is not freed. */
typedef void (*alog_ack_fn)(void *ctx, const char *to, const char *src, uint64_t n);
typedef void (*alog_own_fn)(void *ctx, void *own, int status);
void alog_take_acks(struct alog *al, alog_ack_fn fn, alog_own_fn own_fn, void *ctx);
void alog_set_retention(struct alog *al, int64_t retention_days);
void alog_figures(struct alog *al, struct alog_figures *ret);

/* Pure helpers, also for the tests. The line for record text (a JSON object
 * without seq, prev, hash) as record seq after prev (64 hex): malloc'ed,
 * ending in '\n', its hash in hash_out (65 bytes). NULL with *ret_err set:
 * -EINVAL for a malformed record, -ENOMEM. */
char *alog_line(uint64_t seq, const char *prev, const char *text, size_t len, char hash_out[65],
		size_t *ret_len, int *ret_err);

#endif
