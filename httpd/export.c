/* export: GET .../export.mp4, one playable fragmented MP4 of a session or a
 * part of it: the init segment, then every selected media segment as the
 * sentinel sent it, except that an export of a later part starts at time 0:
 * each fragment's decode time (tfdt) moves back by the first one's as it is
 * sent (the same length, so Range is unchanged; the archive's bytes stay as
 * they are). The body is a list of parts (files and ring copies), so an
 * export of hours streams in constant memory and its exact length is known
 * before the first byte; Range works across the parts. Loop thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "archive_read.h"
#include "beneath.h"
#include "export.h"
#include "record.h"
#include "server.h"
#include "httpd.h"
#include "log.h"
#include "xplan.h"

#define EXPORT_GENS_MAX 64              /* init generations in one export */
#define EXPORT_WAIT_MS  (5 * 60 * 1000) /* for the plan of a large export */

struct export_sel {
	bool by_seq, by_time;
	int64_t from, to;   /* sequences, inclusive */
	int64_t start, end; /* unix ms: segments overlapping [start, end) */
};

/* false after answering 400. */
static bool
export_args(struct hreq *r, struct export_sel *sel)
{
	static const char *const names[4] = { "from", "to", "start", "end" };
	int64_t *dst[4] = { &sel->from, &sel->to, &sel->start, &sel->end };
	char arg[32];

	*sel = (struct export_sel){ .from = 0, .to = INT64_MAX, .start = 0, .end = INT64_MAX };
	for (int i = 0; i < 4; i++) {
		if (!hs_arg(r, names[i], arg, sizeof(arg)))
			continue;
		if (route_parse_int(arg, dst[i]) < 0) {
			hs_error(r, 400, "%s must be a non-negative integer", names[i]);
			return false;
		}
		if (i < 2)
			sel->by_seq = true;
		else
			sel->by_time = true;
	}
	if (sel->by_seq && sel->by_time) {
		hs_error(r, 400,
			 "give either from/to (sequences) or start/end (unix ms), not both");
		return false;
	}
	if (sel->from > sel->to || sel->start >= sel->end) {
		hs_error(r, 400, "the range is empty (from > to, or start >= end)");
		return false;
	}
	return true;
}

/* The first selected segment's decode time, which the export starts at: 0
 * when it cannot be read (the export then keeps the session's times). The
 * part is the segment just added, a ring copy or a file beneath data_dir. */
static uint64_t
export_base(const struct fmp4_init *init, const struct hpart *pt)
{
	struct fmp4_seg seg;
	struct hbuf *b = NULL;
	const uint8_t *data;
	struct stat sb;
	char err[160];
	uint64_t base = 0;
	int fd;

	if (pt->mem != NULL) {
		data = pt->mem->data + pt->off;
	} else {
		fd = beneath_open_file(pt->dirfd, pt->path, &sb);
		if (fd < 0)
			return 0;
		b = (uint64_t)sb.st_size == pt->len ? hbuf_new((size_t)pt->len) : NULL;
		if (b == NULL || pread(fd, b->data, b->len, 0) != (ssize_t)b->len) {
			close(fd);
			hbuf_unref(b);
			return 0;
		}
		close(fd);
		data = b->data;
	}
	if (fmp4_parse_segment(data, pt->len, init, &seg, err, sizeof(err)) == 0 &&
	    seg.has_decode_time)
		base = seg.decode_time;
	hbuf_unref(b);
	return base;
}

/* "{name}-{UTC start}.mp4" with only [A-Za-z0-9._-] (runs of anything else
 * become one '_'), so that the name is valid on every file system. */
