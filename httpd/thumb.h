/* thumb: thumbnails of a session's recording, for the web app's timeline
 * (docs/httpd.md, "Thumbnails"): GET .../sessions/{sessionId}/thumbs lists
 * them, GET .../thumbs/{n}.jpg is one.
 *
 * Slot n is the time first + n * THUMB_EVERY_MS, first being the start of the
 * session's first segment (the sentinel's clock, as the playlist's times), for
 * every slot before the end of its last segment. A slot inside a gap (no
 * segment for THUMB_GAP_MS or more) has no picture. The picture of a slot is
 * the first frame of the join point (keyframe segment) nearest to its time,
 * not across a gap, scaled to THUMB_WIDTH.
 *
 *   thumb_pick.c  the slots, gaps and join points of a segment list (pure)
 *   thumb.c       the routes, the cache in the session's directory, the jobs
 *                 (loop thread)
 *   thumb_make.c  one job: files in, JPEG out, cache written (worker threads)
 */
#ifndef VIGIL_HTTPD_THUMB_H
#define VIGIL_HTTPD_THUMB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "archive_read.h"
#include "id.h"
#include "work.h"

#define THUMB_EVERY_MS 10000 /* one thumbnail every 10 s of the session */
#define THUMB_WIDTH    160   /* pixels; a narrower video keeps its own width */
#define THUMB_GAP_MS   2000  /* between two segments, this much or more is a gap */
#define THUMB_WORKERS  4     /* decoding threads at most: one per two cores, at least one */
#define THUMB_QUEUE    32    /* jobs waiting or running; more are 503 */
#define THUMB_WAIT_MS  15000 /* a request waits this long for its job, then 503 */

struct httpd;
struct hreq;

/* ---- thumb.c (loop thread) ---- */
void thumb_init(struct httpd *h);
void thumb_free(struct httpd *h);
/* Jobs done: the requests that wait for them are answered. */
void thumb_service(struct httpd *h);
/* GET .../thumbs and GET .../thumbs/{n}.jpg. */
void thumb_list_get(struct httpd *h, struct hreq *r);
void thumb_get(struct httpd *h, struct hreq *r);

/* ---- thumb_make.c (a worker thread) ---- */
/* One thumbnail to make. thumb.c fills the input; from work_submit until
 * work_done hands it back only the worker touches it. */
struct thumb_job {
	struct work_job wj; /* first: the worker's view of it */
	int id;             /* thumb.c's: the ref requests park with */
	int data_fd;
	char dir[2 * ID_STR_LEN]; /* "{sentinelId}/{sessionId}" beneath data_fd */
	char init_name[32], seg_name[32], thumb_name[64];
	uint64_t seg_bytes; /* the index's size of the segment */
	/* out */
	int err;             /* 0, or -errno as snapshot_jpeg_scaled, -ENOENT for a file gone */
	unsigned char *jpeg; /* malloc'ed */
	size_t len;
	bool cached; /* the JPEG is in the session's directory now */
};

/* Reads the init and the segment, decodes the segment's first picture
 * scaled to THUMB_WIDTH, and keeps it as dir/thumb_name (written whole:
 * files_replace), unless the session was removed meanwhile. */
void thumb_make(struct work_job *wj);
/* A cached thumbnail that is whole: a JPEG from its first to its last byte. */
bool thumb_file_ok(int fd, uint64_t size);

/* ---- thumb_pick.c (pure; v ascending by sequence and start time) ---- */
struct thumb_gap {
	int64_t from_ms, to_ms;
};

/* The number of slots of the segments v[0..n): 0 without segments. */
int64_t thumb_count(const struct ar_seg *v, size_t n);
/* Slot's time (unix ms); v must not be empty. */
int64_t thumb_at(const struct ar_seg *v, int64_t slot);
/* The index in v of the join point whose picture slot shows. -ERANGE for a
 * slot outside 0..thumb_count-1; -ENOENT when the slot lies in a gap (*ret_gap,
 * which may be NULL, says which); -ENODATA when no keyframe segment is within
 * the slot's run of segments. */
int thumb_pick(const struct ar_seg *v, size_t n, int64_t slot, size_t *ret_index,
	       struct thumb_gap *ret_gap);
/* The gaps between v's segments, in order: ret[0..max) filled, the count
 * returned (it may exceed max: the rest were not stored). */
size_t thumb_gaps(const struct ar_seg *v, size_t n, struct thumb_gap *ret, size_t max);

#endif
