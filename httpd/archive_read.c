/* archive_read: what vigil-httpd knows of recordings: the archive's layout on
 * disk (common/layout.h: session.json, index.jsonl, init and segment files)
 * merged with the segments the ring still holds, so a live session is listed
 * and served up to its newest segment before archive has written it. Runs in
 * the loop thread; reads only names it builds from validated ids. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive_read.h"
#include "beneath.h"
#include "forget.h"
#include "httpd.h"
#include "id.h"
#include "layout.h"
#include "log.h"
#include "proc.h"

#define AR_INIT_MAX   (16u << 20) /* an init file larger than this is refused */
#define AR_BITRATE_MS 5000

static int
ar_sha256_etag(const void *data, size_t len, char etag[HTTPD_ETAG_MAX])
{
	char hex[LAYOUT_SHA_HEX];
	int r = layout_sha256_hex(data, len, hex);

	if (r == 0)
		snprintf(etag, HTTPD_ETAG_MAX, "\"%s\"", hex);
	return r;
}

int
ar_ring_slot(struct httpd *h, const char *sentinel)
{
	uint8_t id[16];
	uint32_t slot;

	if (h->ring == NULL || id_parse(sentinel, id) < 0 ||
	    ring_sentinel_find(h->ring, id, &slot) < 0)
		return -1;
	return (int)slot;
}

