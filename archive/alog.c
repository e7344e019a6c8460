/* alog: the audit log writer (alog.h, docs/audit.md): the lines, the
 * writer thread, and the stage thread's side. The files are alog_disk.c's. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "alog_internal.h"
#include "files.h"
#include "log.h"
#include "proc.h"

/* ---- lines ------------------------------------------------------------- */

static void
alog_hex(const unsigned char *d, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The sender's text is trusted to be what common/audit.c made (compact
 * JSON from jansson, keys time first and id last): checking its shape here
 * costs a few string scans, where parsing and printing it again cost 30 us a
 * record and capped the writer near 30,000 records/s. A line that is not
 * JSON after all is what verify reports, like any damage. */
static bool
alog_shape_ok(const char *text, size_t len)
{
	static const char *const reserved[] = { "\"seq\":", "\"prev\":", "\"hash\":" };

	if (len < 16 || memcmp(text, "{\"time\":", 8) != 0 || text[len - 1] != '}' ||
	    memchr(text, '\n', len) != NULL || memchr(text, '\r', len) != NULL ||
	    memchr(text, '\0', len) != NULL || memmem(text, len, ",\"action\":\"", 11) == NULL ||
	    memmem(text, len, ",\"id\":\"", 7) == NULL)
		return false;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		if (memmem(text, len, reserved[i], strlen(reserved[i])) != NULL)
			return false;
	}
	return true;
}

char *
alog_line(uint64_t seq, const char *prev, const char *text, size_t len, char hash_out[65],
	  size_t *ret_len, int *ret_err)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *line;
	size_t n;

	if (!alog_shape_ok(text, len)) {
		*ret_err = -EINVAL;
		return NULL;
	}
	/* {"seq":N, + the sender's keys + ,"prev":"<64>" + } ... then the hash */
	line = malloc(len + 32 + 10 + 64 + 11 + 64 + 4);
	if (line == NULL) {
		*ret_err = -ENOMEM;
		return NULL;
	}
	n = (size_t)sprintf(line, "{\"seq\":%" PRIu64 ",", seq);
	memcpy(line + n, text + 1, len - 2);
	n += len - 2;
	n += (size_t)sprintf(line + n, ",\"prev\":\"%.64s\"}", prev);
	/* docs/audit.md: the SHA-256 of the line without ,"hash":"...", its } kept */
	SHA256((const unsigned char *)line, n, md);
	alog_hex(md, sizeof(md), hash_out);
	n--; /* the } goes after the hash */
	n += (size_t)sprintf(line + n, ",\"hash\":\"%s\"}\n", hash_out);
	*ret_len = n;
	return line;
}

struct alog_src *
alog_src_find(struct alog *al, const char *src, bool add)
{
	struct alog_src *s, *old = NULL;

	for (size_t i = 0; i < al->n_src; i++) {
		s = &al->src[i];
		if (strcmp(s->src, src) == 0)
			return s;
		if (old == NULL || s->used_ms < old->used_ms)
			old = s;
	}
	if (!add)
		return NULL;
	/* Full: the sender heard of longest ago goes (a process long gone). */
	s = al->n_src < ALOG_SRC_MAX ? &al->src[al->n_src++] : old;
	memset(s, 0, sizeof(*s));
	snprintf(s->src, sizeof(s->src), "%s", src);
	return s;
}

/* ---- the thread -------------------------------------------------------- */

static int
alog_buf_add(struct alog *al, const char *line, size_t len)
{
	if (al->buf_len + len > al->buf_cap) {
		size_t cap = al->buf_cap ? al->buf_cap : 65536;
		char *nb;

		while (cap < al->buf_len + len)
			cap *= 2;
		nb = realloc(al->buf, cap);
		if (nb == NULL)
			return -ENOMEM;
		al->buf = nb;
		al->buf_cap = cap;
	}
	memcpy(al->buf + al->buf_len, line, len);
	al->buf_len += len;
	return 0;
}

