/* aread: GET /api/audit and GET /api/audit/verify (aread.h). Loop thread,
 * but for the check's job, which runs on the worker thread (work.h).
 *
 * The stream. The day files the query's time range can hold are read in
 * turn, at most AREAD_SLICE bytes per fill, and every complete line that
 * passes the filters goes out as it was on disk (a last line without its
 * newline is not there yet). A fill is asked for only once the socket took
 * the chunk before (hs_stream), so a connection holds one read buffer and one
 * chunk whatever the log's size and however slowly its client reads, and a
 * filter that skips most of the log still yields to the other clients every
 * AREAD_SLICE bytes.
 *
 * The check. One runs at a time. A request that comes while none runs starts
 * one and waits for it; one that comes while one runs waits for the next,
 * which starts when the running one ends (so its answer covers every record
 * written before it asked) and answers everyone who came meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive_read.h"
#include "aread.h"
#include "aread_chain.h"
#include "beneath.h"
#include "httpd.h"
#include "log.h"
#include "proc.h"
#include "work.h"

#define AREAD_SLICE          (256u << 10) /* bytes read from disk per fill, at most */
#define AREAD_BUF_START      (128u << 10) /* a stream's read buffer; grows for long lines */
#define AREAD_VERIFY_WAIT_MS (5 * 60 * 1000)

/* ---- GET /api/audit ----------------------------------------------------- */

struct aread_stream {
	struct aread_query q;
	int dirfd;
	int64_t *days; /* the day files to read, ascending */
	size_t n_days, next_day;
	int fd; /* the day file being read; -1 between files */
	char name[AREAD_NAME_LEN + 1];
	unsigned char *buf; /* buf[pos, have) read and not looked at yet */
	size_t cap, have, pos;
	bool skipping;              /* in a line over AREAD_LINE_MAX: dropped up to its end */
	size_t emit_off, emit_left; /* a passing line (and its '\n') being copied out */
	int64_t sent;               /* records sent */
};

/* data_dir/audit, never through a symlink: -ENOENT when there is none yet. */
static int
aread_dir(struct httpd *h)
{
	int dfd = ar_data_fd(h);

	if (dfd < 0)
		return -ENOENT;
	return beneath_open(dfd, "audit", O_RDONLY | O_DIRECTORY, 0);
}

static void
aread_stream_done(void *ctx)
{
	struct aread_stream *s = ctx;

	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->days);
	free(s->buf);
	free(s);
}

/* The next day file: 1 opened, 0 none left, -EIO. A file that retention
 * removed since the listing is passed over. */
static int
aread_next_file(struct aread_stream *s)
{
	while (s->next_day < s->n_days) {
		struct stat sb;

		aread_day_name(s->days[s->next_day++], s->name, sizeof(s->name));
		s->fd = beneath_open_file(s->dirfd, s->name, &sb);
		if (s->fd >= 0)
			return 1;
		if (s->fd != -ENOENT) {
			log_warn(s->fd, "audit/%s cannot be read: the answer is cut", s->name);
			s->fd = -1;
			return -EIO;
		}
		s->fd = -1;
	}
	return 0;
}

/* Room to read into: what was looked at goes, the buffer grows for a long
 * line, and a line over AREAD_LINE_MAX is dropped (no writer makes one). */
static int
aread_room(struct aread_stream *s)
{
	unsigned char *nb;
	size_t cap;

	if (s->pos > 0) {
		memmove(s->buf, s->buf + s->pos, s->have - s->pos);
		s->have -= s->pos;
		s->pos = 0;
	}
	if (s->have < s->cap)
		return 0;
	if (s->cap > AREAD_LINE_MAX) {
		log_warn(0, "a line of audit/%s is over %u bytes: left out", s->name,
			 AREAD_LINE_MAX);
		s->skipping = true;
		s->have = 0;
		return 0;
	}
	cap = s->cap * 2 > AREAD_LINE_MAX + 1 ? AREAD_LINE_MAX + 1 : s->cap * 2;
	nb = realloc(s->buf, cap);
	if (nb == NULL)
		return -ENOMEM;
	s->buf = nb;
	s->cap = cap;
	return 0;
}

