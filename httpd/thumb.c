/* thumb: the thumbnail routes (thumb.h). A thumbnail is served from the
 * session's directory when it was made before (the cache: one open, one
 * fstat, two small reads, then sendfile); otherwise a job goes to one of
 * the worker threads (work.h), the request waits parked, and every
 * request for the same thumbnail waits for the same job. Decoding never runs
 * in the loop thread, at most one job per two cores runs at once, at most
 * THUMB_QUEUE jobs exist, and more requests get 503.
 * Served thumbnails count as history reads (record.c). Loop thread. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "forget.h"
#include "httpd.h"
#include "layout.h"
#include "log.h"
#include "snapshot.h"
#include "thumb.h"

#define THUMB_GAPS_MAX 1000 /* gaps listed; a session with more lists the first ones */

/* A job in flight and the requests parked on it (by ref). */
struct thumb_slot {
	bool used, done;
	int ref;
	char session[ID_STR_LEN];
	int64_t n;
	struct hbuf *jpeg; /* when done without error */
	int err;
};

struct thumb {
	struct work *w[THUMB_WORKERS];
	unsigned jobs[THUMB_WORKERS]; /* per worker, waiting or running */
	int workers;
	struct thumb_slot s[THUMB_QUEUE];
	int next_ref;
};

static void
thumb_job_free(struct work_job *wj)
{
	struct thumb_job *j = (struct thumb_job *)wj;

	free(j->jpeg);
	free(j);
}

void
thumb_init(struct httpd *h)
{
	struct thumb *t = calloc(1, sizeof(*t));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	/* Half the cores: decoding never takes the cores the loop and the other
	 * stages run on (GStreamer adds a streaming thread per pipeline). */
	int want = cpus >= 2 * THUMB_WORKERS ? THUMB_WORKERS : cpus >= 4 ? (int)(cpus / 2) : 1;

	if (t == NULL)
		return;
	for (int i = 0; i < want; i++) {
		t->w[t->workers] = work_new(h);
		if (t->w[t->workers] != NULL)
			t->workers++;
	}
	if (t->workers == 0)
		log_error(0, "no thumbnail worker started: thumbnails not cached yet answer 503");
	h->thumb = t;
}

void
thumb_free(struct httpd *h)
{
	struct thumb *t = h->thumb;

	if (t == NULL)
		return;
	for (int i = 0; i < t->workers; i++)
		work_free(t->w[i], thumb_job_free);
	for (int i = 0; i < THUMB_QUEUE; i++)
		hbuf_unref(t->s[i].jpeg);
	free(t);
	h->thumb = NULL;
}

static struct thumb_slot *
thumb_slot_by_ref(struct thumb *t, int ref)
{
	for (int i = 0; i < THUMB_QUEUE; i++)
		if (t->s[i].used && t->s[i].ref == ref)
			return &t->s[i];
	return NULL;
}

void
thumb_service(struct httpd *h)
{
	struct thumb *t = h->thumb;

	if (t == NULL)
		return;
	for (int w = 0; w < t->workers; w++) {
		struct work_job *done = work_done(t->w[w]);

		while (done != NULL) {
			struct thumb_job *j = (struct thumb_job *)done;
			struct thumb_slot *s = thumb_slot_by_ref(t, j->id);

			done = done->next;
			t->jobs[w]--;
			assert(s != NULL); /* a slot stays until its job is back */
			if (j->err == 0) {
				h->stats.thumbs_made++;
				s->jpeg = hbuf_new(j->len);
				if (s->jpeg != NULL)
					memcpy(s->jpeg->data, j->jpeg, j->len);
			}
			s->err = j->err == 0 && s->jpeg == NULL ? -ENOMEM : j->err;
			if (s->err < 0 && s->err != -ENOENT)
				log_warn(s->err, "thumbnail %lld of session %s not made",
					 (long long)s->n, s->session);
			s->done = true;
			thumb_job_free(&j->wj);
			/* The waiting requests take the result now; then it goes
			 * (the next ones find the cached file). */
			hs_unpark(h, HS_PARK_THUMB, s->ref);
			hbuf_unref(s->jpeg);
			memset(s, 0, sizeof(*s));
		}
	}
}