/* One record into the batch: the next one of its sender, else skipped. */
static void
alog_take(struct alog *al, const struct alog_in *in, uint64_t *seq, char prev[65])
{
	struct alog_src *s = alog_src_find(al, in->src, true);
	char hash[65], *line;
	size_t len;
	int err;

	snprintf(s->to, sizeof(s->to), "%s", in->from);
	s->used_ms = proc_mono_ms();
	/* Everything below base was acknowledged: to a writer before this one,
	 * perhaps, whose lines were older than the start-up scan read. */
	if (in->base > 0 && s->pending + 1 < in->base)
		s->pending = s->known = in->base - 1;
	s->ack = true;
	if (in->n != s->pending + 1) {
		/* Sent twice (written already), or one before it is missing (the
		 * bus dropped it: it comes again, and this one after it). */
		if (in->n <= s->pending) {
			pthread_mutex_lock(&al->mu);
			al->fig.dups++;
			pthread_mutex_unlock(&al->mu);
		}
		return;
	}
	line = alog_line(*seq + 1, prev, in->text, in->len, hash, &len, &err);
	if (line == NULL) {
		/* A stage's bug; never let it stop its later records. */
		log_error(err, "audit: a malformed record from %s skipped: %.200s", in->from,
			  in->text);
		pthread_mutex_lock(&al->mu);
		al->fig.refused++;
		pthread_mutex_unlock(&al->mu);
		s->pending = in->n;
		return;
	}
	if (alog_buf_add(al, line, len) < 0) {
		free(line);
		return;
	}
	free(line);
	(*seq)++;
	memcpy(prev, hash, 65);
	s->pending = in->n;
}

/* Writes and syncs the batch: 0, or -errno with the file as it was. */
static int
alog_commit(struct alog *al, int64_t today)
{
	struct stat sb;
	int64_t t0;
	int r;

	if (al->fd < 0 || today != al->day) {
		r = alog_open_day(al, today);
		if (r < 0)
			return r;
	}
	if (fstat(al->fd, &sb) < 0)
		return -errno;
	t0 = proc_mono_us();
	r = files_write_all(al->fd, al->buf, al->buf_len);
	if (r == 0 && fdatasync(al->fd) < 0)
		r = -errno;
	if (r < 0) {
		/* Take the batch back: the next try writes the same lines again. */
		if (ftruncate(al->fd, sb.st_size) < 0)
			log_error(-errno, "audit: a failed batch could not be cut off");
		return r;
	}
	pthread_mutex_lock(&al->mu);
	al->fig.fsyncs++;
	al->fig.fsync_ms = (double)(proc_mono_us() - t0) / 1000.0;
	pthread_mutex_unlock(&al->mu);
	return 0;
}

static void
alog_queue_acks(struct alog *al, bool ok)
{
	struct alog_ack *head = NULL, **tail = &head, *a;
	uint64_t one = 1;

	for (size_t i = 0; i < al->n_src; i++) {
		struct alog_src *s = &al->src[i];

		if (ok)
			s->known = s->pending;
		else
			s->pending = s->known;
		if (!s->ack)
			continue;
		s->ack = false;
		if (!ok || s->known == 0)
			continue;
		a = calloc(1, sizeof(*a));
		if (a == NULL)
			continue; /* the sender asks again */
		memcpy(a->to, s->to, sizeof(a->to));
		memcpy(a->src, s->src, sizeof(a->src));
		a->n = s->known;
		*tail = a;
		tail = &a->next;
	}
	if (head == NULL)
		return;
	pthread_mutex_lock(&al->mu);
	*al->acks_tail = head;
	al->acks_tail = tail;
	pthread_mutex_unlock(&al->mu);
	if (write(al->efd, &one, sizeof(one)) < 0) {
		/* The counter is full: the loop is being woken anyway. */
	}
}

/* An own record (alog_put) into the batch: its outcome is the batch's. */
static int
alog_take_own(struct alog *al, const struct alog_in *in, uint64_t *seq, char prev[65])
{
	char hash[65], *line;
	size_t len;
	int err = 0;

	line = alog_line(*seq + 1, prev, in->text, in->len, hash, &len, &err);
	if (line == NULL) {
		log_error(err, "audit: archive's own record is malformed: %.200s", in->text);
		return err;
	}
	err = alog_buf_add(al, line, len);
	free(line);
	if (err < 0)
		return err;
	(*seq)++;
	memcpy(prev, hash, 65);
	return 0;
}

/* The outcomes of the batch's own records, for alog_take_acks. */
static void
alog_queue_own(struct alog *al, struct alog_ack *own)
{
	struct alog_ack *last = own;
	uint64_t one = 1;

	if (own == NULL)
		return;
	while (last->next != NULL)
		last = last->next;
	pthread_mutex_lock(&al->mu);
	*al->acks_tail = own;
	al->acks_tail = &last->next;
	pthread_mutex_unlock(&al->mu);
	if (write(al->efd, &one, sizeof(one)) < 0) {
		/* The counter is full: the loop is being woken anyway. */
	}
}

