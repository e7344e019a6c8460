/* archive: internal interfaces of vigil-archive, which copies every segment of
 * the ring to disk (docs/archive.md is the layout and the contract).
 *
 *   store.c      writing the layout (common/layout.h): atomic files, session.json,
 *                sentinel.json, the start-up repair of a session directory, removal
 *   sync.c       fsync of many fds at once from a few threads (the journal then
 *                commits them together: group commit)
 *   writer.c     the writer thread: reads the ring, batches segments, makes them
 *                durable in order, disk-full stalls, segments lost to the ring
 *   session.c    sessions' start and end (bus events, the ring's table), their
 *                directories and session.json, their init files
 *   retention.c  the catalogue of sessions on disk, retention passes, deletion
 *   mark.c       proctors' marks stored with their session (marks.jsonl)
 *   mark_bus.c   mark.add in, its audit record, mark.added out (stage thread)
 *   delete.c     a hard delete on request, in steps around its audit record
 *   floor.c      archive.min_free: the ingest rate, the volume, the floor; a
 *                retention pass below it
 *   loop.c       the stage's thread: bus messages in, answers and heartbeats out
 *   alog.c       the audit log's writer thread (alog.h; its files: alog_disk.c)
 *
 * Two threads: the stage thread (loop.c) owns the bus; the writer thread owns
 * everything on disk and every struct archive_sess. They meet only in the
 * fields under `mu` (the event and reply queues and the figures).
 */
#ifndef VIGIL_ARCHIVE_H
#define VIGIL_ARCHIVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alog.h"
#include "id.h"
#include "layout.h"
#include "mark.h"
#include "ring.h"
#include "stage.h"

/* ---- store.c: writing the layout -------------------------------------- *
 *
 * The layout itself (names, index lines, session.json, sentinel.json) is
 * common/layout.h, shared with httpd; docs/archive.md is the contract.
 */

/* What the start-up repair found in a session directory. */
struct archive_scan {
	int64_t last_seq;    /* -1: no segment */
	int64_t last_end_ms; /* startTime + duration of the last entry, -1: none */
	uint64_t bytes;      /* every file of the layout in the directory */
	uint64_t index_size; /* bytes of index.jsonl after the repair */
	uint32_t segments;   /* entries kept */
	uint32_t dropped;    /* entries dropped: file missing or of the wrong size, bad line */
	uint32_t removed;    /* files removed: *.tmp, unlisted segments */
	bool torn;           /* a torn last line was cut off */
};

/* name.tmp, fsync, rename to name; and an fsync of dirfd when sync_dir. */
int archive_write_atomic(int dirfd, const char *name, const void *data, size_t len, bool sync_dir);
int archive_fsync_dir(int dirfd);
/* session.json, written atomically. */
int archive_meta_write(int dirfd, const struct layout_session *m);
/* sentinel.json's text stamped with the time now (malloc'ed; NULL: no memory),
 * and that text written atomically. */
char *archive_sentinel_text(const char *id, const char *name);
int archive_sentinel_write(int dirfd, const char *id, const char *name);
/* dirfd's sentinel.json is missing, unreadable or names the sentinel otherwise. */
bool archive_sentinel_stale(int dirfd, const char *name);

/* docs/archive.md "Start-up repair" for one session directory: removes *.tmp,
 * cuts a torn tail, drops entries whose file is missing or of the wrong size
 * (rewriting the index atomically), removes unlisted segment files. */
int archive_session_repair(int dirfd, struct archive_scan *ret);
/* Removes the layout's files in dirfd's child `name` and then the directory;
 * files of other names stay (and so does the directory: -ENOTEMPTY). */
int archive_remove_dir(int dirfd, const char *name);

/* ---- sync.c ----------------------------------------------------------- */

struct archive_sync;

struct archive_sync *archive_sync_new(unsigned threads);
void archive_sync_free(struct archive_sync *sy);
/* fsyncs every fd of fds (n of them) with the pool's threads; ret_err[i] gets
 * 0 or -errno per fd. Returns the first error or 0. Called by one thread. */
int archive_sync_all(struct archive_sync *sy, const int *fds, size_t n, int *ret_err);

/* ---- sessions (writer thread) ----------------------------------------- */