static ssize_t
aread_fill(void *ctx, unsigned char *out, size_t size, bool *ret_end)
{
	struct aread_stream *s = ctx;
	size_t o = 0, budget = AREAD_SLICE;

	for (;;) {
		unsigned char *nl;

		if (s->emit_left > 0) {
			size_t k = s->emit_left < size - o ? s->emit_left : size - o;

			memcpy(out + o, s->buf + s->emit_off, k);
			o += k;
			s->emit_off += k;
			s->emit_left -= k;
			if (s->emit_left > 0)
				break; /* out is full */
			if (s->q.limit > 0 && s->sent >= s->q.limit) {
				*ret_end = true;
				break;
			}
			continue;
		}
		nl = memchr(s->buf + s->pos, '\n', s->have - s->pos);
		if (nl != NULL) {
			size_t start = s->pos, len = (size_t)(nl - (s->buf + start));

			s->pos += len + 1;
			if (s->skipping) {
				s->skipping = false;
			} else if (len > 0 &&
				   aread_match(&s->q, (const char *)s->buf + start, len)) {
				s->emit_off = start;
				s->emit_left = len + 1;
				s->sent++;
			}
			continue;
		}
		if (budget == 0)
			break;
		if (s->fd < 0) {
			int r = aread_next_file(s);

			if (r < 0)
				return r;
			if (r == 0) {
				*ret_end = true;
				break;
			}
		}
		if (aread_room(s) < 0)
			return -EIO;
		ssize_t n = read(s->fd, s->buf + s->have,
				 s->cap - s->have < budget ? s->cap - s->have : budget);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_warn(-errno, "read(audit/%s) failed: the answer is cut", s->name);
			return -EIO;
		}
		if (n == 0) {
			/* The file's end: a line without its newline is not there yet. */
			close(s->fd);
			s->fd = -1;
			s->have = s->pos = 0;
			s->skipping = false;
			continue;
		}
		s->have += (size_t)n;
		budget -= (size_t)n;
	}
	return (ssize_t)o;
}

static const struct hs_stream_ops aread_stream_ops = {
	.fill = aread_fill,
	.done = aread_stream_done,
};

/* The day files the query reads: 0, or -errno. */
static int
aread_plan(struct aread_stream *s)
{
	size_t k = 0;
	int r = aread_days(s->dirfd, &s->days, &s->n_days);

	if (r < 0)
		return r;
	for (size_t i = 0; i < s->n_days; i++)
		if (aread_day_wanted(&s->q, s->days[i]))
			s->days[k++] = s->days[i];
	s->n_days = k;
	return 0;
}

void
aread_get(struct httpd *h, struct hreq *r)
{
	struct aread_stream *s = calloc(1, sizeof(*s));
	char err[256];
	int e;

	if (s == NULL) {
		hs_error(r, 500, "out of memory");
		return;
	}
	s->fd = -1;
	s->dirfd = -1;
	if (aread_query_parse(hs_query(r), &s->q, err, sizeof(err)) < 0) {
		aread_stream_done(s);
		hs_error(r, 400, "%s", err);
		return;
	}
	s->dirfd = aread_dir(h);
	if (s->dirfd == -ENOENT) {
		s->dirfd = -1; /* no log yet: an empty one */
	} else if (s->dirfd < 0 || (e = aread_plan(s)) < 0) {
		log_warn(s->dirfd < 0 ? s->dirfd : e, "data_dir/audit cannot be read");
		aread_stream_done(s);
		hs_error(r, 500, "the audit log cannot be read");
		return;
	}
	s->cap = AREAD_BUF_START;
	s->buf = malloc(s->cap);
	if (s->buf == NULL) {
		aread_stream_done(s);
		hs_error(r, 500, "out of memory");
		return;
	}
	hs_stream(r, 200, "application/x-ndjson", &aread_stream_ops, s);
}

/* ---- GET /api/audit/verify ---------------------------------------------- */

struct aread_job {
	struct work_job wj; /* first: the worker's view of it */
	int n;              /* its number: requests wait for one */
	int dirfd;          /* -1: no audit directory */
	int dir_err;        /* opening it failed (-errno), else 0 */
	struct aread_verdict v;
	int64_t ms;
};

struct aread {
	struct work *work;
	int started, finished; /* the newest check started, and ended */
	bool running, again;
	json_t *result; /* the answer of check `finished` */
};

/* The worker thread. */
static void
aread_job_run(struct work_job *wj)
{
	struct aread_job *j = (struct aread_job *)wj;
	int64_t t0 = proc_mono_ms();

	if (j->dir_err < 0) {
		j->v = (struct aread_verdict){ .first_bad = -1, .base = -1, .head = -1 };
		snprintf(j->v.reason, sizeof(j->v.reason), "the audit directory cannot be read: %s",
			 strerror(-j->dir_err));
	} else {
		aread_chain_check(j->dirfd, &j->v);
	}
	j->ms = proc_mono_ms() - t0;
}

