/* viewlog: relay's live views kept in a journal until their audit record is
 * durable (viewlog.h). The views live in a list in key order, which is the
 * order their begin lines have in the file; the recovery at open looks keys
 * up in that order with a binary search. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "id.h"
#include "log.h"
#include "proc.h"
#include "stage.h"
#include "viewlog.h"

#define VIEWLOG_ALIVE_MS    1000
#define VIEWLOG_RETRY_MS    1000
#define VIEWLOG_COMPACT_MIN (64 << 10)
#define VIEWLOG_MAX_BYTES   (64 << 20) /* a file larger than this was not written by us */
/* A record waits for its ack as long as the outbox keeps it: the done
 * callback's timeout is of no use here. */
#define VIEWLOG_WAIT_MS INT_MAX

enum viewlog_state {
	VIEW_OPEN,
	VIEW_ENDED,  /* its record is to go to the outbox (it was refused: full) */
	VIEW_QUEUED, /* its record is in the outbox, waiting for the ack */
};

struct relay_view {
	struct relay_view *prev, *next;
	struct relay_viewlog *vl;
	uint64_t key;
	enum viewlog_state state;
	int64_t from, to;
	size_t line_len; /* of its begin line, for the compaction's estimate */
	char role[16];
	char remote[64];
	char sentinel[ID_STR_LEN], session[ID_STR_LEN];
	char actor[]; /* the token's configured name */
};

struct relay_viewlog {
	struct audit *audit;
	int dirfd, fd;
	char name[256];
	struct relay_view *head, *tail;
	uint64_t next_key;
	int64_t alive_ms, retry_ms; /* unix ms of the last "alive" line and retry */
	uint64_t file_bytes;        /* the file's size as we wrote it */
	uint64_t live_bytes;        /* what its live views take */
	bool rewrite;               /* a write failed: the file may hold a torn line */
	char via[32];               /* every record's "via" ("": none) */
	int64_t warned_ms;
	struct relay_viewlog_figures fig;
};

static struct relay_view *
viewlog_view_new(const char *actor, const char *role, const char *remote, const char *sentinel,
		 const char *session, int64_t from)
{
	size_t n = strlen(actor) + 1;
	struct relay_view *v = calloc(1, sizeof(*v) + n);

	if (v == NULL)
		return NULL;
	memcpy(v->actor, actor, n);
	snprintf(v->role, sizeof(v->role), "%s", role);
	snprintf(v->remote, sizeof(v->remote), "%s", remote);
	snprintf(v->sentinel, sizeof(v->sentinel), "%s", sentinel);
	snprintf(v->session, sizeof(v->session), "%s", session);
	v->from = from;
	return v;
}

static void
viewlog_link(struct relay_viewlog *vl, struct relay_view *v)
{
	v->vl = vl;
	v->key = vl->next_key++;
	v->prev = vl->tail;
	*(vl->tail != NULL ? &vl->tail->next : &vl->head) = v;
	vl->tail = v;
}

static void
viewlog_unlink(struct relay_viewlog *vl, struct relay_view *v)
{
	*(v->prev != NULL ? &v->prev->next : &vl->head) = v->next;
	*(v->next != NULL ? &v->next->prev : &vl->tail) = v->prev;
	vl->live_bytes -= v->line_len;
}

/* The begin line; with "to" for a view that ended. */
static json_t *
viewlog_begin_line(const struct relay_view *v)
{
	json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I}", "k", (json_int_t)v->key,
			      "actor", v->actor, "role", v->role, "remote", v->remote, "sentinelId",
			      v->sentinel, "sessionId", v->session, "from", (json_int_t)v->from);

	if (j != NULL && v->state != VIEW_OPEN)
		json_object_set_new(j, "to", json_integer(v->to));
	return j;
}

