/* catalog: GET /api/sessions (PROTOCOL.md section 6): the sessions of every
 * sentinel, from data_dir (common/layout.h) and the ring, newest first,
 * filtered by name, time and liveness, in pages that a cursor continues.
 * Loop thread.
 *
 * A request reads one stat per session directory, not its files: what was
 * read of a session.json is kept while the file's inode, size and mtime stay
 * the same, and the figures of an index (segments, bytes, duration) while its
 * inode does and it only grows, which it does by whole lines (a repair
 * rewrites it as a new file). The filters and the order need only
 * session.json, so an index is read only for a session on the page, and then
 * only the lines added since it was last read: a cold listing of a large
 * archive costs one page's indexes, not all of them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "archive_read.h"
#include "b64.h"
#include "beneath.h"
#include "catalog.h"
#include "forget.h"
#include "httpd.h"
#include "id.h"
#include "layout.h"
#include "log.h"

#define CATALOG_LIMIT     100  /* a page without ?limit= */
#define CATALOG_LIMIT_MAX 1000 /* ?limit= at most */
#define CATALOG_ARG_MAX   8200 /* a query value always fits: the target is at most 8 KiB */
#define CATALOG_CURSOR    128  /* a cursor's characters at most */
#define CATALOG_LINK_MAX  768  /* the next page's target */