static void
export_filename(char *buf, size_t size, const struct ar_sess *s, int64_t start_ms)
{
	char when[32];
	time_t t = (time_t)(start_ms / 1000);
	struct tm tm;
	size_t n = 0;

	for (const char *p = s->name; *p != '\0' && n + 1 < size && n < 80; p++) {
		bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			  (*p >= '0' && *p <= '9') || *p == '-' || *p == '.';

		if (ok)
			buf[n++] = *p;
		else if (n > 0 && buf[n - 1] != '_')
			buf[n++] = '_';
	}
	while (n > 0 && (buf[n - 1] == '_' || buf[n - 1] == '.'))
		n--;
	if (n == 0)
		n = (size_t)snprintf(buf, size, "vigil-%.8s", s->sentinel);
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(buf + n, size - n, "-%s.mp4", when);
}

static bool
export_selected(const struct export_sel *sel, const struct ar_seg *g)
{
	if (sel->by_time)
		return g->start_ms < sel->end && g->start_ms + (int64_t)g->duration_ms > sel->start;
	return g->sequence >= sel->from && g->sequence <= sel->to;
}

/* The session's init generations in the selection, ascending: each one's
 * init (parsed) becomes an entry of the export's stsd. */
struct export_gens {
	int gen[EXPORT_GENS_MAX];
	struct fmp4_init init[EXPORT_GENS_MAX];
	size_t n;
	bool opaque; /* one init that is not ours to parse: bytes sent as they are */
};

static int
export_gen_index(const struct export_gens *g, int gen)
{
	for (size_t i = 0; i < g->n; i++) {
		if (g->gen[i] == gen)
			return (int)i;
	}
	return -1;
}

/* The export's init: the first generation's, with the later ones' sample
 * entries when there are several. Answers r and returns < 0 on failure. */
static int
export_init(struct httpd *h, struct hreq *r, const struct ar_sess *s, struct export_gens *g,
	    struct hbody *b, EVP_MD_CTX *md)
{
	struct fmp4_src src[EXPORT_GENS_MAX];
	struct hbody ib = { 0 };
	char etag[HTTPD_ETAG_MAX];
	ssize_t n;
	int err = 0;

	for (size_t i = 0; i < g->n && err == 0; i++) {
		err = ar_init_body(h, s, g->gen[i], &ib, etag);
		if (err < 0) {
			hs_error(r, 404, "init generation %d of session %s is not available",
				 g->gen[i], s->session);
			break;
		}
		EVP_DigestUpdate(md, etag, strlen(etag));
		src[i] = (struct fmp4_src){ ib.v[i].mem->data, ib.v[i].len, &g->init[i] };
		err = fmp4_parse_init(src[i].buf, src[i].len, &g->init[i], NULL, 0);
		/* Everything ingest stored parses; a file put there by other means
		 * is exported as it is, alone, untouched. */
		g->opaque = err < 0 && g->n == 1;
		if (err < 0 && !g->opaque)
			hs_error(r, 500, "init generation %d of session %s does not parse",
				 g->gen[i], s->session);
		if (g->opaque)
			err = 0;
	}
	if (err == 0 && g->n == 1) {
		err = body_add_mem(b, ib.v[0].mem, 0, ib.v[0].len);
	} else if (err == 0) {
		n = fmp4_merge_inits(src, g->n, NULL, 0);
		for (size_t i = 1; n == -EDOM && i < g->n; i++) {
			if (g->init[i].timescale != g->init[0].timescale) {
				hs_error(r, 409,
					 "init generations %d and %d have different timescales (%u "
					 "and %u): export each part separately (from=/to=)",
					 g->gen[0], g->gen[i], g->init[0].timescale,
					 g->init[i].timescale);
				err = -EDOM;
				break;
			}
		}
		if (err == 0) {
			struct hbuf *m = n > 0 ? hbuf_new((size_t)n) : NULL;

			if (m == NULL || fmp4_merge_inits(src, g->n, m->data, m->len) != n ||
			    body_add_mem(b, m, 0, m->len) < 0)
				err = -ENOMEM;
			hbuf_unref(m);
		}
	}
	if (err == -ENOMEM)
		hs_error(r, 500, "out of memory");
	body_free(&ib);
	return err;
}