/* The file is made with the first view: a relay that had none leaves none. */
static int
viewlog_fd(struct relay_viewlog *vl)
{
	if (vl->fd < 0) {
		vl->fd = openat(vl->dirfd, vl->name,
				O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (vl->fd < 0)
			return -errno;
	}
	return 0;
}

/* Nothing is live: no file, the clearest way to say that nothing is left to
 * record; the next view makes it again. */
static void
viewlog_remove(struct relay_viewlog *vl)
{
	if (vl->dirfd < 0)
		return;
	if (unlinkat(vl->dirfd, vl->name, 0) < 0 && errno != ENOENT)
		log_warn(-errno, "audit: %s not removed", vl->name);
	if (vl->fd >= 0)
		close(vl->fd);
	vl->fd = -1;
	vl->file_bytes = 0;
	vl->rewrite = false;
}

/* Appends one line (j is taken); its length, or 0 when it was not written. */
static size_t
viewlog_write(struct relay_viewlog *vl, json_t *j)
{
	char *text;
	size_t len = 0;
	int r = -ENOMEM;

	if (vl->dirfd < 0) { /* without a file */
		json_decref(j);
		return 0;
	}
	text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (text != NULL) {
		len = strlen(text);
		text[len++] = '\n'; /* over the NUL: the text is not used as a string again */
		r = viewlog_fd(vl);
		if (r >= 0)
			r = files_write_all(vl->fd, text, len);
	}
	free(text);
	if (r < 0) {
		vl->fig.errors++;
		vl->rewrite = true;
		if (proc_mono_ms() - vl->warned_ms >= 10000) {
			vl->warned_ms = proc_mono_ms();
			log_error(r,
				  "audit: %s not written: a relay killed now may not record "
				  "its proctors' views",
				  vl->name);
		}
		return 0;
	}
	vl->fig.writes++;
	vl->fig.bytes += len;
	vl->file_bytes += len;
	return len;
}

static void viewlog_acked(void *ctx, int status);

static void
viewlog_emit(struct relay_viewlog *vl, struct relay_view *v)
{
	json_t *rec = audit_record_as("live.view", v->actor, v->role, v->remote);

	/* time: the event the record is about, the view's end (docs/audit.md);
	 * a recovered view's is in the past. Set in place: the key order stays. */
	if (rec != NULL &&
	    (json_object_set_new(rec, "time", json_integer(v->to)) < 0 ||
	     json_object_set_new(rec, "sentinelId", json_string(v->sentinel)) < 0 ||
	     json_object_set_new(rec, "sessionId", json_string(v->session)) < 0 ||
	     json_object_set_new(rec, "from", json_integer(v->from)) < 0 ||
	     json_object_set_new(rec, "to", json_integer(v->to)) < 0 ||
	     (vl->via[0] != '\0' && json_object_set_new(rec, "via", json_string(vl->via)) < 0))) {
		json_decref(rec);
		rec = NULL;
	}
	v->state = VIEW_QUEUED;
	/* NULL rec or a full outbox: viewlog_acked hears of it at once. */
	audit_emit(vl->audit, rec, VIEWLOG_WAIT_MS, viewlog_acked, v);
}

/* The outbox's callback, in the relay's loop (or in stage_free's last wait). */
static void
viewlog_acked(void *ctx, int status)
{
	struct relay_view *v = ctx;
	struct relay_viewlog *vl = v->vl;

	if (status == -ETIMEDOUT)
		return; /* after VIEWLOG_WAIT_MS: still queued, still kept */
	if (status < 0) {
		v->state = VIEW_ENDED; /* the outbox is full: again at the next retry */
		return;
	}
	viewlog_write(vl, json_pack("{s:I, s:b}", "k", (json_int_t)v->key, "done", 1));
	viewlog_unlink(vl, v);
	vl->fig.waiting--;
	free(v);
	if (vl->head == NULL)
		viewlog_remove(vl);
}

/* Appends j's text and a newline to buf (j is taken). */
static int
viewlog_buf_add(char **buf, size_t *len, size_t *cap, json_t *j)
{
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	size_t n = text != NULL ? strlen(text) : 0;
	int r = 0;

	json_decref(j);
	if (text == NULL)
		return -ENOMEM;
	if (*len + n + 1 > *cap) {
		size_t ncap = (*len + n + 1) * 2;
		char *nbuf = realloc(*buf, ncap);

		if (nbuf == NULL) {
			r = -ENOMEM;
			goto out;
		}
		*buf = nbuf;
		*cap = ncap;
	}
	memcpy(*buf + *len, text, n);
	(*buf)[*len + n] = '\n';
	*len += n + 1;
out:
	free(text);
	return r;
}

/* The file rewritten with only the live views (and the alive time). */
static int
viewlog_compact(struct relay_viewlog *vl, int64_t now_ms)
{
	int64_t t0 = proc_mono_us();
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, r = 0;

	for (struct relay_view *v = vl->head; v != NULL && r == 0; v = v->next)
		r = viewlog_buf_add(&buf, &len, &cap, viewlog_begin_line(v));
	if (r == 0 && vl->fig.open > 0)
		r = viewlog_buf_add(&buf, &len, &cap,
				    json_pack("{s:I}", "alive", (json_int_t)now_ms));
	if (r == 0)
		r = files_replace(vl->dirfd, vl->name, buf, len, 0600, false);
	free(buf);
	if (r < 0)
		return r;
	fd = openat(vl->dirfd, vl->name, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (vl->fd >= 0)
		close(vl->fd);
	vl->fd = fd;
	if (vl->fig.open > 0)
		vl->alive_ms = now_ms;
	vl->file_bytes = len;
	vl->rewrite = false;
	vl->fig.compactions++;
	vl->fig.compact_us = (uint64_t)(proc_mono_us() - t0);
	vl->fig.bytes += len;
	return 0;
}

/* ---- what a previous process left ---- */

static struct relay_view *
viewlog_find(struct relay_view **v, size_t n, uint64_t key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid]->key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo]->key == key ? v[lo] : NULL;
}

