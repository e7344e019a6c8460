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

#include "beneath.h"
#include "httpd.h"
#include "log.h"

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
export_base(const struct fmp4_init *init, const struct part *pt)
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

/* The ring copy just added moves at once; a file moves as it is sent. */
static int
export_rebase_part(struct body *b, struct part *pt)
{
	struct fmp4_seg seg;
	char err[160];

	if (pt->mem == NULL) {
		pt->rebase = true;
		return 0;
	}
	if (fmp4_parse_segment(pt->mem->data + pt->off, pt->len, b->init, &seg, err, sizeof(err)) <
		    0 ||
	    fmp4_rebase(pt->mem->data + pt->off, pt->len, &seg, b->rebase) < 0)
		return -EINVAL;
	return 0;
}

/* "{name}-{UTC start}.mp4" with only [A-Za-z0-9._-] (runs of anything else
 * become one '_'), so that the name is valid on every file system. */
static void
export_filename(char *buf, size_t size, const struct sess *s, int64_t start_ms)
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
export_selected(const struct export_sel *sel, const struct seg *g)
{
	if (sel->by_time)
		return g->start_ms < sel->end && g->start_ms + (int64_t)g->duration_ms > sel->start;
	return g->sequence >= sel->from && g->sequence <= sel->to;
}

void
export_get(struct httpd *h, struct hreq *r)
{
	const struct route *rt = hs_route(r);
	struct export_sel sel;
	struct seglist l = { 0 };
	struct body b = { 0 };
	char etag[HTTPD_ETAG_MAX], disp[256], fname[160], base_tag[32];
	size_t first = SIZE_MAX, last = 0;
	EVP_MD_CTX *md = NULL;
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	struct sess s;
	int gen, err;

	if (!export_args(r, &sel))
		return;
	if (ar_session(h, rt->sentinel, rt->session, &s) < 0) {
		hs_error(r, 404, "session %s of sentinel %s not found", rt->session, rt->sentinel);
		return;
	}
	if (ar_segments(h, &s, &l) < 0) {
		hs_error(r, 500, "out of memory");
		return;
	}
	for (size_t i = 0; i < l.n; i++) {
		if (!export_selected(&sel, &l.v[i]))
			continue;
		if (first == SIZE_MAX)
			first = i;
		last = i;
	}
	if (first == SIZE_MAX) {
		hs_error(r, 404, "no segment of session %s in the range", s.session);
		goto out;
	}
	/* A playable file starts at a join point: back to the last keyframe. */
	while (first > 0 && !l.v[first].keyframe)
		first--;
	gen = l.v[first].init;
	for (size_t i = first; i <= last; i++) {
		if (l.v[i].init != gen) {
			hs_error(r, 409,
				 "the range spans init generations %d and %d; export each part "
				 "separately (from=/to=)",
				 gen, l.v[i].init);
			goto out;
		}
	}
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		hs_error(r, 500, "out of memory");
		goto out;
	}
	err = ar_init_body(h, &s, gen, &b, etag);
	if (err < 0) {
		hs_error(r, 404, "the init segment of session %s is not available", s.session);
		goto out;
	}
	EVP_DigestUpdate(md, etag, strlen(etag));
	/* The init is in memory (ar_init_body reads it whole). */
	b.init = malloc(sizeof(*b.init));
	if (b.init == NULL || b.v[0].mem == NULL ||
	    fmp4_parse_init(b.v[0].mem->data, b.v[0].len, b.init, NULL, 0) < 0) {
		free(b.init);
		b.init = NULL; /* not ours to parse: sent as it is */
	}
	for (size_t i = first; i <= last; i++) {
		err = ar_segment_body(h, &s, &l.v[i], &b, etag);
		if (err == -EBUSY) {
			hs_retry_after(r, 1);
			hs_error(r, 503, "too many segments from memory in flight; retry");
			goto out;
		}
		if (err < 0) {
			hs_error(r, 503, "segment %lld left the ring before it was archived; retry",
				 (long long)l.v[i].sequence);
			goto out;
		}
		if (i == first && b.init != NULL)
			b.rebase = export_base(b.init, &b.v[b.n - 1]);
		if (b.rebase > 0 && export_rebase_part(&b, &b.v[b.n - 1]) < 0) {
			hs_error(r, 500, "segment %lld of the export could not be read",
				 (long long)l.v[i].sequence);
			goto out;
		}
		EVP_DigestUpdate(md, etag, strlen(etag));
	}
	/* Moved bytes are other bytes: the tag says by how much. */
	snprintf(base_tag, sizeof(base_tag), "rebase=%llu", (unsigned long long)b.rebase);
	EVP_DigestUpdate(md, base_tag, strlen(base_tag));
	EVP_DigestFinal_ex(md, dg, &dlen);
	/* The selection's bytes are fixed once listed, so the ETag is a digest of
	 * its parts' ETags: the same export gets the same tag. */
	snprintf(etag, sizeof(etag), "\"x-");
	for (unsigned i = 0; i < 16 && i < dlen; i++)
		snprintf(etag + 3 + 2 * i, sizeof(etag) - 3 - 2 * i, "%02x", dg[i]);
	strcat(etag, "\"");
	export_filename(fname, sizeof(fname), &s, l.v[first].start_ms);
	snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", fname);
	h->stats.exports++;
	hs_bytes(r, "video/mp4", &b, etag, disp,
		 s.end_ms >= 0 ? "private, max-age=3600" : "no-cache");
out:
	EVP_MD_CTX_free(md);
	body_free(&b);
	seglist_free(&l);
}
