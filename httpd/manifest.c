/* manifest: GET .../sessions/{id}/manifest.json, the evidence that a
 * recording is what the sentinel sent (PROTOCOL.md section 6): the session,
 * every init and segment with its bytes and SHA-256 (the segments' from the
 * index archive wrote as it stored them), the marks, and the SHA-256 of the
 * whole export.mp4 that the same session's export sends (its Repr-Digest).
 * An archivist recomputes each digest from what they downloaded.
 *
 * Only an ended session whose every segment is archived has a manifest: a
 * live one changes, and a segment still only in memory is not yet evidence.
 * The text depends on nothing but the recording (no time of making), so the
 * same recording always gives the same manifest, byte for byte. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive_read.h"
#include "export.h"
#include "httpd.h"
#include "marks.h"

static void
manifest_hex(const unsigned char *md, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Every init generation the segments use, each with its SHA-256 (the strong
 * ETag of an init is its digest: archive_read.c). */
static json_t *
manifest_inits(struct httpd *h, const struct export *x)
{
	json_t *arr = json_array();
	int last = -1;

	for (size_t i = 0; arr != NULL && i < x->l.n; i++) {
		const struct ar_seg *g = &x->l.v[i];
		char etag[HTTPD_ETAG_MAX], sha[65], url[32];
		struct hbody b = { 0 };
		int gen = g->init;

		if (gen <= last)
			continue; /* generations only grow along a session */
		last = gen;
		if (ar_init_body(h, &x->s, gen, &b, etag) < 0) {
			json_decref(arr);
			return NULL;
		}
		snprintf(sha, sizeof(sha), "%.64s", etag + 1);
		if (gen == 0)
			snprintf(url, sizeof(url), "init.mp4");
		else
			snprintf(url, sizeof(url), "init.mp4?init=%d", gen);
		json_array_append_new(arr,
				      json_pack("{s:i, s:s, s:I, s:s}", "init", gen, "url", url,
						"bytes", (json_int_t)b.total, "sha256", sha));
		body_free(&b);
	}
	return arr;
}

static json_t *
manifest_segments(const struct export *x)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr != NULL && i < x->l.n; i++) {
		const struct ar_seg *g = &x->l.v[i];
		char url[48];

		snprintf(url, sizeof(url), "segments/%lld.m4s", (long long)g->sequence);
		json_array_append_new(arr,
				      json_pack("{s:I, s:I, s:I, s:I, s:b, s:i, s:s, s:s}",
						"sequence", (json_int_t)g->sequence, "startTime",
						(json_int_t)g->start_ms, "duration",
						(json_int_t)g->duration_ms, "bytes",
						(json_int_t)g->bytes, "keyframe", g->keyframe,
						"init", g->init, "url", url, "sha256", g->sha256));
	}
	return arr;
}

void
manifest_get(struct httpd *h, struct hreq *r)
{
	const struct route *rt = hs_route(r);
	json_t *inits, *segs, *marks = NULL, *j;
	struct mark *mv = NULL;
	size_t mn = 0;
	char sha[65];
	struct export x;
	struct ar_sess s;

	if (ar_session(h, rt->sentinel, rt->session, &s) < 0) {
		hs_error(r, 404, "session %s of sentinel %s not found", rt->session, rt->sentinel);
		return;
	}
	if (s.end_ms < 0) {
		hs_error(r, 409, "session %s is live: its manifest is made once it has ended",
			 s.session);
		return;
	}
	if (export_prepare(h, r, true, true, &x) == 0)
		return;
	for (size_t i = 0; i < x.l.n; i++) {
		if (x.l.v[i].ring || x.l.v[i].sha256[0] == '\0') {
			hs_retry_after(r, 2);
			hs_error(r, 503, "segment %lld of session %s is not archived yet; retry",
				 (long long)x.l.v[i].sequence, s.session);
			goto out;
		}
	}
	if (export_record(h, r, &x, "manifest.json") <= 0)
		goto out;
	inits = manifest_inits(h, &x);
	segs = manifest_segments(&x);
	if (marks_read(h, &x.s, &mv, &mn) == 0)
		marks = marks_json(mv, mn);
	free(mv);
	manifest_hex(x.b.sha256, sizeof(x.b.sha256), sha);
	j = json_pack("{s:i, s:s, s:s, s:s, s:I, s:o, s:s, s:I, s:I, s:I, s:o*, s:o*, s:o*, "
		      "s:{s:s, s:I, s:s, s:s}}",
		      "manifestVersion", 1, "sentinelId", x.s.sentinel, "name", x.s.name,
		      "sessionId", x.s.session, "startTime", (json_int_t)x.s.start_ms, "endTime",
		      json_integer(x.s.end_ms), "codec", x.s.codec, "width", (json_int_t)x.s.width,
		      "height", (json_int_t)x.s.height, "timescale", (json_int_t)x.s.timescale,
		      "inits", inits, "segments", segs, "marks", marks, "export", "url",
		      "export.mp4", "bytes", (json_int_t)x.b.total, "sha256", sha, "etag", x.etag);
	if (inits == NULL || segs == NULL || marks == NULL || j == NULL) {
		json_decref(j);
		hs_error(r, 500, "the manifest could not be made");
		goto out;
	}
	hs_json(r, 200, j);
out:
	export_release(&x);
}