/* One begin line: a view, or NULL when a field is missing. */
static struct relay_view *
viewlog_parse_begin(json_t *j, uint64_t key)
{
	const char *actor = json_string_value(json_object_get(j, "actor"));
	const char *role = json_string_value(json_object_get(j, "role"));
	const char *remote = json_string_value(json_object_get(j, "remote"));
	const char *sentinel = json_string_value(json_object_get(j, "sentinelId"));
	const char *session = json_string_value(json_object_get(j, "sessionId"));
	json_t *from = json_object_get(j, "from"), *to = json_object_get(j, "to");
	struct relay_view *v;

	if (actor == NULL || role == NULL || remote == NULL || sentinel == NULL ||
	    session == NULL || !json_is_integer(from))
		return NULL;
	v = viewlog_view_new(actor, role, remote, sentinel, session, json_integer_value(from));
	if (v == NULL)
		return NULL;
	v->key = key;
	v->to = json_is_integer(to) ? json_integer_value(to) : 0;
	v->state = json_is_integer(to) ? VIEW_ENDED : VIEW_OPEN;
	return v;
}

/* Every line of the old file into views (sorted by key, as written); the
 * ones done dropped. *ret_alive: the last alive time. A line that does not
 * parse (a torn last line, say) is passed over. */
static int
viewlog_parse(char *buf, size_t len, struct relay_view ***ret_v, size_t *ret_n, int64_t *ret_alive,
	      size_t *ret_bad)
{
	struct relay_view **v = NULL, *e;
	size_t n = 0, cap = 0, bad = 0;
	int64_t alive = 0;
	char *p = buf, *end = buf + len, *nl;
	json_t *j, *k;

	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (nl == p)
			continue;
		j = json_loadb(p, (size_t)(nl - p), 0, NULL);
		k = json_object_get(j, "k");
		if (json_is_integer(json_object_get(j, "alive"))) {
			if (json_integer_value(json_object_get(j, "alive")) > alive)
				alive = json_integer_value(json_object_get(j, "alive"));
		} else if (!json_is_integer(k) || json_integer_value(k) < 0) {
			bad++;
		} else if (json_object_get(j, "sentinelId") != NULL) {
			e = viewlog_parse_begin(j, (uint64_t)json_integer_value(k));
			if (e == NULL || (n > 0 && v[n - 1]->key >= e->key)) {
				free(e);
				bad++;
			} else {
				if (n == cap) {
					struct relay_view **nv;

					cap = cap > 0 ? 2 * cap : 64;
					nv = realloc(v, cap * sizeof(*v));
					if (nv == NULL) {
						free(e);
						json_decref(j);
						goto err_nomem;
					}
					v = nv;
				}
				v[n++] = e;
			}
		} else if ((e = viewlog_find(v, n, (uint64_t)json_integer_value(k))) == NULL) {
			bad++;
		} else if (json_is_integer(json_object_get(j, "to"))) {
			e->to = json_integer_value(json_object_get(j, "to"));
			e->state = VIEW_ENDED;
		} else if (json_is_true(json_object_get(j, "done"))) {
			e->state = VIEW_QUEUED; /* marks it done: dropped below */
		} else {
			bad++;
		}
		json_decref(j);
	}
	*ret_v = v;
	*ret_n = n;
	*ret_alive = alive;
	*ret_bad = bad;
	return 0;

err_nomem:
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return -ENOMEM;
}