/* The selection's generations: -E2BIG (answered) past EXPORT_GENS_MAX. */
static int
export_gens(struct hreq *r, const struct ar_seglist *l, size_t first, size_t last,
	    struct export_gens *g)
{
	g->n = 0;
	g->opaque = false;
	for (size_t i = first; i <= last; i++) {
		if (export_gen_index(g, l->v[i].init) >= 0)
			continue;
		if (g->n == EXPORT_GENS_MAX) {
			hs_error(r, 409,
				 "the range spans more than %d init generations; export "
				 "it in parts (from=/to=)",
				 EXPORT_GENS_MAX);
			return -E2BIG;
		}
		g->gen[g->n++] = l->v[i].init;
	}
	return 0;
}

/* Segments, remapped where they need it: *ret_unknown when a remap changes
 * some length, which only a read of the segment tells. */
static int
export_segments(struct httpd *h, struct hreq *r, const struct ar_sess *s,
		const struct ar_seglist *l, size_t first, size_t last, struct export_gens *g,
		struct hbody *b, EVP_MD_CTX *md, bool *ret_unknown)
{
	char etag[HTTPD_ETAG_MAX], tag[48];
	uint64_t rebase = 0;
	int err;

	*ret_unknown = false;
	b->xp = xport_new(g->n);
	if (b->xp == NULL) {
		hs_error(r, 500, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = first; i <= last; i++) {
		int k = export_gen_index(g, l->v[i].init);

		err = ar_segment_body(h, s, &l->v[i], b, etag);
		if (err == -EBUSY) {
			hs_retry_after(r, 1);
			hs_error(r, 503, "too many segments from memory in flight; retry");
			return err;
		}
		if (err < 0) {
			hs_error(r, 503, "segment %lld left the ring before it was archived; retry",
				 (long long)l->v[i].sequence);
			return err;
		}
		EVP_DigestUpdate(md, etag, strlen(etag));
		if (i == first && !g->opaque) {
			/* An export starts at time 0; later inits get entries after the first's. */
			rebase = export_base(&g->init[0], &b->v[b->n - 1]);
			for (size_t k2 = 0; k2 < g->n; k2++)
				xport_set(b->xp, k2, &g->init[k2],
					  k2 == 0 ? 0 : g->init[0].entries + (uint32_t)k2, rebase);
		}
		if (rebase > 0 || k > 0)
			body_remap_last(b, k);
		if (k > 0 && !xport_same_length(b->xp, (size_t)k))
			*ret_unknown = true;
	}
	/* Moved bytes are other bytes: the tag says by how much. */
	snprintf(tag, sizeof(tag), "rebase=%llu gens=%zu", (unsigned long long)rebase, g->n);
	EVP_DigestUpdate(md, tag, strlen(tag));
	return 0;
}

int
export_prepare(struct httpd *h, struct hreq *r, bool whole, bool need_sha256, struct export *x)
{
	const struct route *rt = hs_route(r);
	struct export_sel sel = { .from = 0, .to = INT64_MAX, .start = 0, .end = INT64_MAX };
	struct export_gens *g = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	bool unknown;
	int err, ret = 0;

	memset(x, 0, sizeof(*x));
	x->first = SIZE_MAX;
	if (!whole && !export_args(r, &sel))
		return 0;
	if (ar_session(h, rt->sentinel, rt->session, &x->s) < 0) {
		hs_error(r, 404, "session %s of sentinel %s not found", rt->session, rt->sentinel);
		return 0;
	}
	if (ar_segments(h, &x->s, &x->l) < 0) {
		hs_error(r, 500, "out of memory");
		return 0;
	}
	for (size_t i = 0; i < x->l.n; i++) {
		if (!export_selected(&sel, &x->l.v[i]))
			continue;
		if (x->first == SIZE_MAX)
			x->first = i;
		x->last = i;
	}
	if (x->first == SIZE_MAX) {
		hs_error(r, 404, "no segment of session %s in the range", x->s.session);
		goto out;
	}
	/* A playable file starts at a join point: back to the last keyframe. */
	while (x->first > 0 && !x->l.v[x->first].keyframe)
		x->first--;
	g = malloc(sizeof(*g));
	md = EVP_MD_CTX_new();
	if (g == NULL || md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		hs_error(r, 500, "out of memory");
		goto out;
	}
	if (export_gens(r, &x->l, x->first, x->last, g) < 0 ||
	    export_init(h, r, &x->s, g, &x->b, md) < 0 ||
	    export_segments(h, r, &x->s, &x->l, x->first, x->last, g, &x->b, md, &unknown) < 0)
		goto out;
	EVP_DigestFinal_ex(md, dg, &dlen);
	/* The selection's bytes are fixed once listed, so the ETag is a digest of
	 * its parts' ETags: the same export gets the same tag. */
	snprintf(x->etag, sizeof(x->etag), "\"x-");
	for (unsigned i = 0; i < 16 && i < dlen; i++)
		snprintf(x->etag + 3 + 2 * i, sizeof(x->etag) - 3 - 2 * i, "%02x", dg[i]);
	strcat(x->etag, "\"");
	/* Lengths that only a read tells, and the whole file's digest, come from
	 * the plan (xplan.c); the request waits for it once per export. */
	err = xplan_apply(h, x->etag, x->s.session, &x->b, unknown || need_sha256);
	if (err == 0 && !hs_parked_timed_out(r)) {
		hs_park(r, HS_PARK_EXPORT, 0, EXPORT_WAIT_MS);
		goto out;
	}
	if (err <= 0) {
		hs_retry_after(r, 5);
		hs_error(r, 503,
			 "the export could not be prepared (busy, or a part is gone); "
			 "retry");
		goto out;
	}
	ret = 1;
out:
	EVP_MD_CTX_free(md);
	free(g);
	if (ret == 0)
		export_release(x);
	return ret;
}

void
export_release(struct export *x)
{
	body_free(&x->b);
	ar_seglist_free(&x->l);
}

int
export_record(struct httpd *h, struct hreq *r, const struct export *x, const char *what)
{
	char sha[65], hdr[256];
	json_t *rec, *range;

	if (r->head)
		return 1; /* nothing of the file is sent */
	rec = rec_new(r, "export");
	if (x->b.has_sha256) {
		for (size_t i = 0; i < sizeof(x->b.sha256); i++)
			snprintf(sha + 2 * i, 3, "%02x", x->b.sha256[i]);
	}
	/* The segments chosen, and the bytes of them when the client asked for a part. */
	range = json_pack("{s:s, s:I, s:I}", "file", what, "from",
			  (json_int_t)x->l.v[x->first].sequence, "to",
			  (json_int_t)x->l.v[x->last].sequence);
	if (range != NULL && hs_has_range(r) && hs_header(r, "range", hdr, sizeof(hdr)))
		json_object_set_new(range, "bytes", json_string(hdr));
	if (rec != NULL) {
		json_object_set_new(rec, "sentinelId", json_string(x->s.sentinel));
		json_object_set_new(rec, "sessionId", json_string(x->s.session));
		json_object_set_new(rec, "range", range != NULL ? range : json_null());
		json_object_set_new(rec, "bytes", json_integer((json_int_t)x->b.total));
		json_object_set_new(rec, "sha256",
				    x->b.has_sha256 ? json_string(sha) : json_null());
	} else {
		json_decref(range);
	}
	return rec_sync(h, r, rec);
}

void
export_get(struct httpd *h, struct hreq *r)
{
	char disp[256], fname[160];
	struct export x;

	if (export_prepare(h, r, false, !hs_has_range(r), &x) == 0)
		return;
	/* Nothing leaves before its record is on disk (PROTOCOL.md section 9). */
	if (export_record(h, r, &x, "export.mp4") <= 0) {
		export_release(&x);
		return;
	}
	export_filename(fname, sizeof(fname), &x.s, x.l.v[x.first].start_ms);
	snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", fname);
	h->stats.exports++;
	hs_bytes(r, "video/mp4", &x.b, x.etag, disp,
		 x.s.end_ms >= 0 ? "private, max-age=3600" : "no-cache");
	export_release(&x);
}