/* A file as stat saw it: the cache's key to "unchanged". */
struct cat_stat {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* One session. Those on disk are kept between requests (struct catalog),
 * sorted by (sentinel, session); those only in the ring are made anew. */
struct cat_ent {
	uint8_t sentinel[16], session[16];
	char name[LAYOUT_NAME_MAX]; /* the sentinel's name during the session */
	int64_t start_ms, end_ms;   /* end_ms -1: live */
	bool on_disk;
	struct cat_stat meta; /* session.json's */
	/* index.jsonl's figures up to byte `parsed` (its last complete line) */
	bool counted;
	struct cat_stat index;
	uint64_t parsed;
	int64_t last_seq, last_end_ms;
	uint64_t segments, bytes, duration_ms;
};

struct catalog {
	struct cat_ent *v;
	size_t n;
};

/* What the ring holds of one segment. */
struct cat_rseg {
	uint8_t session[16];
	int64_t sequence, start_ms;
	uint32_t duration_ms;
	uint64_t bytes;
};

struct cat_query {
	char name[LAYOUT_NAME_MAX];
	bool has_name, has_from, has_to, has_limit, has_cursor;
	int64_t from, to;
	int live; /* -1: either, 0: ended, 1: live */
	int64_t limit;
	int64_t cur_start; /* the cursor: the last entry of the page before */
	uint8_t cur_session[16];
};

/* One request's sessions: the cache being rebuilt, the ring-only ones, the
 * ring's segments. */
struct cat_scan {
	struct cat_ent *v;
	size_t n, cap;
	struct cat_ent *ring;
	size_t n_ring, cap_ring;
	struct cat_rseg *segs;
	size_t n_segs;
};

static bool
cat_stat_same(const struct cat_stat *c, const struct stat *sb)
{
	return c->dev == sb->st_dev && c->ino == sb->st_ino && c->size == sb->st_size &&
	       c->mtime.tv_sec == sb->st_mtim.tv_sec && c->mtime.tv_nsec == sb->st_mtim.tv_nsec;
}

static void
cat_stat_set(struct cat_stat *c, const struct stat *sb)
{
	*c = (struct cat_stat){
		.dev = sb->st_dev, .ino = sb->st_ino, .size = sb->st_size, .mtime = sb->st_mtim
	};
}

static int
cat_key_cmp(const void *a, const void *b)
{
	const struct cat_ent *x = a, *y = b;
	int c = memcmp(x->sentinel, y->sentinel, 16);

	return c != 0 ? c : memcmp(x->session, y->session, 16);
}

/* Newest first; equal starts by session id (then sentinel), so the order is
 * total and a cursor names one place in it. Bytes compare as the ids' text. */
static int
cat_order_cmp(const void *a, const void *b)
{
	const struct cat_ent *x = *(const struct cat_ent *const *)a;
	const struct cat_ent *y = *(const struct cat_ent *const *)b;
	int c;

	if (x->start_ms != y->start_ms)
		return x->start_ms > y->start_ms ? -1 : 1;
	c = memcmp(x->session, y->session, 16);
	return c != 0 ? c : memcmp(x->sentinel, y->sentinel, 16);
}

static int
cat_rseg_cmp(const void *a, const void *b)
{
	const struct cat_rseg *x = a, *y = b;
	int c = memcmp(x->session, y->session, 16);

	if (c != 0)
		return c;
	return x->sequence < y->sequence ? -1 : x->sequence > y->sequence;
}

static int
cat_grow(struct cat_ent **v, size_t n, size_t *cap)
{
	struct cat_ent *nv;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? 2 * *cap : 256;
	nv = realloc(*v, ncap * sizeof(*nv));
	if (nv == NULL)
		return -ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

/* ---- the query ------------------------------------------------------------ */

/* base64url without padding (RFC 4648 section 5) of "startTime,sessionId". */
static int
cat_cursor_encode(const struct cat_ent *e, char *out, size_t size)
{
	char text[64], id[ID_STR_LEN], *b64;
	size_t len, n = 0;
	int r;

	id_format(e->session, id);
	snprintf(text, sizeof(text), "%lld,%s", (long long)e->start_ms, id);
	r = b64_encode(text, strlen(text), &b64, &len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < len && b64[i] != '=' && n + 1 < size; i++)
		out[n++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	out[n] = '\0';
	free(b64);
	return 0;
}

static int
cat_cursor_decode(const char *in, struct cat_query *q)
{
	char b64[CATALOG_CURSOR + 4], text[B64_DECODED_MAX(CATALOG_CURSOR + 4) + 1], *end;
	size_t n = strlen(in), len;
	long long start;

	if (n == 0 || n > CATALOG_CURSOR || n % 4 == 1)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '+' || c == '/' || c == '=')
			return -EINVAL; /* standard base64: not ours */
		b64[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	while (n % 4 != 0)
		b64[n++] = '=';
	if (b64_decode_to(b64, n, text, &len) < 0)
		return -EINVAL;
	text[len] = '\0';
	if (memchr(text, '\0', len) != NULL)
		return -EINVAL;
	errno = 0;
	start = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != ',' || !layout_id_name(end + 1, q->cur_session))
		return -EINVAL;
	q->cur_start = start;
	return 0;
}

/* An integer argument: 0, or -EINVAL after answering 400 (absent: *has false). */
static int
cat_int_arg(struct hreq *r, char *buf, const char *name, bool *has, int64_t *ret)
{
	*has = hs_arg(r, name, buf, CATALOG_ARG_MAX);
	if (*has && route_parse_int(buf, ret) < 0) {
		hs_error(r, 400, "%s must be unix milliseconds (a non-negative integer)", name);
		return -EINVAL;
	}
	return 0;
}

/* The query's filters; false after answering 400. */
static bool
cat_query_parse(struct hreq *r, struct cat_query *q)
{
	char *buf = malloc(CATALOG_ARG_MAX);
	bool ok = false;

	*q = (struct cat_query){ .live = -1, .limit = CATALOG_LIMIT };
	if (buf == NULL) {
		hs_error(r, 500, "out of memory");
		return false;
	}
	if (hs_arg(r, "name", buf, CATALOG_ARG_MAX)) {
		if (strlen(buf) >= sizeof(q->name)) {
			hs_error(r, 400, "name is longer than a sentinel's name can be (%d bytes)",
				 LAYOUT_NAME_MAX - 1);
			goto out;
		}
		snprintf(q->name, sizeof(q->name), "%s", buf);
		q->has_name = true;
	}
	if (cat_int_arg(r, buf, "from", &q->has_from, &q->from) < 0 ||
	    cat_int_arg(r, buf, "to", &q->has_to, &q->to) < 0)
		goto out;
	if (q->has_from && q->has_to && q->from > q->to) {
		hs_error(r, 400, "from is after to");
		goto out;
	}
	if (hs_arg(r, "live", buf, CATALOG_ARG_MAX)) {
		if (strcmp(buf, "true") != 0 && strcmp(buf, "false") != 0) {
			hs_error(r, 400, "live must be true or false");
			goto out;
		}
		q->live = strcmp(buf, "true") == 0;
	}
	q->has_limit = hs_arg(r, "limit", buf, CATALOG_ARG_MAX);
	if (q->has_limit &&
	    (route_parse_int(buf, &q->limit) < 0 || q->limit < 1 || q->limit > CATALOG_LIMIT_MAX)) {
		hs_error(r, 400, "limit must be an integer from 1 to %d", CATALOG_LIMIT_MAX);
		goto out;
	}
	q->has_cursor = hs_arg(r, "cursor", buf, CATALOG_ARG_MAX);
	if (q->has_cursor && cat_cursor_decode(buf, q) < 0) {
		hs_error(r, 400,
			 "cursor is not one this server gave (take it from the Link header)");
		goto out;
	}
	ok = true;
out:
	free(buf);
	return ok;
}

static bool
cat_match(const struct cat_query *q, const struct cat_ent *e)
{
	if (q->has_name && strcasestr(e->name, q->name) == NULL)
		return false;
	if (q->live >= 0 && (e->end_ms < 0) != (q->live == 1))
		return false;
	/* Overlapping [from, to], both ends included; a live session runs on. */
	if (q->has_to && e->start_ms > q->to)
		return false;
	if (q->has_from && e->end_ms >= 0 && e->end_ms < q->from)
		return false;
	return true;
}

/* The next page's target: the same filters (never the token), the cursor. */
static int
cat_next_link(const struct cat_query *q, const struct cat_ent *last, char *out, size_t size)
{
	char cursor[CATALOG_CURSOR + 1];
	size_t n;
	int r = cat_cursor_encode(last, cursor, sizeof(cursor));

	if (r < 0)
		return r;
	n = (size_t)snprintf(out, size, "/api/sessions?");
	if (q->has_name) {
		char *esc = curl_easy_escape(NULL, q->name, 0);

		if (esc == NULL)
			return -ENOMEM;
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "name=%s&", esc);
		curl_free(esc);
	}
	if (q->has_from)
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "from=%lld&",
				      (long long)q->from);
	if (q->has_to)
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "to=%lld&",
				      (long long)q->to);
	if (q->live >= 0)
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "live=%s&",
				      q->live ? "true" : "false");
	if (q->has_limit)
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "limit=%lld&",
				      (long long)q->limit);
	n += (size_t)snprintf(out + n, n < size ? size - n : 0, "cursor=%s", cursor);
	return n < size ? 0 : -ENOBUFS;
}