static void
alog_batch(struct alog *al, struct alog_in *list)
{
	uint64_t seq = al->seq, before = al->seq;
	struct alog_ack *own = NULL, **own_tail = &own;
	char prev[65];
	struct alog_in *next;
	int r = 0;

	memcpy(prev, al->prev, 65);
	al->buf_len = 0;
	for (; list != NULL; list = next) {
		next = list->next;
		if (list->own != NULL) {
			list->own->status = alog_take_own(al, list, &seq, prev);
			*own_tail = list->own;
			own_tail = &list->own->next;
		} else {
			alog_take(al, list, &seq, prev);
		}
		free(list);
	}
	if (al->buf_len > 0)
		r = alog_commit(al, proc_now_ms() / ALOG_DAY_MS);
	for (struct alog_ack *a = own; a != NULL; a = a->next) {
		if (a->status == 0)
			a->status = r;
	}
	if (r == 0 && seq != before) {
		al->seq = seq;
		memcpy(al->prev, prev, 65);
		if (alog_write_mark(al, "head", seq, prev, false) < 0)
			log_warn(-errno, "audit: head not updated");
	}
	pthread_mutex_lock(&al->mu);
	if (r < 0) {
		if (al->fig.ok)
			log_error(r, "audit: records cannot be written: recording stopped "
				     "until they can (the senders keep theirs)");
		al->fig.failures++;
		al->fig.ok = false;
	} else {
		if (!al->fig.ok)
			log_info("audit: records are written again");
		al->fig.ok = true;
		al->fig.seq = al->seq;
		al->fig.written += seq - before;
	}
	pthread_mutex_unlock(&al->mu);
	alog_queue_acks(al, r == 0);
	alog_queue_own(al, own);
}

static void *
alog_main(void *arg)
{
	struct alog *al = arg;
	struct alog_in *list;
	struct timespec until;
	int64_t keep;

	pthread_mutex_lock(&al->mu);
	while (!al->stop || al->in != NULL) {
		if (al->in == NULL) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			pthread_cond_timedwait(&al->cond, &al->mu, &until);
		}
		list = al->in;
		al->in = NULL;
		al->in_tail = &al->in;
		al->in_bytes = 0;
		keep = al->retention_days;
		pthread_mutex_unlock(&al->mu);
		if (list != NULL)
			alog_batch(al, list);
		/* Retention about hourly, in the thread that owns the files. */
		if (proc_mono_ms() - al->retention_done_ms >= 3600 * 1000) {
			al->retention_done_ms = proc_mono_ms();
			alog_retention(al, keep, false);
		}
		pthread_mutex_lock(&al->mu);
	}
	pthread_mutex_unlock(&al->mu);
	return NULL;
}

/* ---- the stage thread's side ------------------------------------------ */

int
alog_open(const char *dir, int64_t retention_days, struct alog **ret)
{
	struct alog *al;
	int r;

	al = calloc(1, sizeof(*al));
	if (al == NULL)
		return -ENOMEM;
	al->fd = al->dirfd = al->efd = -1;
	al->day = -1;
	al->in_tail = &al->in;
	al->acks_tail = &al->acks;
	al->retention_days = retention_days;
	al->fig.ok = true;
	memcpy(al->prev, ALOG_ZERO_HASH, 65);
	pthread_mutex_init(&al->mu, NULL);
	pthread_cond_init(&al->cond, NULL);
	al->dir = strdup(dir);
	if (al->dir == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	/* Who watched whom is for the operator's eyes: the directory is private. */
	r = files_mkdirs(dir, 0700);
	if (r < 0)
		goto fail;
	al->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	al->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (al->dirfd < 0 || al->efd < 0) {
		r = -errno;
		goto fail;
	}
	r = alog_recover(al);
	if (r < 0)
		goto fail;
	al->fig.seq = al->seq;
	al->retention_done_ms = proc_mono_ms();
	r = -pthread_create(&al->thread, NULL, alog_main, al);
	if (r < 0)
		goto fail;
	al->started = true;
	log_info("audit: writing to %s after record %" PRIu64, dir, al->seq);
	*ret = al;
	return 0;
fail:
	alog_close(al);
	return r;
}

void
alog_stop(struct alog *al)
{
	if (!al->started)
		return;
	/* What came in is written before the thread ends. */
	pthread_mutex_lock(&al->mu);
	al->stop = true;
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->mu);
	pthread_join(al->thread, NULL);
	al->started = false;
}