int
ar_data_fd(struct httpd *h)
{
	if (h->data_fd < 0)
		h->data_fd = open(h->cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return h->data_fd;
}

/* A directory beneath data_dir ("." for data_dir itself), never a symlink. */
static DIR *
ar_opendir(struct httpd *h, const char *path)
{
	int fd = strcmp(path, ".") == 0
			 ? openat(ar_data_fd(h), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
			 : beneath_open(ar_data_fd(h), path, O_RDONLY | O_DIRECTORY, 0);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (d == NULL)
		close(fd);
	return d;
}

int
ar_session(struct httpd *h, const char *sentinel, const char *session, struct ar_sess *ret)
{
	char path[2 * ID_STR_LEN];
	struct ar_sess s = { .end_ms = -1, .ring_slot = -1 };
	struct layout_session ls;
	struct ring_sentinel rs;
	uint8_t sid[16];
	int slot, fd;

	if (ar_forgotten(h, session))
		return -ENOENT; /* hard-deleted: not even from the ring */
	snprintf(s.sentinel, sizeof(s.sentinel), "%s", sentinel);
	snprintf(s.session, sizeof(s.session), "%s", session);
	snprintf(path, sizeof(path), "%s/%s", sentinel, session);
	fd = beneath_open(ar_data_fd(h), path, O_RDONLY | O_DIRECTORY, 0);
	if (fd >= 0 && layout_session_read(fd, &ls) == 0) {
		s.on_disk = true;
		snprintf(s.name, sizeof(s.name), "%s", ls.name);
		snprintf(s.codec, sizeof(s.codec), "%s", ls.codec);
		s.width = ls.width;
		s.height = ls.height;
		s.timescale = ls.timescale;
		s.start_ms = ls.start_ms;
		s.end_ms = ls.end_ms;
		s.inits = (int)ls.inits;
	}
	if (fd >= 0)
		close(fd);
	slot = ar_ring_slot(h, sentinel);
	if (slot >= 0 && id_parse(session, sid) == 0 &&
	    ring_sentinel_get(h->ring, (uint32_t)slot, &rs, NULL, 0) == 0 &&
	    memcmp(rs.session, sid, 16) == 0) {
		s.ring_slot = slot;
		if (!s.on_disk) {
			snprintf(s.name, sizeof(s.name), "%s", rs.name);
			snprintf(s.codec, sizeof(s.codec), "%s", rs.codec);
			s.width = rs.width;
			s.height = rs.height;
			s.timescale = rs.timescale;
			s.start_ms = rs.session_start_ms;
			/* Not archived yet: ended when the sentinel is offline; the
			 * listing puts the end after the last segment. */
			s.end_ms = rs.online ? -1 : rs.session_start_ms;
			s.inits = (int)rs.init_gen;
		}
	}
	if (!s.on_disk && s.ring_slot < 0)
		return -ENOENT;
	*ret = s;
	return 0;
}

void
ar_seglist_free(struct ar_seglist *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
ar_seglist_add(struct ar_seglist *l, const struct ar_seg *g)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct ar_seg *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *g;
	return 0;
}

static int
seg_cmp(const void *a, const void *b)
{
	const struct ar_seg *x = a, *y = b;

	return x->sequence < y->sequence ? -1 : x->sequence > y->sequence;
}

const struct ar_seg *
ar_seglist_find(const struct ar_seglist *l, int64_t sequence)
{
	struct ar_seg key = { .sequence = sequence };

	if (l->n == 0)
		return NULL;
	return bsearch(&key, l->v, l->n, sizeof(key), seg_cmp);
}

/* Parsed index files, kept while the file is unchanged (same inode, size and
 * mtime): a segment request then costs a stat, not a parse of every line. An
 * index only grows by whole lines, and a rewrite (archive's repair) is a new
 * inode. */
#define AR_CACHE 32

struct ar_cached {
	char key[2 * ID_STR_LEN];
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct ar_seg *v;
	size_t n;
	uint64_t used;
};

static struct ar_cached ar_cache[AR_CACHE];
static uint64_t ar_cache_clock;

void
ar_cache_free(void)
{
	for (int i = 0; i < AR_CACHE; i++) {
		free(ar_cache[i].v);
		memset(&ar_cache[i], 0, sizeof(ar_cache[i]));
	}
}

/* Every entry of the index text (layout_index_next: complete lines that are
 * entries, ascending; the others are skipped as archive's repair drops them). */
static int
ar_parse_index(const char *buf, size_t len, struct ar_seglist *l)
{
	struct layout_index_iter it;
	struct layout_entry e;
	int r, n;

	layout_index_begin(&it, buf, len, -1);
	while ((n = layout_index_next(&it, &e, NULL, NULL)) != 0) {
		struct ar_seg g = { .sequence = e.sequence,
				    .start_ms = e.start_ms,
				    .duration_ms = e.duration_ms,
				    .bytes = e.bytes,
				    .keyframe = e.keyframe,
				    .init = (int)e.init };

		if (n < 0)
			continue;
		memcpy(g.sha256, e.sha256, sizeof(g.sha256));
		r = ar_seglist_add(l, &g);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The session's parsed index, from the cache (parsed again when the file
 * changed): *view points into the cache, valid until the next call. No index
 * file: an empty view. */
static int
ar_index(struct httpd *h, const struct ar_sess *s, struct ar_seglist *view)
{
	char path[PATH_MAX], key[2 * ID_STR_LEN], *buf = NULL;
	struct ar_cached *c = NULL, *lru = &ar_cache[0];
	struct ar_seglist l = { 0 };
	struct stat sb;
	size_t len;
	int fd, r;

	memset(view, 0, sizeof(*view));
	snprintf(path, sizeof(path), "%s/%s/" LAYOUT_INDEX, s->sentinel, s->session);
	snprintf(key, sizeof(key), "%s/%s", s->sentinel, s->session);
	fd = beneath_open_file(ar_data_fd(h), path, &sb);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	for (int i = 0; i < AR_CACHE; i++) {
		if (strcmp(ar_cache[i].key, key) == 0)
			c = &ar_cache[i];
		if (ar_cache[i].used < lru->used)
			lru = &ar_cache[i];
	}
	if (c == NULL || c->dev != sb.st_dev || c->ino != sb.st_ino || c->size != sb.st_size ||
	    c->mtime.tv_sec != sb.st_mtim.tv_sec || c->mtime.tv_nsec != sb.st_mtim.tv_nsec) {
		r = layout_index_read(fd, 0, &buf, &len);
		if (r == 0)
			r = ar_parse_index(buf, len, &l);
		if (r < 0) {
			ar_seglist_free(&l);
			goto out;
		}
		if (c == NULL)
			c = lru;
		free(c->v);
		*c = (struct ar_cached){ .dev = sb.st_dev,
					 .ino = sb.st_ino,
					 .size = sb.st_size,
					 .mtime = sb.st_mtim,
					 .v = l.v,
					 .n = l.n };
		snprintf(c->key, sizeof(c->key), "%s", key);
	}
	c->used = ++ar_cache_clock;
	view->v = c->v;
	view->n = c->n;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

static int
ar_read_index(struct httpd *h, const struct ar_sess *s, struct ar_seglist *l)
{
	struct ar_seglist view;
	int r = ar_index(h, s, &view);

	for (size_t i = 0; r == 0 && i < view.n; i++)
		r = ar_seglist_add(l, &view.v[i]);
	return r;
}

static void
ar_seg_from_ring(const struct ring_seg *m, uint64_t index, struct ar_seg *g)
{
	memset(g, 0, sizeof(*g));
	g->sequence = m->sequence;
	g->start_ms = m->start_ms;
	g->duration_ms = m->duration_ms;
	g->bytes = m->len;
	g->keyframe = (m->flags & RING_SEG_KEYFRAME) != 0;
	g->init = m->init_gen > 0 ? (int)m->init_gen - 1 : 0;
	g->ring = true;
	g->ring_index = index;
}

int
ar_segment_find(struct httpd *h, const struct ar_sess *s, int64_t sequence, struct ar_seg *ret)
{
	struct ar_seglist view;
	const struct ar_seg *g;
	uint8_t sid[16];
	int r = ar_index(h, s, &view);

	if (r < 0)
		return r;
	g = ar_seglist_find(&view, sequence);
	if (g != NULL) {
		*ret = *g;
		return 0;
	}
	if (view.n > 0 && sequence < view.v[view.n - 1].sequence)
		return -ENOENT; /* a gap the archive passed over */
	if (h->ring == NULL || id_parse(s->session, sid) < 0)
		return -ENOENT;
	/* Newest first: a segment not archived yet is a recent one. */
	for (uint64_t i = ring_head(h->ring), tail = ring_tail(h->ring); i-- > tail;) {
		struct ring_seg m;
		const void *data;

		if (ring_peek(h->ring, i, &m, &data) < 0 || memcmp(m.session, sid, 16) != 0)
			continue;
		if (m.sequence == sequence) {
			ar_seg_from_ring(&m, i, ret);
			return 0;
		}
		if (m.sequence < sequence)
			break; /* sequences only grow within a session */
	}
	return -ENOENT;
}

int
ar_segments(struct httpd *h, const struct ar_sess *s, struct ar_seglist *ret)
{
	struct ar_seglist l = { 0 };
	size_t indexed;
	uint8_t sid[16];
	int r;

	r = ar_read_index(h, s, &l);
	if (r < 0)
		goto fail;
	indexed = l.n;
	if (h->ring != NULL && id_parse(s->session, sid) == 0) {
		uint64_t head = ring_head(h->ring), i = ring_tail(h->ring);
		struct ar_seglist idx = { .v = l.v, .n = indexed };

		for (; i < head; i++) {
			struct ring_seg m;
			const void *data;
			struct ar_seg g = { 0 };

			if (ring_peek(h->ring, i, &m, &data) < 0 || memcmp(m.session, sid, 16) != 0)
				continue;
			idx.v = l.v;
			if (ar_seglist_find(&idx, m.sequence) != NULL)
				continue;
			if (indexed > 0 && m.sequence < l.v[indexed - 1].sequence)
				continue; /* a gap the archive passed over: its word stands */
			ar_seg_from_ring(&m, i, &g);
			r = ar_seglist_add(&l, &g);
			if (r < 0)
				goto fail;
		}
	}
	if (l.n > indexed)
		qsort(l.v, l.n, sizeof(*l.v), seg_cmp);
	*ret = l;
	return 0;
fail:
	ar_seglist_free(&l);
	return r;
}

int
ar_segment_body(struct httpd *h, const struct ar_sess *s, const struct ar_seg *g, struct hbody *b,
		char etag[HTTPD_ETAG_MAX])
{
	char path[PATH_MAX], name[32];
	struct ring_seg m;
	struct hbuf *buf;
	struct stat sb;
	int r;

	if (!g->ring) {
		layout_seg_name(g->sequence, name, sizeof(name));
		snprintf(path, sizeof(path), "%s/%s/%s", s->sentinel, s->session, name);
		if (beneath_stat_file(ar_data_fd(h), path, &sb) < 0 ||
		    (uint64_t)sb.st_size != g->bytes)
			return -ENOENT;
		snprintf(etag, HTTPD_ETAG_MAX, "\"%s\"", g->sha256);
		h->stats.file_served++;
		return body_add_file(b, ar_data_fd(h), path, 0, g->bytes);
	}
	if (h->mem_in_use + g->bytes > HTTPD_MEM_BUDGET)
		return -EBUSY;
	buf = hbuf_new(g->bytes);
	if (buf == NULL)
		return -ENOMEM;
	r = ring_read(h->ring, g->ring_index, &m, buf->data, buf->len);
	if (r == 0 && (m.sequence != g->sequence || m.len != g->bytes))
		r = -ESTALE;
	if (r == 0)
		r = ar_sha256_etag(buf->data, buf->len, etag);
	if (r == 0) {
		buf->account = &h->mem_in_use;
		h->mem_in_use += buf->len;
		r = body_add_mem(b, buf, 0, buf->len);
		h->stats.ring_served++;
	}
	hbuf_unref(buf);
	return r;
}

int
ar_init_body(struct httpd *h, const struct ar_sess *s, int gen, struct hbody *b,
	     char etag[HTTPD_ETAG_MAX])
{
	char path[PATH_MAX], name[32];
	struct ring_sentinel rs;
	struct ring_stats st;
	struct hbuf *buf = NULL;
	struct stat sb;
	int fd, r = -ENOENT;

	layout_init_name((uint32_t)gen, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s/%s", s->sentinel, s->session, name);
	fd = beneath_open_file(ar_data_fd(h), path, &sb);
	if (fd >= 0) {
		if (sb.st_size > AR_INIT_MAX) {
			r = -EFBIG;
			goto out;
		}
		buf = hbuf_new((size_t)sb.st_size);
		if (buf == NULL) {
			r = -ENOMEM;
			goto out;
		}
		if (read(fd, buf->data, buf->len) != (ssize_t)buf->len) {
			r = -EIO;
			goto out;
		}
		r = 0;
	} else if (s->ring_slot >= 0) {
		/* Not on disk yet: the ring keeps the sentinel's latest init. */
		ring_get_stats(h->ring, &st);
		buf = hbuf_new(st.max_init_bytes);
		if (buf == NULL) {
			r = -ENOMEM;
			goto out;
		}
		if (ring_sentinel_get(h->ring, (uint32_t)s->ring_slot, &rs, buf->data, buf->len) ==
			    0 &&
		    rs.init_len > 0 && (int)rs.init_gen - 1 == gen) {
			buf->len = rs.init_len;
			r = 0;
		}
	}
	if (r == 0)
		r = ar_sha256_etag(buf->data, buf->len, etag);
	if (r == 0)
		r = body_add_mem(b, buf, 0, buf->len);
out:
	hbuf_unref(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

json_t *
ar_segments_json(const struct ar_sess *s, const struct ar_seglist *l)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr != NULL && i < l->n; i++) {
		const struct ar_seg *g = &l->v[i];

		json_array_append_new(arr, json_pack("{s:I, s:I, s:I, s:I, s:b, s:i}", "sequence",
						     (json_int_t)g->sequence, "startTime",
						     (json_int_t)g->start_ms, "duration",
						     (json_int_t)g->duration_ms, "bytes",
						     (json_int_t)g->bytes, "keyframe", g->keyframe,
						     "init", g->init));
	}
	return json_pack("{s:s, s:s, s:o*}", "sentinelId", s->sentinel, "sessionId", s->session,
			 "segments", arr);
}

/* The end of a session that archive has not closed on disk yet. */
static void
ar_fix_end(struct ar_sess *s, const struct ar_seglist *l)
{
	if (!s->on_disk && s->end_ms >= 0 && l->n > 0)
		s->end_ms = l->v[l->n - 1].start_ms + l->v[l->n - 1].duration_ms;
}

static json_t *
ar_session_json(struct httpd *h, struct ar_sess *s)
{
	struct ar_seglist l;
	uint64_t bytes = 0, dur = 0;
	json_t *j;

	if (ar_segments(h, s, &l) < 0)
		return NULL;
	ar_fix_end(s, &l);
	for (size_t i = 0; i < l.n; i++) {
		bytes += l.v[i].bytes;
		dur += l.v[i].duration_ms;
	}
	j = json_pack("{s:s, s:I, s:o, s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:b}", "sessionId",
		      s->session, "startTime", (json_int_t)s->start_ms, "endTime",
		      s->end_ms < 0 ? json_null() : json_integer(s->end_ms), "segments",
		      (json_int_t)l.n, "bytes", (json_int_t)bytes, "durationMs", (json_int_t)dur,
		      "name", s->name, "codec", s->codec, "width", (json_int_t)s->width, "height",
		      (json_int_t)s->height, "live", s->end_ms < 0);
	ar_seglist_free(&l);
	return j;
}

static int
ar_cmp_start(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "startTime"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "startTime"));

	return x < y ? -1 : x > y;
}

int
ar_sessions_json(struct httpd *h, const char *sentinel, json_t **ret)
{
	char cur[ID_STR_LEN] = "";
	struct ring_sentinel rs;
	json_t *arr = json_array(), **v = NULL;
	struct dirent *de;
	struct ar_sess s;
	size_t n;
	DIR *d;
	int slot = ar_ring_slot(h, sentinel);

	if (arr == NULL)
		return -ENOMEM;
	if (slot >= 0 && ring_sentinel_get(h->ring, (uint32_t)slot, &rs, NULL, 0) == 0 &&
	    !id_is_nil(rs.session))
		id_format(rs.session, cur);
	d = ar_opendir(h, sentinel);
	if (d == NULL && slot < 0) {
		json_decref(arr);
		return -ENOENT;
	}
	while (d != NULL && (de = readdir(d)) != NULL) {
		json_t *j;

		if (!layout_id_name(de->d_name, NULL) ||
		    ar_session(h, sentinel, de->d_name, &s) < 0 || !s.on_disk)
			continue;
		if (strcmp(de->d_name, cur) == 0)
			cur[0] = '\0'; /* listed from disk already */
		j = ar_session_json(h, &s);
		if (j != NULL)
			json_array_append_new(arr, j);
	}
	if (d != NULL)
		closedir(d);
	if (cur[0] != '\0' && ar_session(h, sentinel, cur, &s) == 0) {
		json_t *j = ar_session_json(h, &s);

		if (j != NULL)
			json_array_append_new(arr, j);
	}
	/* Oldest first. */
	n = json_array_size(arr);
	v = calloc(n ? n : 1, sizeof(*v));
	if (v == NULL) {
		json_decref(arr);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, n, sizeof(*v), ar_cmp_start);
	json_array_clear(arr);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, v[i]);
	free(v);
	*ret = arr;
	return 0;
}

/* The newest archived session of an offline sentinel, for its Sentinel entry. */
static void
ar_newest_session(struct httpd *h, const char *sentinel, json_t *o)
{
	char best[ID_STR_LEN] = "";
	struct ar_sess s, bs;
	struct dirent *de;
	DIR *d;

	d = ar_opendir(h, sentinel);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!layout_id_name(de->d_name, NULL) ||
		    ar_session(h, sentinel, de->d_name, &s) < 0 || !s.on_disk)
			continue;
		if (best[0] == '\0' || s.start_ms > bs.start_ms) {
			bs = s;
			snprintf(best, sizeof(best), "%.36s", de->d_name);
		}
	}
	closedir(d);
	if (best[0] == '\0')
		return;
	{
		struct ar_seglist l;
		int64_t last = -1;

		if (ar_segments(h, &bs, &l) == 0) {
			if (l.n > 0)
				last = l.v[l.n - 1].sequence;
			ar_seglist_free(&l);
		}
		json_object_set_new(o, "sessionId", json_string(best));
		json_object_set_new(o, "codec", json_string(bs.codec));
		json_object_set_new(o, "width", json_integer(bs.width));
		json_object_set_new(o, "height", json_integer(bs.height));
		json_object_set_new(o, "startedAt", json_integer(bs.start_ms));
		json_object_set_new(o, "lastSequence", json_integer(last));
		if (json_string_value(json_object_get(o, "name"))[0] == '\0')
			json_object_set_new(o, "name", json_string(bs.name));
	}
}