/* ---- what is there ---------------------------------------------------------- */

/* Every segment descriptor the ring holds, sorted by session and sequence. */
static int
cat_ring_segments(struct httpd *h, struct cat_scan *sc)
{
	uint64_t head, tail;

	if (h->ring == NULL)
		return 0;
	head = ring_head(h->ring);
	tail = ring_tail(h->ring);
	if (head <= tail)
		return 0;
	sc->segs = malloc((size_t)(head - tail) * sizeof(*sc->segs));
	if (sc->segs == NULL)
		return -ENOMEM;
	for (uint64_t i = tail; i < head; i++) {
		struct ring_seg m;
		const void *data;

		if (ring_peek(h->ring, i, &m, &data) < 0)
			continue;
		sc->segs[sc->n_segs++] = (struct cat_rseg){ .sequence = m.sequence,
							    .start_ms = m.start_ms,
							    .duration_ms = m.duration_ms,
							    .bytes = m.len };
		memcpy(sc->segs[sc->n_segs - 1].session, m.session, 16);
	}
	qsort(sc->segs, sc->n_segs, sizeof(*sc->segs), cat_rseg_cmp);
	return 0;
}

/* The ring's segments of a session, ascending: [*ret_first, return). */
static size_t
cat_ring_run(const struct cat_scan *sc, const uint8_t session[16], size_t *ret_first)
{
	size_t lo = 0, hi = sc->n_segs, end;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(sc->segs[mid].session, session, 16) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (end = lo; end < sc->n_segs && memcmp(sc->segs[end].session, session, 16) == 0; end++)
		;
	*ret_first = lo;
	return end;
}

