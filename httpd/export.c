/* export: GET .../export.mp4, one playable fragmented MP4 of a session or a
 * part of it: the init segment, then every selected media segment as the
 * sentinel sent it. The body is a list of parts (files and ring copies), so
 * an export of hours streams in constant memory and its exact length is known
 * before the first byte; Range works across the parts. Service thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

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
	char etag[HTTPD_ETAG_MAX], disp[256];
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
		EVP_DigestUpdate(md, etag, strlen(etag));
	}
	EVP_DigestFinal_ex(md, dg, &dlen);
	/* The selection's bytes are fixed once listed, so the ETag is a digest of
	 * its parts' ETags: the same export gets the same tag. */
	snprintf(etag, sizeof(etag), "\"x-");
	for (unsigned i = 0; i < 16 && i < dlen; i++)
		snprintf(etag + 3 + 2 * i, sizeof(etag) - 3 - 2 * i, "%02x", dg[i]);
	strcat(etag, "\"");
	snprintf(disp, sizeof(disp), "attachment; filename=\"vigil-%s-%lld-%lld.mp4\"", s.session,
		 (long long)l.v[first].sequence, (long long)l.v[last].sequence);
	h->stats.exports++;
	hs_bytes(r, "video/mp4", &b, etag, disp,
		 s.end_ms >= 0 ? "private, max-age=3600" : "no-cache");
out:
	EVP_MD_CTX_free(md);
	body_free(&b);
	seglist_free(&l);
}