struct archive_sess {
	uint8_t sentinel[16], session[16];
	struct layout_session meta;
	bool live;
	bool end_from_bus;   /* endTime is ingest's endedAt, not derived */
	bool created;        /* directory and session.json exist */
	bool meta_dirty;     /* session.json must be rewritten */
	bool repaired;       /* the start-up repair is done: the figures below are known */
	bool broken;         /* the repair failed: neither written to nor deleted by retention */
	bool deleting;       /* a hard delete waits for its audit record (delete.c) */
	uint32_t slot;       /* ring sentinel slot, UINT32_MAX: unknown */
	int64_t last_seq;    /* last indexed sequence, -1 none */
	int64_t batch_seq;   /* last sequence taken into the current batch */
	int64_t last_end_ms; /* of the last indexed segment, -1 none */
	uint64_t bytes;
	uint64_t index_size;
	int dir_fd, index_fd; /* -1 while closed */
	int64_t used_mono_ms; /* last write, for closing idle fds */
	/* the current batch's index lines */
	char *lines;
	size_t lines_len, lines_cap;
	bool in_batch;
	int batch_err;
};

/* ---- the stage -------------------------------------------------------- */

enum archive_ev_kind {
	ARCHIVE_EV_ONLINE,
	ARCHIVE_EV_OFFLINE,
	ARCHIVE_EV_DELETE,
	ARCHIVE_EV_CONFIG,
	ARCHIVE_EV_DELETED, /* a reply, writer -> stage thread */
	ARCHIVE_EV_RECORD,  /* a delete's record to make durable, writer -> stage thread */
	ARCHIVE_EV_COMMIT,  /* it is durable: delete (stage thread -> writer) */
	ARCHIVE_EV_ABORT,   /* it could not be written: undo the intent */
	ARCHIVE_EV_MARK,    /* mark.add: store ev->mark */
	ARCHIVE_EV_MARKED,  /* its reply: status, error, the mark stored */
};

struct archive_ev {
	struct archive_ev *next;
	enum archive_ev_kind kind;
	uint8_t sentinel[16], session[16];
	bool ids_ok;
	char name[128];
	int64_t time_ms; /* startedAt / endedAt */
	uint32_t slot;
	int64_t ref;
	int status;
	char error[160];
	int64_t retention_days;
	uint64_t max_bytes;
	/* session.delete, mark.add: who asked, for the audit record (empty: unknown) */
	char actor[128], role[16], remote[64];
	/* mark.add: the mark, the stage that asked (the answer goes there), the
	 * moment its sender stops waiting (unix ms, 0: none; a mark that reaches
	 * the writer later is not stored), and whether it was stored before. */
	struct mark mark;
	char from[BUS_NAME_MAX];
	int64_t deadline_ms;
	bool dup;
	/* ARCHIVE_EV_RECORD: the delete's audit record (JSON with its id) */
	char record[2048];
};

struct archive_figures {
	uint64_t segments_written, bytes_written;
	double lat_sum_ms, lat_max_ms;
	uint64_t lat_n;
	uint64_t sessions_live;
	uint64_t retention_deleted;
	uint64_t enospc;
	uint64_t lost;
	uint64_t fsyncs;
	double fsync_ms;           /* time spent in fsync batches */
	uint64_t min_free_bytes;   /* the floor now (floor.c), 0 before the first check */
	uint64_t min_free_deleted; /* sessions deleted to keep the floor */
	double ingest_rate;        /* bytes/s into the ring over the last minute */
};

#define ARCHIVE_FLOOR_MS     2000 /* archive.min_free is checked this often */
#define ARCHIVE_RATE_SAMPLES 31   /* a minute of them, for the ingest rate */

/* floor.c's state (writer thread). */
struct archive_floor {
	uint64_t bytes[ARCHIVE_RATE_SAMPLES]; /* the ring's bytes written */
	int64_t ms[ARCHIVE_RATE_SAMPLES];     /* when (monotonic) */
	size_t n, next;
	double rate;
	uint64_t floor_bytes; /* the floor as last worked out; 0: none */
	bool below;
	int64_t stuck_log_ms;
};

#define ARCHIVE_BATCH_MAX   64
#define ARCHIVE_BATCH_BYTES (16u << 20)
#define ARCHIVE_TOMBS       1024

#define ARCHIVE_LOST_RUNS 16

#define ARCHIVE_MARKS_RECORDED 256

struct archive_shadow {
	uint64_t index; /* UINT64_MAX: nothing seen */
	uint8_t session[16];
	int64_t sequence;
};

/* A run of consecutive sequences of one session lost to the ring. */
struct archive_lost {
	uint8_t session[16];
	int64_t from, to;
};

struct archive_item {
	struct ring_seg meta;
	struct archive_sess *sess; /* NULL: dropped */
	size_t off;                /* bytes in the arena */
	int64_t read_mono_us;
	int fd; /* the .tmp while phase 1..3 */
	int err;
	int tries;
	struct layout_entry entry;
};