/* One session directory: from the cache while its session.json is the same
 * file, else read. Not a session (no valid session.json yet): skipped. */
static int
cat_add_dir(struct catalog *c, struct cat_scan *sc, int sfd, const uint8_t sentinel[16],
	    const char *name)
{
	struct cat_ent key = { 0 }, *old, *e;
	struct layout_session ls;
	char rel[ID_STR_LEN + sizeof(LAYOUT_SESSION)];
	struct stat sb;
	int fd, r;

	memcpy(key.sentinel, sentinel, 16);
	if (!layout_id_name(name, key.session))
		return 0;
	snprintf(rel, sizeof(rel), "%.36s/" LAYOUT_SESSION, name);
	if (fstatat(sfd, rel, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
		return 0;
	r = cat_grow(&sc->v, sc->n, &sc->cap);
	if (r < 0)
		return r;
	old = c->n > 0 ? bsearch(&key, c->v, c->n, sizeof(key), cat_key_cmp) : NULL;
	e = &sc->v[sc->n];
	*e = old != NULL ? *old : key;
	if (old != NULL && cat_stat_same(&old->meta, &sb)) {
		sc->n++;
		return 0;
	}
	/* Read beneath the sentinel's directory, never through a symlink. */
	fd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	r = layout_session_read(fd, &ls);
	close(fd);
	if (r < 0)
		return 0;
	snprintf(e->name, sizeof(e->name), "%s", ls.name);
	e->start_ms = ls.start_ms;
	e->end_ms = ls.end_ms;
	e->on_disk = true;
	cat_stat_set(&e->meta, &sb);
	sc->n++;
	return 0;
}

static int
cat_add_sentinel(struct catalog *c, struct cat_scan *sc, int dfd, const char *name)
{
	uint8_t sentinel[16];
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if (!layout_id_name(name, sentinel))
		return 0;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0; /* not a directory of ours (a symlink, a file) */
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -errno;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)
			r = cat_add_dir(c, sc, dirfd(d), sentinel, de->d_name);
	}
	closedir(d);
	return r;
}

/* The sessions on disk, into sc->v sorted by key (the next request's cache). */
static int
cat_scan_disk(struct httpd *h, struct catalog *c, struct cat_scan *sc)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if (ar_data_fd(h) < 0)
		return 0; /* nothing archived yet */
	fd = openat(h->data_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -errno;
	}
	while (r == 0 && (de = readdir(d)) != NULL)
		r = cat_add_sentinel(c, sc, dirfd(d), de->d_name);
	closedir(d);
	if (r == 0)
		qsort(sc->v, sc->n, sizeof(*sc->v), cat_key_cmp);
	return r;
}

/* Each sentinel's current session in the ring that archive has not made a
 * directory for yet, as ar_session() shows it. */
static int
cat_scan_ring(struct httpd *h, struct cat_scan *sc)
{
	uint32_t slots = h->ring != NULL ? ring_sentinel_slots(h->ring) : 0;

	for (uint32_t slot = 0; slot < slots; slot++) {
		struct ring_sentinel rs;
		struct cat_ent key = { 0 }, *e;
		size_t first, end;
		int r;

		if (ring_sentinel_get(h->ring, slot, &rs, NULL, 0) < 0 || id_is_nil(rs.id) ||
		    id_is_nil(rs.session))
			continue;
		memcpy(key.sentinel, rs.id, 16);
		memcpy(key.session, rs.session, 16);
		if (sc->n > 0 && bsearch(&key, sc->v, sc->n, sizeof(key), cat_key_cmp) != NULL)
			continue;
		r = cat_grow(&sc->ring, sc->n_ring, &sc->cap_ring);
		if (r < 0)
			return r;
		e = &sc->ring[sc->n_ring++];
		*e = key;
		snprintf(e->name, sizeof(e->name), "%s", rs.name);
		e->start_ms = rs.session_start_ms;
		e->end_ms = rs.online ? -1 : rs.session_start_ms;
		e->last_seq = -1;
		e->counted = true; /* no index: the ring's segments are all there is */
		/* Not archived yet and offline: it ended after its last segment. */
		end = cat_ring_run(sc, e->session, &first);
		if (!rs.online && end > first)
			e->end_ms = sc->segs[end - 1].start_ms + sc->segs[end - 1].duration_ms;
	}
	return 0;
}