static void
aread_job_free(struct work_job *wj)
{
	struct aread_job *j = (struct aread_job *)wj;

	if (j->dirfd >= 0)
		close(j->dirfd);
	free(j);
}

static int
aread_start(struct httpd *h)
{
	struct aread *a = h->aread;
	struct aread_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return -ENOMEM;
	j->dirfd = aread_dir(h);
	if (j->dirfd < 0) {
		j->dir_err = j->dirfd == -ENOENT ? 0 : j->dirfd;
		j->dirfd = -1;
	}
	j->n = ++a->started;
	j->wj.run = aread_job_run;
	a->running = true;
	work_submit(a->work, &j->wj);
	return 0;
}

static json_t *
aread_null_or_int(int64_t v)
{
	return v < 0 ? json_null() : json_integer(v);
}

static json_t *
aread_verdict_json(const struct aread_verdict *v)
{
	return json_pack("{s:I,s:b,s:o,s:o,s:o,s:o,s:o,s:o}", "records", (json_int_t)v->records,
			 "ok", v->ok, "firstBad", aread_null_or_int(v->first_bad), "reason",
			 v->ok ? json_null() : json_string(v->reason), "file",
			 v->file[0] != '\0' ? json_string(v->file) : json_null(), "line",
			 aread_null_or_int(v->line > 0 ? v->line : -1), "base",
			 aread_null_or_int(v->base), "head", aread_null_or_int(v->head));
}

void
aread_service(struct httpd *h)
{
	struct aread *a = h->aread;
	struct work_job *done;

	if (a == NULL || a->work == NULL || (done = work_done(a->work)) == NULL)
		return;
	while (done != NULL) {
		struct aread_job *j = (struct aread_job *)done;

		done = done->next;
		if (j->v.ok)
			log_info("audit log checked: %lld records, chain intact (%lld ms)",
				 (long long)j->v.records, (long long)j->ms);
		else
			log_warn(0, "audit log checked: first bad record %lld (%s) in %s line %lld",
				 (long long)j->v.first_bad, j->v.reason,
				 j->v.file[0] ? j->v.file : "-", (long long)j->v.line);
		json_decref(a->result);
		a->result = aread_verdict_json(&j->v);
		a->finished = j->n;
		a->running = false;
		aread_job_free(&j->wj);
	}
	if (a->again) {
		a->again = false;
		if (aread_start(h) < 0)
			log_error(-ENOMEM, "the audit log's next check did not start");
	}
	hs_unpark(h, HS_PARK_AUDIT_CHECK, a->finished);
}

void
aread_verify_get(struct httpd *h, struct hreq *r)
{
	struct aread *a = h->aread;
	int ref = hs_park_ref(r);

	if (ref >= 0 && a != NULL && a->result != NULL && ref <= a->finished) {
		hs_json(r, 200, json_incref(a->result));
		return;
	}
	if (ref >= 0 && hs_parked_timed_out(r)) {
		hs_retry_after(r, 10);
		hs_error(r, 503, "the audit log's check is still running: ask again");
		return;
	}
	if (ref >= 0) {
		hs_park(r, HS_PARK_AUDIT_CHECK, ref, AREAD_VERIFY_WAIT_MS);
		return;
	}
	if (a == NULL || a->work == NULL) {
		hs_error(r, 503, "the audit log's checker is not running");
		return;
	}
	if (a->running) {
		a->again = true;
		ref = a->started + 1;
	} else if (aread_start(h) == 0) {
		ref = a->started;
	} else {
		hs_error(r, 500, "out of memory");
		return;
	}
	hs_park(r, HS_PARK_AUDIT_CHECK, ref, AREAD_VERIFY_WAIT_MS);
}

void
aread_init(struct httpd *h)
{
	struct aread *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return;
	a->work = work_new(h);
	if (a->work == NULL)
		log_error(-errno, "the audit log's checker did not start: /api/audit/verify "
				  "answers 503");
	h->aread = a;
}

void
aread_free(struct httpd *h)
{
	struct aread *a = h->aread;

	if (a == NULL)
		return;
	work_free(a->work, aread_job_free);
	json_decref(a->result);
	free(a);
	h->aread = NULL;
}
