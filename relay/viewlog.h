/* viewlog: every live view of one relay process (PROTOCOL.md section 9,
 * live.view) from its start until the writer has made its record durable,
 * kept in a state file beside the audit log, so that a relay killed mid-view
 * still records the view: at the latest when it starts again
 * (docs/audit.md, "What each stage records").
 *
 * The file is a journal of JSON lines, each written (write(2), O_APPEND) as
 * the event happens, so that a process killed at any point has told the
 * kernel all it knew; it guards against the process dying, not the machine
 * (no fsync but the compaction's):
 *
 *   {"k":7,"actor":"p1","role":"proctor","remote":"10.0.0.7",
 *    "sentinelId":"…","sessionId":"…","from":1796399990000}   a view began
 *   {"k":7,"to":1796400000120}                              it ended: record queued
 *   {"k":7,"done":true}                                     its record is durable
 *   {"alive":1796400000000}        the process ran then (once a second while views are open)
 *
 * A begin line that carries "to" is an ended view (what a compaction or a
 * start writes). When the file has grown to four times what its live views
 * need (and 64 KiB), it is rewritten with only those (common/files.h,
 * atomically). At open, every view a previous process left is ended: `to`
 * as its end line says, or else the last "alive" time (at most a second
 * before the process died; never before its `from`); its record goes out
 * with `time` = `to`, and the file is rewritten with only those views. A
 * record whose ack arrives after a process died, before its done line was
 * written, is sent again at the next start: a view is recorded at least
 * once, twice only in that window.
 *
 * Views move:
 *   begin --> OPEN --end--> QUEUED --ack--> (freed, done line)
 *                             |  ^
 *             outbox refused  v  |  a second later
 *                            ENDED
 *
 * One thread: the relay's loop (or httpd's, for its live.mjpeg views). One
 * process per file (vigild runs one relay per worker index, and one httpd,
 * and waits for one to exit before starting another).
 */
#ifndef VIGIL_RELAY_VIEWLOG_H
#define VIGIL_RELAY_VIEWLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "stage.h"

struct relay_viewlog;
struct relay_view;

struct relay_viewlog_figures {
	uint64_t open;        /* views open now */
	uint64_t waiting;     /* ended views whose record is not yet durable */
	uint64_t recovered;   /* views a previous process left, recorded at open */
	uint64_t writes;      /* lines written since open (one write(2) each) */
	uint64_t bytes;       /* their bytes, compactions included */
	uint64_t compactions; /* rewrites of the whole file */
	uint64_t compact_us;  /* the last one took (a stall of relay's loop: it fsyncs) */
	uint64_t errors;      /* failed writes (logged) */
};

/* Opens (making it, mode 0700) dir and in it the file name, records what a
 * previous process left there (now_ms: unix ms, for its "alive" line) and
 * sends the records through a. -errno. dir NULL: without a file (views are
 * recorded when they end, and lost with the process before that). */
int relay_viewlog_open(const char *dir, const char *name, struct audit *a, int64_t now_ms,
		       struct relay_viewlog **ret);
/* The same for views served by another way than relay's socket: every record
 * (the recovered ones too) carries { via } after "to" (httpd's "live.mjpeg").
 * One file holds one way's views. */
int relay_viewlog_open_via(const char *dir, const char *name, const char *via, struct audit *a,
			   int64_t now_ms, struct relay_viewlog **ret);
/* A stage's journal: data_dir/audit/<name>, through the stage's outbox (via
 * as above, NULL: none); when the file cannot be used (logged), one without
 * a file. NULL: out of memory. */
struct relay_viewlog *relay_viewlog_for(struct stage *st, const char *name, const char *via);
/* After the last callback the outbox may make (audit_free, or a forgotten
 * outbox): ends the file's use. An empty journal is removed; views still
 * open or waiting stay in it for the next start. */
void relay_viewlog_close(struct relay_viewlog *vl);

/* A view begins at from_ms (unix ms). actor and role: the token's name and
 * role; remote: the client's address; ids: UUID strings. NULL (logged) when
 * memory ran out: that view is not recorded. */
struct relay_view *relay_viewlog_begin(struct relay_viewlog *vl, const char *actor,
				       const char *role, const char *remote,
				       const char *sentinel_id, const char *session_id,
				       int64_t from_ms);
/* The view ended at to_ms: its record goes to the outbox. The handle is the
 * viewlog's from here on. */
void relay_viewlog_end(struct relay_viewlog *vl, struct relay_view *v, int64_t to_ms);
/* About every 250 ms to a second: the "alive" line (once a second while a
 * view is open), records the outbox refused tried again, the compaction. */
void relay_viewlog_tick(struct relay_viewlog *vl, int64_t now_ms);
void relay_viewlog_figures(const struct relay_viewlog *vl, struct relay_viewlog_figures *ret);

#endif