struct archive {
	struct stage *st;
	struct alog *alog; /* the audit log's writer (alog.h); NULL: it could not open */
	char *data_dir;
	int data_fd;
	struct ring *ring;
	struct ring_stats rs;
	struct archive_sync *sync;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;
	atomic_uint_fast64_t next_shared; /* the writer's ring position, for backlog */
	atomic_bool stalled_shared;       /* the writer waits for the disk */
	atomic_int stall_err;             /* why (-errno) while stalled */

	pthread_mutex_t mu; /* guards what follows up to the writer's own state */
	pthread_cond_t cond;
	struct archive_ev *evq, **evq_tail; /* stage thread -> writer */
	size_t evq_len;
	struct archive_ev *rq, **rq_tail; /* writer -> stage thread */
	int reply_efd;
	struct archive_figures fig;
	int64_t retention_days;
	uint64_t max_bytes;
	struct cfg_floor min_free;

	/* The writer thread's own state. */
	char del_src[48]; /* "archive.<boot>": the ids of the delete records (delete.c) */
	uint64_t del_n;
	struct archive_sess **sess;
	size_t n_sess, cap_sess;
	struct archive_sess **by_slot;
	uint32_t n_slots;
	uint64_t total_bytes; /* of the repaired sessions */
	size_t n_unrepaired;  /* sessions catalogued at start and not repaired yet */
	bool catalog_done;
	uint64_t next; /* ring index of the next segment to read */
	bool read_any; /* a read succeeded: overruns from now on are losses */
	uint8_t tombs[ARCHIVE_TOMBS][16];
	size_t n_tombs;
	uint8_t *arena;
	size_t arena_size;
	uint8_t *init_buf;
	size_t init_size;
	struct archive_item batch[ARCHIVE_BATCH_MAX];
	size_t batch_n;
	bool stalled; /* a write failed: the batch waits for a retry */
	bool stalled_enospc;
	int64_t stall_since_ms, retry_mono_ms;
	/* What each recent ring index held (from its descriptor, read while fresh),
	 * so that a segment overwritten before archive stored it is logged by its
	 * session and sequence. n_slots entries, index % n_slots. */
	struct archive_shadow *shadow;
	uint64_t shadow_next;
	struct archive_lost lost[ARCHIVE_LOST_RUNS];
	size_t n_lost;
	uint64_t lost_unknown;
	int64_t last_guard_log_ms;
	/* The stage thread's: the marks this process recorded in the audit log
	 * lately (a sender's retry of one is not recorded twice). */
	uint8_t marks_recorded[ARCHIVE_MARKS_RECORDED][16];
	size_t n_marks_recorded;
	int64_t last_floor_guard_log_ms;
	struct archive_floor floor;
};

/* loop.c */
struct archive *archive_new(struct stage *st);
int archive_run(struct archive *ar);
void archive_free(struct archive *ar);
/* Stage thread -> writer (ev is the writer's then: it frees or replies). */
void archive_push(struct archive *ar, struct archive_ev *ev);
/* Writer -> stage thread. */
void archive_reply(struct archive *ar, struct archive_ev *ev);

/* mark_bus.c (stage thread): mark.add from the bus, to the writer; and the
 * writer's ARCHIVE_EV_MARKED, recorded in the audit log and answered with
 * mark.added (ev is freed). */
void archive_mark_msg(struct archive *ar, const struct bus_msg *msg);
void archive_mark_done(struct archive *ar, struct archive_ev *ev);

/* writer.c */
int archive_writer_start(struct archive *ar);
void archive_writer_stop(struct archive *ar);
/* fsyncs fds[0..n) together (sync.c) and adds the time to the figures. */
void archive_writer_sync(struct archive *ar, int *fds, int *errs, size_t n);

/* session.c (writer thread) */
#define ARCHIVE_CREATE_MAX 32 /* new sessions made together */

/* Closes the fds of a session (before removal, and for idle ended sessions). */
void archive_sess_close(struct archive_sess *s);
/* The session's directory (made if need be) and index, open. */
int archive_sess_open(struct archive *ar, struct archive_sess *s);
/* Rewrites session.json if it changed. */
void archive_sess_flush(struct archive *ar, struct archive_sess *s);
struct archive_sess *archive_sess_by_id(struct archive *ar, const uint8_t session[16]);
/* The session a ring segment belongs to; NULL when it is not to be stored
 * (deleted, or no longer named by the ring's table: *skipped counts those). */
