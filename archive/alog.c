/* alog: the audit log writer (alog.h, docs/audit.md). */
#include <dirent.h>
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

#include <jansson.h>
#include <openssl/sha.h>

#include "alog.h"
#include "files.h"
#include "log.h"
#include "proc.h"

#define ALOG_SRC_MAX    256               /* senders remembered for de-duplication */
#define ALOG_SCAN_BYTES (8u << 20)        /* of the newest files read at start for ids */
#define ALOG_IN_MAX     (16u << 20)       /* bytes waiting for the thread; more: dropped, sent again */
#define ALOG_DAY_MS     86400000LL
#define ALOG_ZERO_HASH  "0000000000000000000000000000000000000000000000000000000000000000"

struct alog_in {
	struct alog_in *next;
	char from[16];
	char src[48];
	uint64_t n, base;
	size_t len;
	char text[];
};

struct alog_ack {
	struct alog_ack *next;
	char to[16];
	char src[48];
	uint64_t n;
};

struct alog_src {
	char src[48];
	char to[16];
	uint64_t known;   /* every n up to it is durable */
	uint64_t pending; /* ... up to it is in the batch being written */
	bool ack;         /* the batch touched it: acknowledge */
	int64_t used_ms;
};

struct alog {
	char *dir;
	int dirfd;
	int fd;       /* the day file, O_APPEND */
	int64_t day;  /* of fd, days since the epoch */
	uint64_t seq; /* the newest durable record */
	char prev[65];
	uint64_t base_seq; /* base's: the last record retention removed */
	struct alog_src src[ALOG_SRC_MAX];
	size_t n_src;
	char *buf; /* the batch's lines */
	size_t buf_len, buf_cap;

	pthread_t thread;
	bool started;
	int efd;
	pthread_mutex_t mu; /* the fields below */
	pthread_cond_t cond;
	bool stop;
	struct alog_in *in, **in_tail;
	size_t in_bytes;
	struct alog_ack *acks, **acks_tail;
	struct alog_figures fig;
	int64_t retention_days;
	int64_t retention_done_ms;
};

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

/* ---- files ------------------------------------------------------------- */

static void
alog_day_name(int64_t day, char out[32])
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "audit-%Y-%m-%d.jsonl", &tm);
}

/* A day file's day, or -1 for another name. */
static int64_t
alog_name_day(const char *name)
{
	struct tm tm = { 0 };
	int y, m, d, end = 0;

	if (sscanf(name, "audit-%4d-%2d-%2d.jsonl%n", &y, &m, &d, &end) != 3 ||
	    name[end] != '\0' || end != 22)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	return (int64_t)timegm(&tm) / 86400;
}