void
alog_close(struct alog *al)
{
	struct alog_ack *a, *an;

	if (al == NULL)
		return;
	alog_stop(al);
	for (a = al->acks; a != NULL; a = an) {
		an = a->next;
		free(a);
	}
	if (al->fd >= 0)
		close(al->fd);
	if (al->dirfd >= 0)
		close(al->dirfd);
	if (al->efd >= 0)
		close(al->efd);
	pthread_cond_destroy(&al->cond);
	pthread_mutex_destroy(&al->mu);
	free(al->buf);
	free(al->dir);
	free(al);
}

void
alog_push(struct alog *al, const char *from, const char *src, uint64_t n, uint64_t base,
	  const char *text, size_t len)
{
	struct alog_in *in;

	in = malloc(sizeof(*in) + len + 1);
	if (in == NULL)
		return; /* sent again */
	in->next = NULL;
	in->own = NULL;
	snprintf(in->from, sizeof(in->from), "%s", from);
	snprintf(in->src, sizeof(in->src), "%s", src);
	in->n = n;
	in->base = base;
	in->len = len;
	memcpy(in->text, text, len);
	in->text[len] = '\0';
	pthread_mutex_lock(&al->mu);
	if (al->in_bytes + len > ALOG_IN_MAX) {
		pthread_mutex_unlock(&al->mu);
		free(in); /* the writer is far behind: the sender sends it again */
		return;
	}
	*al->in_tail = in;
	al->in_tail = &in->next;
	al->in_bytes += len;
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->mu);
}

int
alog_put(struct alog *al, const char *text, size_t len, void *own)
{
	struct alog_in *in;

	/* Its answer too, so that the thread can always give it. */
	in = calloc(1, sizeof(*in) + len + 1);
	if (in == NULL)
		return -ENOMEM;
	in->own = calloc(1, sizeof(*in->own));
	if (in->own == NULL) {
		free(in);
		return -ENOMEM;
	}
	in->own->own = own;
	in->len = len;
	memcpy(in->text, text, len);
	/* Never dropped for the cap: there are as few as deletes under way. */
	pthread_mutex_lock(&al->mu);
	*al->in_tail = in;
	al->in_tail = &in->next;
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->mu);
	return 0;
}

bool
alog_written(struct alog *al, const char *id)
{
	const char *dot = strrchr(id, '.');
	const struct alog_src *s;
	char src[48], *end;
	uint64_t n;

	if (dot == NULL || (size_t)(dot - id) >= sizeof(src))
		return false;
	errno = 0;
	n = strtoull(dot + 1, &end, 10);
	if (*end != '\0' || end == dot + 1 || errno != 0)
		return false;
	memcpy(src, id, (size_t)(dot - id));
	src[dot - id] = '\0';
	s = alog_src_find(al, src, false);
	return s != NULL && n <= s->known;
}

int
alog_fd(const struct alog *al)
{
	return al->efd;
}

void
alog_take_acks(struct alog *al, alog_ack_fn fn, alog_own_fn own_fn, void *ctx)
{
	struct alog_ack *a, *next;
	uint64_t n;

	if (read(al->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn(-errno, "audit: read(eventfd) failed");
	pthread_mutex_lock(&al->mu);
	a = al->acks;
	al->acks = NULL;
	al->acks_tail = &al->acks;
	pthread_mutex_unlock(&al->mu);
	for (; a != NULL; a = next) {
		next = a->next;
		if (a->own != NULL)
			own_fn(ctx, a->own, a->status);
		else
			fn(ctx, a->to, a->src, a->n);
		free(a);
	}
}

void
alog_set_retention(struct alog *al, int64_t retention_days)
{
	pthread_mutex_lock(&al->mu);
	al->retention_days = retention_days;
	pthread_mutex_unlock(&al->mu);
}

void
alog_figures(struct alog *al, struct alog_figures *ret)
{
	pthread_mutex_lock(&al->mu);
	*ret = al->fig;
	pthread_mutex_unlock(&al->mu);
}
