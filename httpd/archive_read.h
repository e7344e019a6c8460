/* archive_read: what vigil-httpd knows of recordings, the archive's layout
 * (common/layout.h) merged with the segments the ring still holds. */
#ifndef VIGIL_HTTPD_ARCHIVE_READ_H
#define VIGIL_HTTPD_ARCHIVE_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "body.h"

struct httpd;

/* One segment of a session, from the archive's index or only from the ring. */
struct ar_seg {
	int64_t sequence, start_ms;
	uint32_t duration_ms;
	uint64_t bytes;
	bool keyframe;
	int init;  /* file generation: 0 = init.mp4, K = init-K.mp4 */
	bool ring; /* not in the index (yet): served from the ring */
	uint64_t ring_index;
	char sha256[65]; /* "" for ring-only segments */
};

struct ar_seglist {
	struct ar_seg *v;
	size_t n, cap;
};

/* A session as the archive wrote it, or as the ring shows it before that. */
struct ar_sess {
	char sentinel[37], session[37];
	char name[128], codec[64];
	int64_t width, height, timescale;
	int64_t start_ms, end_ms; /* end_ms -1: live (endTime null) */
	int inits;
	bool on_disk;
	int ring_slot; /* the sentinel's ring slot while this is its session, else -1 */
};

int ar_session(struct httpd *h, const char *sentinel, const char *session, struct ar_sess *ret);
/* Ascending sequence; index lines first, the ring's segments not yet indexed
 * after them. -ENOMEM. */
int ar_segments(struct httpd *h, const struct ar_sess *s, struct ar_seglist *ret);
void ar_seglist_free(struct ar_seglist *l);
/* One segment by sequence: the index, else the ring (newest first). -ENOENT. */
int ar_segment_find(struct httpd *h, const struct ar_sess *s, int64_t sequence, struct ar_seg *ret);
const struct ar_seg *ar_seglist_find(const struct ar_seglist *l, int64_t sequence);
/* [Sentinel] (PROTOCOL.md section 5's shape), online and archived. */
json_t *ar_sentinels_json(struct httpd *h);
/* -ENOENT for a sentinel neither archived nor in the ring. */
int ar_sessions_json(struct httpd *h, const char *sentinel, json_t **ret);
json_t *ar_segments_json(const struct ar_sess *s, const struct ar_seglist *l);
/* Adds the segment's bytes to b and gives its strong ETag. -ENOENT when
 * neither the file nor the ring has it any more, -ENOMEM, -EBUSY (the memory
 * budget for ring copies is used up). */
int ar_segment_body(struct httpd *h, const struct ar_sess *s, const struct ar_seg *g,
		    struct hbody *b, char etag[HTTPD_ETAG_MAX]);
int ar_init_body(struct httpd *h, const struct ar_sess *s, int gen, struct hbody *b,
		 char etag[HTTPD_ETAG_MAX]);
/* Frees the cache of parsed index files (at exit). */
void ar_cache_free(void);
/* The ring slot of a sentinel id, or -1. */
int ar_ring_slot(struct httpd *h, const char *sentinel);
/* data_dir's fd (opened when first needed: archive may make it later), or -1. */
int ar_data_fd(struct httpd *h);

#endif
