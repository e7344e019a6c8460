/* snap: GET .../snapshot.jpg. The newest keyframe segment of the sentinel in
 * the ring, with its init, is decoded into a JPEG by snapshot.c's GStreamer
 * pipeline in a worker thread (it may take up to two seconds), only when
 * asked, and cached per sentinel: a picture stands while it comes from the
 * newest join point, and is at most a second old while the sentinel is
 * online. Requests wait (parked) for the worker. Everything but snap_worker
 * runs in the loop thread. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive_read.h"
#include "forget.h"
#include "httpd.h"
#include "id.h"
#include "log.h"
#include "proc.h"
#include "snap.h"
#ifdef VIGIL_HAVE_SNAPSHOT
#include "snapshot.h"
#endif

#define SNAP_FRESH_MS 1000
#define SNAP_WAIT_MS  5000
#define SNAP_CACHE    64

struct snap_entry {
	char sentinel[37];
	uint64_t ring_index; /* the segment the picture comes from */
	int64_t made_ms;     /* monotonic: when it was known to be the newest */
	struct hbuf *jpeg;
	bool busy; /* a job for it is queued or running */
	int64_t used_ms;
	int last_err;
};

struct snap_job {
	struct snap_job *next;
	int entry;
	uint64_t ring_index;
	unsigned char *init, *seg;
	size_t init_len, seg_len;
	/* result */
	unsigned char *jpeg;
	size_t jpeg_len;
	int err;
};

struct snap {
	struct snap_entry e[SNAP_CACHE];
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct snap_job *todo, *done;
	bool stop;
};

static void
snap_job_free(struct snap_job *j)
{
	if (j == NULL)
		return;
	free(j->init);
	free(j->seg);
	free(j->jpeg);
	free(j);
}

#ifdef VIGIL_HAVE_SNAPSHOT
/* The worker thread: decodes one job at a time, hands it back, wakes the loop. */
static void *
snap_worker(void *arg)
{
	struct httpd *h = arg;
	struct snap *s = h->snap;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct snap_job *j;

		while (!s->stop && s->todo == NULL)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->stop)
			break;
		j = s->todo;
		s->todo = j->next;
		pthread_mutex_unlock(&s->lock);
		j->err = snapshot_jpeg(j->init, j->init_len, j->seg, j->seg_len, &j->jpeg,
				       &j->jpeg_len, NULL, NULL);
		pthread_mutex_lock(&s->lock);
		j->next = s->done;
		s->done = j;
		hs_wake(h);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}
#endif

void
snap_init(struct httpd *h)
{
	struct snap *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	h->snap = s;
#ifdef VIGIL_HAVE_SNAPSHOT
	if (pthread_create(&s->thread, NULL, snap_worker, h) == 0)
		s->started = true;
	else
		log_error(0, "snapshot worker not started: snapshot.jpg answers 503");
#endif
}

void
snap_free(struct httpd *h)
{
	struct snap *s = h->snap;
	struct snap_job *j;

	if (s == NULL)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	while ((j = s->todo) != NULL) {
		s->todo = j->next;
		snap_job_free(j);
	}
	while ((j = s->done) != NULL) {
		s->done = j->next;
		snap_job_free(j);
	}
	for (int i = 0; i < SNAP_CACHE; i++)
		hbuf_unref(s->e[i].jpeg);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
	h->snap = NULL;
}

void
snap_service(struct httpd *h)
{
	struct snap *s = h->snap;
	struct snap_job *done, *j;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	done = s->done;
	s->done = NULL;
	pthread_mutex_unlock(&s->lock);
	if (done == NULL)
		return;
	while ((j = done) != NULL) {
		struct snap_entry *e = &s->e[j->entry];

		done = j->next;
		e->busy = false;
		e->last_err = j->err;
		if (j->err == 0) {
			struct hbuf *b = hbuf_new(j->jpeg_len);

			if (b != NULL) {
				memcpy(b->data, j->jpeg, j->jpeg_len);
				hbuf_unref(e->jpeg);
				e->jpeg = b;
				e->ring_index = j->ring_index;
				e->made_ms = proc_mono_ms();
				h->stats.snapshots++;
			}
		} else {
			log_warn(j->err, "snapshot of sentinel %s failed", e->sentinel);
		}
		snap_job_free(j);
	}
	hs_unpark(h, HS_PARK_SNAPSHOT, -1);
}

static struct snap_entry *
snap_entry(struct snap *s, const char *sentinel, int *ret_i)
{
	int lru = 0;

	for (int i = 0; i < SNAP_CACHE; i++) {
		if (strcmp(s->e[i].sentinel, sentinel) == 0) {
			*ret_i = i;
			return &s->e[i];
		}
		if (!s->e[i].busy && s->e[i].used_ms < s->e[lru].used_ms)
			lru = i;
	}
	if (s->e[lru].busy)
		return NULL;
	hbuf_unref(s->e[lru].jpeg);
	memset(&s->e[lru], 0, sizeof(s->e[lru]));
	snprintf(s->e[lru].sentinel, sizeof(s->e[lru].sentinel), "%s", sentinel);
	*ret_i = lru;
	return &s->e[lru];
}