/* An index's figures, from where they were last read to its last complete
 * line; from the start when it is another file now or shorter than it was. */
static int
cat_count_index(struct httpd *h, struct cat_ent *e)
{
	char path[2 * ID_STR_LEN + sizeof(LAYOUT_INDEX)], sid[ID_STR_LEN], sess[ID_STR_LEN];
	struct layout_index_iter it;
	struct layout_entry le;
	struct stat sb;
	char *buf = NULL;
	size_t len;
	int fd, r, n;

	id_format(e->sentinel, sid);
	id_format(e->session, sess);
	snprintf(path, sizeof(path), "%s/%s/" LAYOUT_INDEX, sid, sess);
	fd = beneath_open_file(ar_data_fd(h), path, &sb);
	if (fd < 0) {
		if (fd != -ENOENT)
			return fd;
		memset(&sb, 0, sizeof(sb)); /* no index yet: no segments */
	}
	if (e->counted && cat_stat_same(&e->index, &sb)) {
		r = 0;
		goto out;
	}
	if (!e->counted || e->index.dev != sb.st_dev || e->index.ino != sb.st_ino ||
	    sb.st_size < e->index.size) {
		e->parsed = 0;
		e->last_seq = e->last_end_ms = -1;
		e->segments = e->bytes = e->duration_ms = 0;
	}
	if (fd >= 0) {
		r = layout_index_read(fd, e->parsed, &buf, &len);
		if (r < 0) {
			e->counted = false; /* read again from the start next time */
			goto out;
		}
		layout_index_begin(&it, buf, len, e->last_seq);
		while ((n = layout_index_next(&it, &le, NULL, NULL)) != 0) {
			if (n < 0)
				continue; /* as ar_segments(): archive's repair drops it */
			e->segments++;
			e->bytes += le.bytes;
			e->duration_ms += le.duration_ms;
			e->last_end_ms = le.start_ms + le.duration_ms;
		}
		e->last_seq = it.last_seq;
		e->parsed += (uint64_t)(it.p - buf);
	}
	cat_stat_set(&e->index, &sb);
	e->counted = true;
	r = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

static json_t *
cat_entry_json(struct httpd *h, const struct cat_scan *sc, struct cat_ent *e)
{
	uint64_t segments, bytes, dur;
	char sid[ID_STR_LEN], sess[ID_STR_LEN];
	size_t first, end;
	int r;

	id_format(e->sentinel, sid);
	id_format(e->session, sess);
	/* An index that cannot be read (over LAYOUT_INDEX_MAX, EIO) costs its
	 * figures, not the listing. */
	if (e->on_disk && (r = cat_count_index(h, e)) < 0)
		log_warn(r, "index of session %s/%s not read: listed without its segments", sid,
			 sess);
	segments = e->counted ? e->segments : 0;
	bytes = e->counted ? e->bytes : 0;
	dur = e->counted ? e->duration_ms : 0;
	/* The ring's segments archive has not indexed yet (ar_segments()). */
	end = cat_ring_run(sc, e->session, &first);
	for (size_t i = first; i < end; i++) {
		if (sc->segs[i].sequence <= e->last_seq)
			continue;
		segments++;
		bytes += sc->segs[i].bytes;
		dur += sc->segs[i].duration_ms;
	}
	return json_pack("{s:s, s:s, s:s, s:I, s:o, s:I, s:I, s:I}", "sentinelId", sid, "name",
			 e->name, "sessionId", sess, "startTime", (json_int_t)e->start_ms,
			 "endTime", e->end_ms < 0 ? json_null() : json_integer(e->end_ms),
			 "segments", (json_int_t)segments, "bytes", (json_int_t)bytes, "durationMs",
			 (json_int_t)dur);
}

/* ---- the route ------------------------------------------------------------ */

static struct catalog *
cat_get(struct httpd *h)
{
	if (h->catalog == NULL)
		h->catalog = calloc(1, sizeof(*h->catalog));
	return h->catalog;
}

/* The sessions that pass q, newest first (pointers into sc). */
static int
cat_rows(struct httpd *h, const struct cat_query *q, struct cat_scan *sc,
	 struct cat_ent ***ret_rows, size_t *ret_n)
{
	struct cat_ent **rows = malloc((sc->n + sc->n_ring + 1) * sizeof(*rows));
	size_t n = 0;

	if (rows == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < sc->n + sc->n_ring; i++) {
		struct cat_ent *e = i < sc->n ? &sc->v[i] : &sc->ring[i - sc->n];

		/* Hard-deleted: not even while the ring still holds it. */
		if (cat_match(q, e) && !ar_forgotten_id(h, e->session))
			rows[n++] = e;
	}
	qsort(rows, n, sizeof(*rows), cat_order_cmp);
	*ret_rows = rows;
	*ret_n = n;
	return 0;
}

void
catalog_get(struct httpd *h, struct hreq *r)
{
	struct catalog *c = cat_get(h);
	struct cat_scan sc = { 0 };
	struct cat_query q;
	struct cat_ent **rows = NULL, cur = { 0 };
	size_t n = 0, first = 0, end;
	char link[CATALOG_LINK_MAX];
	json_t *arr = NULL;
	int err;

	if (!cat_query_parse(r, &q))
		return;
	if (c == NULL) {
		hs_error(r, 500, "out of memory");
		return;
	}
	err = cat_ring_segments(h, &sc);
	if (err == 0)
		err = cat_scan_disk(h, c, &sc);
	if (err == 0)
		err = cat_scan_ring(h, &sc);
	if (err == 0)
		err = cat_rows(h, &q, &sc, &rows, &n);
	if (err < 0)
		goto fail;
	/* The page starts after the cursor's place, wherever that entry is now. */
	if (q.has_cursor) {
		struct cat_ent *pc = &cur;

		cur.start_ms = q.cur_start;
		memcpy(cur.session, q.cur_session, 16);
		memset(cur.sentinel, 0xff, 16); /* after every entry of that start and id */
		while (first < n && cat_order_cmp(&rows[first], &pc) <= 0)
			first++;
	}
	end = first + (size_t)q.limit < n ? first + (size_t)q.limit : n;
	arr = json_array();
	if (arr == NULL) {
		err = -ENOMEM;
		goto fail;
	}
	for (size_t i = first; i < end; i++) {
		json_t *j = cat_entry_json(h, &sc, rows[i]);

		if (j == NULL || json_array_append_new(arr, j) < 0) {
			err = -ENOMEM;
			goto fail;
		}
	}
	if (end < n) {
		err = cat_next_link(&q, rows[end - 1], link, sizeof(link));
		if (err < 0)
			goto fail;
		hs_link_next(r, link);
	}
	hs_json(r, 200, arr);
	arr = NULL;
	goto out;
fail:
	log_error(err, "GET /api/sessions failed");
	hs_error(r, 500, "the sessions could not be listed");
out:
	json_decref(arr);
	free(rows);
	/* What was read of the disk is the next request's cache. */
	if (err == 0) {
		free(c->v);
		c->v = sc.v;
		c->n = sc.n;
		sc.v = NULL;
	}
	free(sc.v);
	free(sc.ring);
	free(sc.segs);
}

void
catalog_free(struct httpd *h)
{
	if (h->catalog == NULL)
		return;
	free(h->catalog->v);
	free(h->catalog);
	h->catalog = NULL;
}