json_t *
ar_sentinels_json(struct httpd *h)
{
	json_t *arr = json_array(), *seen = json_object();
	uint32_t n = h->ring != NULL ? ring_sentinel_slots(h->ring) : 0;
	uint64_t *bits = n ? calloc(n, sizeof(*bits)) : NULL;
	struct dirent *de;
	DIR *d;

	if (arr == NULL || seen == NULL || (n > 0 && bits == NULL))
		goto fail;
	if (n > 0) {
		/* Bytes per sentinel over the last 5 s of start times: the bitrate. */
		int64_t since = proc_now_ms() - AR_BITRATE_MS;
		uint64_t head = ring_head(h->ring);

		for (uint64_t i = ring_tail(h->ring); i < head; i++) {
			struct ring_seg m;
			const void *data;

			if (ring_peek(h->ring, i, &m, &data) == 0 && m.sentinel < n &&
			    m.start_ms >= since)
				bits[m.sentinel] += (uint64_t)m.len * 8;
		}
	}
	for (uint32_t slot = 0; slot < n; slot++) {
		struct ring_sentinel rs;
		char id[ID_STR_LEN], sess[ID_STR_LEN];
		json_t *o;

		/* An offline sentinel whose last session was hard-deleted is listed
		 * from the disk below, if at all, never with that session. */
		if (ring_sentinel_get(h->ring, slot, &rs, NULL, 0) < 0 || id_is_nil(rs.id) ||
		    ar_forgotten_id(h, rs.session))
			continue;
		id_format(rs.id, id);
		id_format(rs.session, sess);
		o = json_pack("{s:s, s:s, s:s, s:b, s:s, s:i, s:i, s:I, s:I, s:I, s:b}",
			      "sentinelId", id, "name", rs.name, "sessionId", sess, "online",
			      rs.online, "codec", rs.codec, "width", (int)rs.width, "height",
			      (int)rs.height, "startedAt", (json_int_t)rs.session_start_ms,
			      "lastSequence", (json_int_t)rs.last_sequence, "bitrate",
			      (json_int_t)(bits[slot] * 1000 / AR_BITRATE_MS), "archived", false);
		if (o == NULL)
			goto fail;
		json_object_set(seen, id, o);
		json_array_append_new(arr, o);
	}
	d = ar_opendir(h, ".");
	while (d != NULL && (de = readdir(d)) != NULL) {
		struct layout_sentinel ls = { .name = "" };
		json_t *o;
		int sfd;

		/* A sentinel is a directory of ours, never a symlink to one. */
		if (!layout_id_name(de->d_name, NULL))
			continue;
		sfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			continue;
		o = json_object_get(seen, de->d_name);
		if (o == NULL && layout_sentinel_read(sfd, &ls) < 0)
			ls.name[0] = '\0';
		close(sfd);
		if (o != NULL) {
			json_object_set_new(o, "archived", json_true());
			continue;
		}
		o = json_pack("{s:s, s:s, s:n, s:b, s:s, s:i, s:i, s:n, s:i, s:i, s:b}",
			      "sentinelId", de->d_name, "name", ls.name, "sessionId", "online",
			      false, "codec", "", "width", 0, "height", 0, "startedAt",
			      "lastSequence", -1, "bitrate", 0, "archived", true);
		if (o == NULL)
			continue;
		ar_newest_session(h, de->d_name, o);
		json_array_append_new(arr, o);
	}
	if (d != NULL)
		closedir(d);
	json_decref(seen);
	free(bits);
	return arr;
fail:
	json_decref(arr);
	json_decref(seen);
	free(bits);
	return NULL;
}