static int
alog_cmp_day(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The days of the day files, oldest first (malloc'ed, *ret_n of them). */
static int
alog_days(struct alog *al, int64_t **ret, size_t *ret_n)
{
	int64_t *days = NULL, *nd, d;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *dir;
	int fd;

	fd = dup(al->dirfd);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -errno;
	}
	rewinddir(dir);
	while ((e = readdir(dir)) != NULL) {
		d = alog_name_day(e->d_name);
		if (d < 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			nd = realloc(days, cap * sizeof(*days));
			if (nd == NULL) {
				free(days);
				closedir(dir);
				return -ENOMEM;
			}
			days = nd;
		}
		days[n++] = d;
	}
	closedir(dir);
	if (n > 0)
		qsort(days, n, sizeof(*days), alog_cmp_day);
	*ret = days;
	*ret_n = n;
	return 0;
}

/* head or base: { seq, hash }. 0, -ENOENT, -EINVAL. */
static int
alog_read_mark(struct alog *al, const char *name, uint64_t *ret_seq, char ret_hash[65])
{
	json_t *j = NULL, *seq, *hash;
	char buf[256];
	ssize_t n;
	int fd, r = -EINVAL;

	fd = openat(al->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n > 0)
		j = json_loadb(buf, (size_t)n, 0, NULL);
	seq = json_object_get(j, "seq");
	hash = json_object_get(j, "hash");
	if (json_is_integer(seq) && json_integer_value(seq) >= 0 && json_is_string(hash) &&
	    json_string_length(hash) == 64) {
		*ret_seq = (uint64_t)json_integer_value(seq);
		memcpy(ret_hash, json_string_value(hash), 65);
		r = 0;
	}
	json_decref(j);
	return r;
}

/* Replaced by rename, without an fsync of its own: head only has to be
 * there after a crash, not current (the log ahead of it is fine; docs/audit.md). */
static int
alog_write_mark(struct alog *al, const char *name, uint64_t seq, const char *hash, bool sync)
{
	char text[128];
	int n = snprintf(text, sizeof(text), "{\"seq\":%" PRIu64 ",\"hash\":\"%s\"}\n", seq, hash);
	char tmp[32];
	int fd, r;

	if (sync)
		return files_replace(al->dirfd, name, text, (size_t)n, 0600, true);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(al->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	r = files_write_all(fd, text, (size_t)n);
	close(fd);
	if (r == 0 && renameat(al->dirfd, tmp, al->dirfd, name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(al->dirfd, tmp, 0);
	return r;
}

static struct alog_src *
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

/* A record's id "<src>.<n>" remembered: its sender's records up to n are on disk. */
static void
alog_note_id(struct alog *al, const char *id)
{
	const char *dot = strrchr(id, '.');
	struct alog_src *s;
	char src[48];
	uint64_t n;
	char *end;

	if (dot == NULL || (size_t)(dot - id) >= sizeof(src))
		return;
	n = strtoull(dot + 1, &end, 10);
	if (*end != '\0')
		return;
	memcpy(src, id, (size_t)(dot - id));
	src[dot - id] = '\0';
	s = alog_src_find(al, src, true);
	if (n > s->known)
		s->known = s->pending = n;
}

/* Reads the last ALOG_SCAN_BYTES of a day file: every complete line's id is
 * remembered, *ret_seq/ret_hash get the last complete line's, *ret_end the
 * offset after it (the file's size when it ends in a newline). */
static int
alog_scan(struct alog *al, int64_t day, uint64_t *ret_seq, char ret_hash[65], off_t *ret_end,
	  off_t *ret_size)
{
	char name[32], *buf = NULL, *p, *nl;
	struct stat sb;
	off_t from;
	ssize_t n;
	int fd, r = 0;

	alog_day_name(day, name);
	fd = openat(al->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		goto out;
	}
	*ret_size = sb.st_size;
	*ret_end = 0;
	from = sb.st_size > (off_t)ALOG_SCAN_BYTES ? sb.st_size - (off_t)ALOG_SCAN_BYTES : 0;
	buf = malloc((size_t)(sb.st_size - from) + 1);
	if (buf == NULL) {
		r = -ENOMEM;
		goto out;
	}
	n = pread(fd, buf, (size_t)(sb.st_size - from), from);
	if (n < 0) {
		r = -errno;
		goto out;
	}
	buf[n] = '\0';
	p = buf;
	if (from > 0) { /* started inside a line */
		p = memchr(buf, '\n', (size_t)n);
		p = p != NULL ? p + 1 : buf + n;
	}
	while ((nl = memchr(p, '\n', (size_t)(buf + n - p))) != NULL) {
		json_t *j = json_loadb(p, (size_t)(nl - p), 0, NULL);
		json_t *seq = json_object_get(j, "seq"), *hash = json_object_get(j, "hash");
		json_t *id = json_object_get(j, "id");

		if (json_is_string(id))
			alog_note_id(al, json_string_value(id));
		if (json_is_integer(seq) && json_is_string(hash) && json_string_length(hash) == 64) {
			*ret_seq = (uint64_t)json_integer_value(seq);
			memcpy(ret_hash, json_string_value(hash), 65);
		}
		json_decref(j);
		p = nl + 1;
		*ret_end = from + (p - buf);
	}
out:
	free(buf);
	close(fd);
	return r;
}

static int
alog_open_day(struct alog *al, int64_t day)
{
	char name[32];
	int fd;

	alog_day_name(day, name);
	fd = openat(al->dirfd, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	/* The new name must survive a crash as surely as the lines in it. */
	if (fsync(al->dirfd) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	if (al->fd >= 0)
		close(al->fd);
	al->fd = fd;
	al->day = day;
	return 0;
}

/* ---- retention --------------------------------------------------------- */

/* Whole day files older than retention_days go, oldest first; base takes the
 * last record of the newest one removed first, so a crash in between leaves
 * files the next pass removes (and the reader skips). */
static void
alog_retention(struct alog *al, int64_t days_kept, bool at_start)
{
	uint64_t base_seq = al->base_seq;
	int64_t *days = NULL, today = proc_now_ms() / ALOG_DAY_MS, last = -1;
	size_t n = 0;
	char name[32], hash[65];
	uint64_t seq = 0;
	off_t end, size;

	if (alog_days(al, &days, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (days_kept > 0 && days[i] < today - days_kept)
			last = (int64_t)i;
	}
	/* At start, files a pass removed all but the name of go too. */
	for (size_t i = 0; at_start && base_seq > 0 && i + 1 < n; i++) {
		uint64_t s = 0;

		if ((int64_t)i > last && alog_scan(al, days[i], &s, hash, &end, &size) == 0 && s > 0 &&
		    s <= base_seq)
			last = (int64_t)i;
	}
	if (last < 0)
		goto out;
	if (alog_scan(al, days[last], &seq, hash, &end, &size) == 0 && seq > base_seq) {
		if (alog_write_mark(al, "base", seq, hash, true) < 0) {
			log_error(-errno, "audit: base not written: nothing removed");
			goto out;
		}
		al->base_seq = seq;
	}
	for (int64_t i = 0; i <= last; i++) {
		alog_day_name(days[i], name);
		if (days[i] == al->day) { /* the next batch opens today's */
			close(al->fd);
			al->fd = -1;
			al->day = -1;
		}
		if (unlinkat(al->dirfd, name, 0) < 0)
			log_warn(-errno, "audit: %s not removed", name);
		else
			log_info("audit: %s removed (audit.retention_days %lld)", name,
				 (long long)days_kept);
	}
out:
	free(days);
}

/* ---- start ------------------------------------------------------------- */

static int
alog_recover(struct alog *al)
{
	uint64_t head_seq = 0, base_seq = 0, file_seq = 0;
	char head_hash[65] = ALOG_ZERO_HASH, base_hash[65] = ALOG_ZERO_HASH;
	char file_hash[65] = ALOG_ZERO_HASH;
	int64_t *days = NULL;
	size_t n = 0;
	off_t end = 0, size = 0;
	bool have_head;
	int r;

	have_head = alog_read_mark(al, "head", &head_seq, head_hash) == 0;
	if (alog_read_mark(al, "base", &base_seq, base_hash) == 0)
		al->base_seq = base_seq;
	if (base_seq > 0 && !have_head) {
		head_seq = base_seq;
		memcpy(head_hash, base_hash, 65);
	}
	r = alog_days(al, &days, &n);
	if (r < 0)
		return r;
	/* The ids of the newest files: a record written but never acknowledged
	 * before the crash comes again and must not be written twice. */
	for (size_t i = n; i-- > 0;) {
		uint64_t s = 0;
		char h[65];
		off_t e, sz;

		r = alog_scan(al, days[i], &s, h, &e, &sz);
		if (r < 0) {
			/* Loudly degraded, not down: the senders keep their records
			 * and the writer tries again with every batch. */
			log_error(r, "audit: day file %lld cannot be read: recording stopped "
				     "until it can",
				  (long long)days[i]);
			al->fig.ok = false;
			break;
		}
		if (i == n - 1) {
			file_seq = s;
			memcpy(file_hash, h, 65);
			end = e;
			size = sz;
		} else if (file_seq == 0 && s > 0) { /* the newest file holds no whole line */
			file_seq = s;
			memcpy(file_hash, h, 65);
		}
		if (sz >= (off_t)ALOG_SCAN_BYTES || n - i >= 2)
			break;
	}
	if (n > 0 && al->fig.ok && (r = alog_open_day(al, days[n - 1])) < 0) {
		log_error(r, "audit: the newest day file cannot be opened: recording stopped "
			     "until it can");
		al->fig.ok = false;
	}
	if (file_seq == 0 && base_seq > 0) { /* retention took every file */
		file_seq = base_seq;
		memcpy(file_hash, base_hash, 65);
	}
	if (file_seq >= head_seq) {
		/* head lags the log by a batch at most: the log is right. A torn
		 * tail was never acknowledged: cut it off. */
		if (size > end && al->fd >= 0) {
			log_warn(0, "audit: a torn last line (%lld bytes) cut off",
				 (long long)(size - end));
			if (ftruncate(al->fd, end) < 0) {
				r = -errno;
				goto out;
			}
		}
		al->seq = file_seq;
		memcpy(al->prev, file_seq > 0 ? file_hash : head_hash, 65);
	} else {
		/* Records that were acknowledged are gone: say so, keep them
		 * gone (verify names the gap), and go on after head. */
		log_error(0, "audit: the log ends at record %" PRIu64 " but head says %" PRIu64
			     ": records are missing (GET /api/audit/verify)",
			  file_seq, head_seq);
		if (size > end && al->fd >= 0 && files_write_all(al->fd, "\n", 1) < 0)
			log_warn(-errno, "audit: could not end the torn line");
		al->seq = head_seq;
		memcpy(al->prev, head_hash, 65);
	}
	alog_retention(al, al->retention_days, true);
	r = 0;
out:
	free(days);
	return r;
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

static void
alog_batch(struct alog *al, struct alog_in *list)
{
	uint64_t seq = al->seq, before = al->seq;
	char prev[65];
	struct alog_in *next;
	int r = 0;

	memcpy(prev, al->prev, 65);
	al->buf_len = 0;
	for (; list != NULL; list = next) {
		next = list->next;
		alog_take(al, list, &seq, prev);
		free(list);
	}
	if (al->buf_len > 0)
		r = alog_commit(al, proc_now_ms() / ALOG_DAY_MS);
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
alog_fd(const struct alog *al)
{
	return al->efd;
}

void
alog_take_acks(struct alog *al, alog_ack_fn fn, void *ctx)
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
