/* hls: GET .../playlist.m3u8, an HLS playlist (RFC 8216, fMP4 segments) of a
 * session: EXT-X-MAP for the init (a new one, after a discontinuity, when the
 * sentinel sent a new init), EXTINF from the index, EXT-X-PROGRAM-DATE-TIME
 * from each segment's start, the marks as EXT-X-DATERANGE, EXT-X-ENDLIST once
 * the session has ended. Links
 * are relative. When the playlist was fetched with ?token=, its links carry
 * a playlist token of their own (hs_link_token, common/hlscap.h), since
 * players fetch them without the request's header: the caller's token never
 * leaves the request that carried it. Loop thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive_read.h"
#include "hlscap.h"
#include "hls.h"
#include "httpd.h"
#include "marks.h"
#include "text.h"

static void
hls_date(int64_t ms, char *out, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* text as the value of a quoted-string attribute (RFC 8216 section 4.2: no
 * '"', CR or LF) that hls.js reads whole: '%', '"', the C0 and C1 controls,
 * DEL, U+2028 and U+2029 (where JavaScript's '.' stops) are percent-encoded
 * as their UTF-8 bytes, the rest is left as it is. decodeURIComponent()
 * gives the text back. */
static void
hls_attr_text(struct text_buf *b, const char *text)
{
	const unsigned char *s = (const unsigned char *)text;

	for (size_t i = 0; s[i] != '\0'; i++) {
		size_t n = 0;

		if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '%' || s[i] == '"')
			n = 1;
		else if (s[i] == 0xc2 && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
			n = 2;
		else if (s[i] == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))
			n = 3;
		if (n == 0) {
			text_printf(b, "%c", s[i]);
			continue;
		}
		for (size_t k = 0; k < n; k++)
			text_printf(b, "%%%02X", s[i + k]);
		i += n - 1;
	}
}

/* The session's marks as EXT-X-DATERANGE tags (docs/httpd.md, "Marks in the
 * playlist"); RFC 8216 wants an EXT-X-PROGRAM-DATE-TIME beside them, which
 * every segment line has. */
static int
hls_marks(struct httpd *h, const struct ar_sess *s, struct text_buf *b)
{
	struct mark *v;
	char date[64];
	size_t n;
	int err;

	err = marks_read(h, s, &v, &n);
	if (err < 0)
		return err;
	for (size_t i = 0; i < n; i++) {
		hls_date(v[i].at, date, sizeof(date));
		text_printf(b,
			    "#EXT-X-DATERANGE:ID=\"%s\",CLASS=\"vigil.mark\",START-DATE=\"%s\","
			    "X-KIND=\"%s\",X-NOTE=\"",
			    v[i].id, date, mark_kind_name(v[i].kind));
		hls_attr_text(b, v[i].note);
		text_printf(b, "\",X-BY=\"");
		hls_attr_text(b, v[i].by);
		text_printf(b, "\"\n");
	}
	free(v);
	return 0;
}

/* tq: "?token=..." or "". */
static void
hls_map(struct text_buf *b, int gen, const char *tq)
{
	if (gen == 0)
		text_printf(b, "#EXT-X-MAP:URI=\"init.mp4%s\"\n", tq);
	else
		text_printf(b, "#EXT-X-MAP:URI=\"init.mp4?init=%d%s%s\"\n", gen, tq[0] ? "&" : "",
			    tq[0] ? tq + 1 : "");
}

/* The links' token, as "?token=..." in tq (or ""): valid for what a player
 * needs of this playlist, all of it played from now, plus a margin
 * (hls.h). */
static int
hls_link_query(struct hreq *r, const struct ar_seglist *l, size_t first, bool live, char *tq,
	       size_t size)
{
	char cap[HLSCAP_TEXT_LEN + 1];
	int64_t played_ms = 0;
	int err;

	for (size_t i = first; i < l->n; i++)
		played_ms += l->v[i].duration_ms;
	err = hs_link_token(r,
			    (int64_t)time(NULL) + (played_ms + 999) / 1000 +
				    (live ? HLS_CAP_MARGIN_LIVE_S : HLS_CAP_MARGIN_ENDED_S),
			    cap);
	if (err < 0)
		return err;
	snprintf(tq, size, "%s%s", cap[0] != '\0' ? "?token=" : "", cap);
	return 0;
}

void
hls_get(struct httpd *h, struct hreq *r)
{
	const struct route *rt = hs_route(r);
	char tq[HLSCAP_TEXT_LEN + 8];
	struct text_buf b = { 0 };
	struct ar_seglist l = { 0 };
	size_t first = 0;
	uint32_t target = 1;
	char date[64];
	struct ar_sess s;
	int gen = -1;

	if (ar_session(h, rt->sentinel, rt->session, &s) < 0) {
		hs_error(r, 404, "session %s of sentinel %s not found", rt->session, rt->sentinel);
		return;
	}
	if (ar_segments(h, &s, &l) < 0 || (b.p = malloc(b.cap = 4096)) == NULL) {
		hs_error(r, 500, "out of memory");
		goto out;
	}
	/* Players start decoding at the first segment: it must be a join point. */
	while (first < l.n && !l.v[first].keyframe)
		first++;
	for (size_t i = first; i < l.n; i++) {
		uint32_t d = (l.v[i].duration_ms + 500) / 1000;

		if (d > target)
			target = d;
	}
	if (hls_link_query(r, &l, first, s.end_ms < 0, tq, sizeof(tq)) < 0) {
		hs_error(r, 500, "the links' token could not be made");
		goto out;
	}
	text_printf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%u\n", target);
	text_printf(&b, "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:%s\n",
		    s.end_ms >= 0 ? "VOD" : "EVENT");
	if (first < l.n && hls_marks(h, &s, &b) < 0) {
		hs_error(r, 500, "the marks of session %s cannot be read", s.session);
		goto out;
	}
	for (size_t i = first; i < l.n; i++) {
		const struct ar_seg *g = &l.v[i];

		if (g->init != gen) {
			if (gen >= 0)
				text_printf(&b, "#EXT-X-DISCONTINUITY\n");
			gen = g->init;
			hls_map(&b, gen, tq);
		}
		hls_date(g->start_ms, date, sizeof(date));
		text_printf(&b,
			    "#EXT-X-PROGRAM-DATE-TIME:%s\n#EXTINF:%u.%03u,\nsegments/%lld.m4s%s\n",
			    date, g->duration_ms / 1000, g->duration_ms % 1000,
			    (long long)g->sequence, tq);
	}
	if (s.end_ms >= 0)
		text_printf(&b, "#EXT-X-ENDLIST\n");
	if (b.oom) {
		hs_error(r, 500, "out of memory");
		goto out;
	}
	hs_text(r, 200, "application/vnd.apple.mpegurl", b.p, b.len);
out:
	free(b.p);
	ar_seglist_free(&l);
}