struct archive_sess *archive_sess_for(struct archive *ar, const struct ring_seg *m,
				      uint64_t *skipped);
/* The init file the segment decodes with, stored if it is not yet. */
int archive_sess_init(struct archive *ar, struct archive_sess *s, const struct ring_seg *m);
void archive_sess_poll_inits(struct archive *ar);
/* The sessions of ss (n, NULLs allowed) that have no directory yet, made together. */
void archive_sess_create_all(struct archive *ar, struct archive_sess **ss, size_t n);
/* sentinel.online: returns a new session whose directory is still to be made. */
struct archive_sess *archive_sess_online(struct archive *ar, const struct archive_ev *ev);
void archive_sess_offline(struct archive *ar, const struct archive_ev *ev);
/* A live session the ring's table names and the catalogue does not have yet
 * (its sentinel.online is still on its way): catalogued now. NULL otherwise. */
struct archive_sess *archive_sess_from_table(struct archive *ar, const uint8_t sentinel[16],
					     const uint8_t session[16]);
/* Compares the live sessions with the ring's table; at start also ends the
 * sessions left live by a crash and takes on online sentinels never heard of. */
void archive_sess_check_table(struct archive *ar, bool start);
void archive_sess_count_live(struct archive *ar);

/* retention.c: the catalogue (writer thread) */
int archive_catalog_load(struct archive *ar);
/* Before anything is appended to a session catalogued at start. */
int archive_sess_repair(struct archive *ar, struct archive_sess *s);
/* Repairs up to n of the sessions left for later; true while some remain. */
bool archive_catalog_step(struct archive *ar, unsigned n);
struct archive_sess *archive_sess_find(struct archive *ar, const uint8_t sentinel[16],
				       const uint8_t session[16]);
struct archive_sess *archive_sess_add(struct archive *ar, const uint8_t sentinel[16],
				      const uint8_t session[16]);
void archive_sess_free_all(struct archive *ar);
bool archive_tombstoned(const struct archive *ar, const uint8_t session[16]);
/* The id appended to data_dir/.deleted-sessions, durably (past twice the
 * memory's worth, the file is rewritten with what memory holds). -errno. */
int archive_tombs_add(struct archive *ar, const uint8_t session[16]);
/* Removes s completely and frees it: renamed out of the way first (one
 * atomic step that readers see), made durable, then emptied. -errno when the
 * rename failed (s is kept). */
int archive_sess_remove(struct archive *ar, struct archive_sess *s);
/* A pass; enospc aims at 80 % of the archive's bytes. Below archive.min_free
 * it also deletes the oldest ended sessions until the floor is reached. */
void archive_retention(struct archive *ar, bool enospc);

/* delete.c: session.delete's steps. Writer thread: ARCHIVE_EV_DELETE becomes
 * ARCHIVE_EV_RECORD (the intent is written) or ARCHIVE_EV_DELETED (refused:
 * 404, 409, 500, 503); ARCHIVE_EV_COMMIT and ARCHIVE_EV_ABORT become
 * ARCHIVE_EV_DELETED (204, 500; 503). ev->status and ev->error say how. */
void archive_delete_begin(struct archive *ar, struct archive_ev *ev);
void archive_delete_end(struct archive *ar, struct archive_ev *ev);
/* Stage thread: ARCHIVE_EV_RECORD to the audit writer; its outcome (an
 * alog_own_fn, ctx the archive) back to the writer thread. */
void archive_delete_record(struct archive *ar, struct archive_ev *ev);
void archive_delete_recorded(void *ctx, void *own, int status);
/* Stage thread, at start, before the writer thread and any record: the
 * deletes a crash interrupted are finished (their record is in the log) or
 * undone (it is not). */
void archive_delete_recover(struct archive *ar);

/* mark.c (writer thread): stores ev->mark with its session, durably, or says
 * why not: ev->status 201 (stored now, or before: ev->dup, ev->mark the stored
 * one), 400 (at outside the session), 404, 409 (deleted, or full), 500. */
void archive_mark_add(struct archive *ar, struct archive_ev *ev);
/* floor.c (writer thread) */
/* Every ARCHIVE_FLOOR_MS: the rate, the volume, the floor; a pass below it. */
void archive_floor_check(struct archive *ar);
/* Bytes to delete now to be back at the floor (0: above it, or no floor). */
uint64_t archive_floor_need(struct archive *ar);
/* The floor in bytes for a volume of volume bytes and an ingest rate. */
uint64_t archive_floor_bytes(const struct cfg_floor *f, uint64_t volume, double rate);

#endif
