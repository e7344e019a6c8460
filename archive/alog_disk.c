/* alog_disk: the audit log's files (docs/audit.md): day files, head and
 * base, where the chain stands at start, retention. The writer thread's and
 * the start's; alog_internal.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "alog_internal.h"
#include "files.h"
#include "log.h"
#include "proc.h"

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

	if (sscanf(name, "audit-%4d-%2d-%2d.jsonl%n", &y, &m, &d, &end) != 3 || name[end] != '\0' ||
	    end != 22)
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
int
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
		if (json_is_integer(seq) && json_is_string(hash) &&
		    json_string_length(hash) == 64) {
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

int
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
void
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

		if ((int64_t)i > last && alog_scan(al, days[i], &s, hash, &end, &size) == 0 &&
		    s > 0 && s <= base_seq)
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

int
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
			log_error(r,
				  "audit: day file %lld cannot be read: recording stopped "
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
		log_error(0,
			  "audit: the log ends at record %" PRIu64 " but head says %" PRIu64
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