/* Strong enough for an immutable answer: the slot, its size, its length. */
static void
thumb_etag(int64_t n, size_t len, char etag[HTTPD_ETAG_MAX])
{
	snprintf(etag, HTTPD_ETAG_MAX, "\"th-%d-%d-%lld-%zu\"", THUMB_EVERY_MS / 1000, THUMB_WIDTH,
		 (long long)n, len);
}

static void
thumb_answer_mem(struct hreq *r, int64_t n, struct hbuf *jpeg)
{
	char etag[HTTPD_ETAG_MAX];
	struct hbody b = { 0 };

	thumb_etag(n, jpeg->len, etag);
	if (body_add_mem(&b, jpeg, 0, jpeg->len) < 0) {
		hs_error(r, 500, "out of memory");
		return;
	}
	hs_bytes(r, "image/jpeg", &b, etag, NULL, "private, max-age=31536000, immutable");
	body_free(&b);
}

/* The cached file, when it is there and whole: answered, true. */
static bool
thumb_from_cache(struct httpd *h, struct hreq *r, const char *path, int64_t n)
{
	char etag[HTTPD_ETAG_MAX];
	struct hbody b = { 0 };
	struct stat sb;
	bool ok;
	int fd = beneath_open_file(ar_data_fd(h), path, &sb);

	if (fd < 0)
		return false;
	ok = thumb_file_ok(fd, (uint64_t)sb.st_size);
	close(fd);
	if (!ok)
		return false; /* made again, and replaced */
	thumb_etag(n, (size_t)sb.st_size, etag);
	if (body_add_file(&b, ar_data_fd(h), path, 0, (uint64_t)sb.st_size) < 0) {
		hs_error(r, 500, "out of memory");
		return true;
	}
	h->stats.thumbs_cached++;
	hs_bytes(r, "image/jpeg", &b, etag, NULL, "private, max-age=31536000, immutable");
	body_free(&b);
	return true;
}

/* A job's outcome, for a request that waited for it. */
static void
thumb_answer_job(struct httpd *h, struct hreq *r, const struct thumb_slot *s)
{
	if (ar_forgotten(h, s->session)) {
		hs_error(r, 404, "session %s not found", s->session);
		return;
	}
	switch (s->err) {
	case 0:
		thumb_answer_mem(r, s->n, s->jpeg);
		break;
	case -ENOENT:
		hs_error(r, 404, "thumbnail %lld: the recording's files are gone", (long long)s->n);
		break;
	case -ETIMEDOUT:
	case -ENOMEM:
	case -EIO:
		hs_retry_after(r, 2);
		hs_error(r, 503, "thumbnail %lld could not be made now (%s); retry",
			 (long long)s->n, strerror(-s->err));
		break;
	default:
		hs_error(r, 500, "thumbnail %lld: the recording could not be decoded (%s)",
			 (long long)s->n, strerror(-s->err));
		break;
	}
}

/* The job for the route's thumbnail, whose picture is segment g (on disk):
 * a new one, or the one already making it. The request is parked on it, or
 * answered 503 when there is no room. */