static int
viewlog_read(struct relay_viewlog *vl, char **ret_buf, size_t *ret_len)
{
	struct stat sb;
	char *buf;
	size_t got = 0;
	ssize_t n;
	int fd, r = 0;

	fd = openat(vl->dirfd, vl->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > VIEWLOG_MAX_BYTES) {
		r = -EINVAL;
		goto out;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (buf == NULL) {
		r = -ENOMEM;
		goto out;
	}
	while (got < (size_t)sb.st_size &&
	       ((n = read(fd, buf + got, (size_t)sb.st_size - got)) > 0 ||
		(n < 0 && errno == EINTR)))
		got += n > 0 ? (size_t)n : 0;
	*ret_buf = buf;
	*ret_len = got;
out:
	close(fd);
	return r;
}

/* The views a previous process left: ended (to: its end line, else the last
 * alive time, never before from), written as such, then recorded. */
static int
viewlog_recover(struct relay_viewlog *vl, int64_t now_ms)
{
	struct relay_view **v = NULL;
	size_t len = 0, n = 0, bad = 0;
	char *buf = NULL;
	int64_t alive = 0;
	int r;

	r = viewlog_read(vl, &buf, &len);
	if (r < 0)
		return r;
	if (buf != NULL) {
		r = viewlog_parse(buf, len, &v, &n, &alive, &bad);
		free(buf);
		if (r < 0)
			return r;
	}
	if (bad > 0)
		log_warn(0, "audit: %zu line%s of %s passed over", bad, bad == 1 ? "" : "s",
			 vl->name);
	for (size_t i = 0; i < n; i++) {
		if (v[i]->state == VIEW_QUEUED) { /* its done line came */
			free(v[i]);
			continue;
		}
		if (v[i]->state == VIEW_OPEN)
			v[i]->to = alive;
		if (v[i]->to < v[i]->from)
			v[i]->to = v[i]->from;
		v[i]->state = VIEW_ENDED;
		viewlog_link(vl, v[i]);
		vl->fig.recovered++;
		vl->fig.waiting++;
	}
	free(v);
	for (struct relay_view *e = vl->head; e != NULL; e = e->next) {
		e->line_len = 256;
		vl->live_bytes += e->line_len;
	}
	if (vl->head == NULL) { /* nothing left: no file until the first view */
		viewlog_remove(vl);
		return 0;
	}
	/* The file says they ended before any record goes: a second death now
	 * sends the same records, not views of unknown length. */
	r = viewlog_compact(vl, now_ms);
	if (r < 0)
		return r;
	if (vl->fig.recovered > 0)
		log_info("audit: %llu view%s a previous relay left recorded",
			 (unsigned long long)vl->fig.recovered, vl->fig.recovered == 1 ? "" : "s");
	/* A full outbox refuses the rest: they go with relay_viewlog_tick's retries. */
	for (struct relay_view *e = vl->head; e != NULL && e->state == VIEW_ENDED; e = e->next) {
		viewlog_emit(vl, e);
		if (e->state == VIEW_ENDED)
			break;
	}
	return 0;
}

static void
viewlog_free(struct relay_viewlog *vl)
{
	struct relay_view *v, *next;

	for (v = vl->head; v != NULL; v = next) {
		next = v->next;
		free(v);
	}
	if (vl->fd >= 0)
		close(vl->fd);
	if (vl->dirfd >= 0)
		close(vl->dirfd);
	free(vl);
}

int
relay_viewlog_open(const char *dir, const char *name, struct audit *a, int64_t now_ms,
		   struct relay_viewlog **ret)
{
	return relay_viewlog_open_via(dir, name, NULL, a, now_ms, ret);
}

int
relay_viewlog_open_via(const char *dir, const char *name, const char *via, struct audit *a,
		       int64_t now_ms, struct relay_viewlog **ret)
{
	struct relay_viewlog *vl;
	int r;

	vl = calloc(1, sizeof(*vl));
	if (vl == NULL)
		return -ENOMEM;
	snprintf(vl->via, sizeof(vl->via), "%s", via != NULL ? via : "");
	vl->audit = a;
	vl->fd = -1;
	vl->dirfd = -1;
	vl->next_key = 1;
	if (dir == NULL) {
		*ret = vl;
		return 0;
	}
	if ((size_t)snprintf(vl->name, sizeof(vl->name), "%s", name) >= sizeof(vl->name)) {
		r = -ENAMETOOLONG;
		goto err_free;
	}
	r = files_mkdirs(dir, 0700);
	if (r < 0)
		goto err_free;
	vl->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (vl->dirfd < 0) {
		r = -errno;
		goto err_free;
	}
	r = viewlog_recover(vl, now_ms);
	if (r < 0)
		goto err_close;
	*ret = vl;
	return 0;

err_close:
	/* The file stays as it is for whoever looks into why. */
	viewlog_free(vl);
	return r;
err_free:
	free(vl);
	return r;
}

struct relay_viewlog *
relay_viewlog_for(struct stage *st, const char *name, const char *via)
{
	const struct cfg *cfg = stage_cfg(st);
	struct relay_viewlog *vl;
	char dir[4096];
	int r;

	/* archive owns data_dir/audit and makes it 0700, and data_dir 0750
	 * (archive/loop.c); this stage may start first, so it makes them alike. */
	if (snprintf(dir, sizeof(dir), "%s/audit", cfg->data_dir) >= (int)sizeof(dir)) {
		r = -ENAMETOOLONG;
		goto err;
	}
	r = files_mkdirs(cfg->data_dir, 0750);
	if (r < 0)
		goto err;
	r = relay_viewlog_open_via(dir, name, via, stage_audit(st), proc_now_ms(), &vl);
	if (r == 0)
		return vl;
err:
	log_error(r,
		  "audit: the views' state file %s/audit/%s cannot be used: a %s killed "
		  "mid-view will not record those views",
		  cfg->data_dir, name, stage_name(st));
	return relay_viewlog_open_via(NULL, name, via, stage_audit(st), 0, &vl) == 0 ? vl : NULL;
}

void
relay_viewlog_close(struct relay_viewlog *vl)
{
	if (vl == NULL)
		return;
	if (vl->head == NULL)
		viewlog_remove(vl);
	viewlog_free(vl);
}

struct relay_view *
relay_viewlog_begin(struct relay_viewlog *vl, const char *actor, const char *role,
		    const char *remote, const char *sentinel_id, const char *session_id,
		    int64_t from_ms)
{
	struct relay_view *v =
		viewlog_view_new(actor, role, remote, sentinel_id, session_id, from_ms);

	if (v == NULL) {
		log_error(-ENOMEM, "audit: a view of %s is not recorded", sentinel_id);
		return NULL;
	}
	viewlog_link(vl, v);
	v->state = VIEW_OPEN;
	v->line_len = viewlog_write(vl, viewlog_begin_line(v));
	if (v->line_len == 0)
		v->line_len = 256;
	vl->live_bytes += v->line_len;
	vl->fig.open++;
	return v;
}

void
relay_viewlog_end(struct relay_viewlog *vl, struct relay_view *v, int64_t to_ms)
{
	v->to = to_ms > v->from ? to_ms : v->from;
	v->state = VIEW_ENDED;
	vl->fig.open--;
	vl->fig.waiting++;
	viewlog_write(vl,
		      json_pack("{s:I, s:I}", "k", (json_int_t)v->key, "to", (json_int_t)v->to));
	viewlog_emit(vl, v);
}

void
relay_viewlog_tick(struct relay_viewlog *vl, int64_t now_ms)
{
	int r;

	if (vl->fig.open > 0 && now_ms - vl->alive_ms >= VIEWLOG_ALIVE_MS) {
		viewlog_write(vl, json_pack("{s:I}", "alive", (json_int_t)now_ms));
		vl->alive_ms = now_ms;
	}
	if (now_ms - vl->retry_ms >= VIEWLOG_RETRY_MS) {
		vl->retry_ms = now_ms;
		for (struct relay_view *v = vl->head, *next; v != NULL; v = next) {
			next = v->next;
			if (v->state != VIEW_ENDED)
				continue;
			viewlog_emit(vl, v);
			if (v->state == VIEW_ENDED)
				break; /* the outbox is still full: the rest wait with it */
		}
	}
	if (vl->dirfd >= 0 && (vl->rewrite || (vl->file_bytes > VIEWLOG_COMPACT_MIN &&
					       vl->file_bytes > 4 * vl->live_bytes))) {
		r = viewlog_compact(vl, now_ms);
		if (r < 0 && proc_mono_ms() - vl->warned_ms >= 10000) {
			vl->warned_ms = proc_mono_ms();
			log_error(r, "audit: %s not rewritten", vl->name);
		}
	}
}

void
relay_viewlog_figures(const struct relay_viewlog *vl, struct relay_viewlog_figures *ret)
{
	*ret = vl->fig;
}