static void
snap_answer(struct hreq *r, struct snap_entry *e)
{
	char etag[HTTPD_ETAG_MAX];
	struct hbody b = { 0 };

	snprintf(etag, sizeof(etag), "\"snap-%llu-%zu\"", (unsigned long long)e->ring_index,
		 e->jpeg->len);
	if (body_add_mem(&b, e->jpeg, 0, e->jpeg->len) < 0) {
		hs_error(r, 500, "out of memory");
		return;
	}
	hs_bytes(r, "image/jpeg", &b, etag, NULL, "no-cache");
	body_free(&b);
}

/* Copies the join point and its init out of the ring into a new job. */
static int
snap_job_new(struct httpd *h, int slot, uint64_t index, struct snap_job **ret)
{
	struct snap_job *j = calloc(1, sizeof(*j));
	struct ring_sentinel rs;
	struct ring_stats st;
	struct ring_seg m;
	const void *data;
	int r;

	if (j == NULL)
		return -ENOMEM;
	ring_get_stats(h->ring, &st);
	r = ring_peek(h->ring, index, &m, &data);
	if (r < 0)
		goto fail;
	j->seg = malloc(m.len);
	j->init = malloc(st.max_init_bytes);
	if (j->seg == NULL || j->init == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = ring_read(h->ring, index, &m, j->seg, m.len);
	if (r < 0)
		goto fail;
	j->seg_len = m.len;
	r = ring_sentinel_get(h->ring, (uint32_t)slot, &rs, j->init, st.max_init_bytes);
	if (r < 0)
		goto fail;
	if (rs.init_gen != m.init_gen || memcmp(rs.session, m.session, 16) != 0 ||
	    rs.init_len == 0) {
		r = -ENOENT; /* the segment's init is no longer the ring's */
		goto fail;
	}
	j->init_len = rs.init_len;
	j->ring_index = index;
	*ret = j;
	return 0;
fail:
	snap_job_free(j);
	return r;
}

void
snap_get(struct httpd *h, struct hreq *r)
{
	const char *sentinel = hs_route(r)->sentinel;
	struct snap *s = h->snap;
	struct snap_entry *e;
	struct snap_job *j;
	struct ring_sentinel rs;
	uint64_t index;
	int slot, ei, err;
	bool online;

	if (s == NULL || !s->started) {
		hs_error(r, 503, "snapshots are not available in this build");
		return;
	}
	slot = ar_ring_slot(h, sentinel);
	if (slot < 0 || ring_sentinel_get(h->ring, (uint32_t)slot, &rs, NULL, 0) < 0) {
		hs_error(r, 404, "sentinel %s has no picture in memory", sentinel);
		return;
	}
	if (ar_forgotten_id(h, rs.session)) {
		/* Its last session was hard-deleted: no picture of it, and the one
		 * cached goes too. */
		for (int i = 0; i < SNAP_CACHE; i++) {
			if (strcmp(s->e[i].sentinel, sentinel) == 0 && !s->e[i].busy) {
				hbuf_unref(s->e[i].jpeg);
				memset(&s->e[i], 0, sizeof(s->e[i]));
			}
		}
		hs_error(r, 404, "sentinel %s has no picture in memory", sentinel);
		return;
	}
	online = rs.online;
	e = snap_entry(s, sentinel, &ei);
	if (e == NULL) {
		hs_retry_after(r, 1);
		hs_error(r, 503, "every snapshot slot is busy; retry");
		return;
	}
	e->used_ms = proc_mono_ms();
	if (e->busy) {
		if (hs_park_ref(r) >= 0 && hs_parked_timed_out(r))
			hs_error(r, 503, "the snapshot took too long");
		else
			hs_park(r, HS_PARK_SNAPSHOT, 0, SNAP_WAIT_MS);
		return;
	}
	if (e->jpeg != NULL && (!online || proc_mono_ms() - e->made_ms <= SNAP_FRESH_MS)) {
		snap_answer(r, e);
		return;
	}
	err = ring_find_join(h->ring, (uint32_t)slot, rs.session, true, &index);
	if (err == 0 && e->jpeg != NULL && index == e->ring_index) {
		/* Still the newest join point: the picture is current. */
		e->made_ms = proc_mono_ms();
		snap_answer(r, e);
		return;
	}
	if (hs_park_ref(r) >= 0 && e->last_err < 0 && e->jpeg == NULL) {
		hs_error(r, 503, "the picture could not be decoded (%s)", strerror(-e->last_err));
		return;
	}
	if (err < 0 || (err = snap_job_new(h, slot, index, &j)) < 0) {
		if (e->jpeg != NULL)
			snap_answer(r, e);
		else
			hs_error(r, 404, "sentinel %s has no keyframe in memory", sentinel);
		return;
	}
	j->entry = ei;
	e->busy = true;
	pthread_mutex_lock(&s->lock);
	j->next = s->todo;
	s->todo = j;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	hs_park(r, HS_PARK_SNAPSHOT, 0, SNAP_WAIT_MS);
}