static void
thumb_submit(struct httpd *h, struct hreq *r, const struct ar_sess *ss, const struct ar_seg *g,
	     const char *thumb_name)
{
	struct thumb *t = h->thumb;
	const struct route *rt = hs_route(r);
	struct thumb_slot *s = NULL;
	struct thumb_job *j;
	int w = 0;

	for (int i = 0; i < THUMB_QUEUE; i++) {
		struct thumb_slot *x = &t->s[i];

		if (x->used && x->n == rt->sequence && strcmp(x->session, ss->session) == 0) {
			hs_park(r, HS_PARK_THUMB, x->ref, THUMB_WAIT_MS);
			return; /* the same thumbnail is being made */
		}
		if (!x->used && s == NULL)
			s = x;
	}
	if (t->workers == 0 || s == NULL) {
		hs_retry_after(r, 1);
		hs_error(r, 503, "%s",
			 t->workers == 0 ? "no thumbnail worker is running"
					 : "too many thumbnails being made; retry");
		return;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		hs_error(r, 500, "out of memory");
		return;
	}
	for (int i = 1; i < t->workers; i++)
		if (t->jobs[i] < t->jobs[w])
			w = i;
	if (++t->next_ref <= 0)
		t->next_ref = 1;
	*s = (struct thumb_slot){ .used = true, .ref = t->next_ref, .n = rt->sequence };
	snprintf(s->session, sizeof(s->session), "%s", ss->session);
	j->wj.run = thumb_make;
	j->id = s->ref;
	j->data_fd = ar_data_fd(h);
	snprintf(j->dir, sizeof(j->dir), "%s/%s", ss->sentinel, ss->session);
	layout_init_name((uint32_t)g->init, j->init_name, sizeof(j->init_name));
	layout_seg_name(g->sequence, j->seg_name, sizeof(j->seg_name));
	snprintf(j->thumb_name, sizeof(j->thumb_name), "%s", thumb_name);
	j->seg_bytes = g->bytes;
	t->jobs[w]++;
	work_submit(t->w[w], &j->wj);
	hs_park(r, HS_PARK_THUMB, s->ref, THUMB_WAIT_MS);
}

/* A request that waited: its job's outcome, or 503 when it took too long. */
static void
thumb_resumed(struct httpd *h, struct hreq *r)
{
	struct thumb_slot *s = thumb_slot_by_ref(h->thumb, hs_park_ref(r));

	if (s != NULL && s->done) {
		thumb_answer_job(h, r, s);
		return;
	}
	hs_retry_after(r, 2);
	hs_error(r, 503, "the thumbnail is taking too long; retry");
}

/* The session's segments for a thumbnail route; false when answered. */
static bool
thumb_session(struct httpd *h, struct hreq *r, struct ar_sess *ret_s, struct ar_seglist *ret_l)
{
	const struct route *rt = hs_route(r);

	if (ar_session(h, rt->sentinel, rt->session, ret_s) < 0) {
		hs_error(r, 404, "session %s of sentinel %s not found", rt->session, rt->sentinel);
		return false;
	}
	if (ar_segments(h, ret_s, ret_l) < 0) {
		hs_error(r, 500, "out of memory");
		return false;
	}
	return true;
}

void
thumb_get(struct httpd *h, struct hreq *r)
{
	const struct route *rt = hs_route(r);
	char name[64], path[160];
	struct thumb_gap gap;
	struct ar_seglist l;
	struct ar_sess s;
	size_t k;
	int err;

	if (h->thumb == NULL) {
		hs_error(r, 500, "out of memory");
		return;
	}
	if (hs_park_ref(r) >= 0) {
		thumb_resumed(h, r);
		return;
	}
	if (!thumb_session(h, r, &s, &l))
		return;
	err = thumb_pick(l.v, l.n, rt->sequence, &k, &gap);
	if (err == -ERANGE && l.n == 0)
		hs_error(r, 404, "no thumbnail %lld: session %s has no video yet",
			 (long long)rt->sequence, s.session);
	else if (err == -ERANGE)
		hs_error(r, 404, "no thumbnail %lld: session %s has %lld (0 to %lld)",
			 (long long)rt->sequence, s.session, (long long)thumb_count(l.v, l.n),
			 (long long)thumb_count(l.v, l.n) - 1);
	else if (err == -ENOENT)
		hs_error(r, 404,
			 "no thumbnail %lld: the recording has a gap there, from %lld to %lld "
			 "(unix ms)",
			 (long long)rt->sequence, (long long)gap.from_ms, (long long)gap.to_ms);
	else if (err < 0)
		hs_error(r, 404, "no thumbnail %lld: no keyframe near it", (long long)rt->sequence);
	if (err < 0)
		goto out;
	layout_thumb_name(THUMB_EVERY_MS / 1000, THUMB_WIDTH, rt->sequence, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s/%s", s.sentinel, s.session, name);
	if (thumb_from_cache(h, r, path, rt->sequence))
		goto out;
	if (l.v[k].ring) {
		/* Archive has not stored it yet (it is behind, or down). */
		hs_retry_after(r, 1);
		hs_error(r, 503, "thumbnail %lld: its segment is not archived yet; retry",
			 (long long)rt->sequence);
		goto out;
	}
	thumb_submit(h, r, &s, &l.v[k], name);
out:
	ar_seglist_free(&l);
}

static void
thumb_gap_json(json_t *arr, int64_t from, int64_t to)
{
	if (arr != NULL)
		json_array_append_new(arr, json_pack("{s:I, s:I}", "from", (json_int_t)from, "to",
						     (json_int_t)to));
}

void
thumb_list_get(struct httpd *h, struct hreq *r)
{
	struct thumb_gap gaps[64], *all = gaps;
	struct ar_seglist l;
	struct ar_sess s;
	json_t *thumbs, *jg, *o = NULL;
	size_t ng;
	int64_t count;
	int w, ht;

	if (!thumb_session(h, r, &s, &l))
		return;
	thumbs = json_array();
	jg = json_array();
	count = thumb_count(l.v, l.n);
	for (int64_t n = 0; thumbs != NULL && n < count; n++) {
		size_t k;

		if (thumb_pick(l.v, l.n, n, &k, NULL) == 0)
			json_array_append_new(thumbs,
					      json_pack("{s:I, s:I}", "n", (json_int_t)n, "at",
							(json_int_t)thumb_at(l.v, n)));
	}
	ng = thumb_gaps(l.v, l.n, gaps, 64);
	if (ng > 64) {
		size_t want = ng < THUMB_GAPS_MAX ? ng : THUMB_GAPS_MAX;

		all = malloc(want * sizeof(*all));
		ng = all != NULL ? thumb_gaps(l.v, l.n, all, want) : 0;
		if (ng > want)
			ng = want;
	}
	/* Before the first segment and after the last one of an ended session
	 * too: the timeline spans the session's whole time. */
	if (l.n > 0 && l.v[0].start_ms - s.start_ms >= THUMB_GAP_MS)
		thumb_gap_json(jg, s.start_ms, l.v[0].start_ms);
	for (size_t i = 0; i < ng; i++)
		thumb_gap_json(jg, all[i].from_ms, all[i].to_ms);
	if (l.n > 0 && s.end_ms >= 0 &&
	    s.end_ms - (l.v[l.n - 1].start_ms + l.v[l.n - 1].duration_ms) >= THUMB_GAP_MS)
		thumb_gap_json(jg, l.v[l.n - 1].start_ms + l.v[l.n - 1].duration_ms, s.end_ms);
	if (all != gaps)
		free(all);
	snapshot_scale((int)s.width, (int)s.height, THUMB_WIDTH, &w, &ht);
	if (thumbs != NULL && jg != NULL)
		/* Steals thumbs and jg, even when it fails. */
		o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:I, s:o, s:o}", "sentinelId", s.sentinel,
			      "sessionId", s.session, "every", THUMB_EVERY_MS, "width", w, "height",
			      ht, "count", (json_int_t)count, "thumbs", thumbs, "gaps", jg);
	else {
		json_decref(thumbs);
		json_decref(jg);
	}
	ar_seglist_free(&l);
	if (o == NULL)
		hs_error(r, 500, "out of memory");
	else
		hs_json(r, 200, o);
}
