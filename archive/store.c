/* store: vigil-archive's disk layout (docs/archive.md): file names, atomic
 * whole-file writes, session.json and sentinel.json, index lines, the start-up
 * repair of one session directory and the removal of one. No state: every
 * function works on the directory fd it is given. Runs in the writer thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "archive.h"

#define STORE_INDEX     "index.jsonl"
#define STORE_INDEX_TMP "index.jsonl.tmp"
#define STORE_SESSION   "session.json"
#define STORE_SENTINEL  "sentinel.json"
#define STORE_LINE_MAX  512
#define STORE_INDEX_MAX (256u << 20) /* an index longer than this is not ours */

void
archive_seg_name(int64_t sequence, char *buf, size_t size)
{
	snprintf(buf, size, "%06" PRId64 ".m4s", sequence);
}

void
archive_init_name(uint32_t gen, char *buf, size_t size)
{
	if (gen == 0)
		snprintf(buf, size, "init.mp4");
	else
		snprintf(buf, size, "init-%" PRIu32 ".mp4", gen);
}

static bool
store_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return true;
}

/* A segment name: at least six digits, then ".m4s". */
static bool
store_seg_name(const char *name, size_t len)
{
	return len >= 10 && strcmp(name + len - 4, ".m4s") == 0 && store_digits(name, len - 4);
}

static bool
store_init_name(const char *name, size_t len)
{
	if (strcmp(name, "init.mp4") == 0)
		return true;
	return len > 9 && strncmp(name, "init-", 5) == 0 && strcmp(name + len - 4, ".mp4") == 0 &&
	       store_digits(name + 5, len - 9);
}

bool
archive_layout_name(const char *name)
{
	size_t len = strlen(name);

	if (len > 4 && strcmp(name + len - 4, ".tmp") == 0) {
		char base[256];

		if (len - 4 >= sizeof(base))
			return false;
		memcpy(base, name, len - 4);
		base[len - 4] = '\0';
		return archive_layout_name(base);
	}
	return strcmp(name, STORE_INDEX) == 0 || strcmp(name, STORE_SESSION) == 0 ||
	       strcmp(name, STORE_SENTINEL) == 0 || store_seg_name(name, len) ||
	       store_init_name(name, len);
}

void
archive_sha256_hex(const void *data, size_t len, char out[ARCHIVE_SHA_HEX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1)
		n = 0; /* out stays a recognisably wrong digest */
	memset(out, '0', ARCHIVE_SHA_HEX - 1);
	for (unsigned int i = 0; i < n && i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[ARCHIVE_SHA_HEX - 1] = '\0';
}

int
archive_entry_format(const struct archive_entry *e, char *buf, size_t size)
{
	json_t *o;
	size_t n;
	int r = 0;

	o = json_pack("{s:I, s:I, s:I, s:I, s:b, s:I, s:s}", "sequence", (json_int_t)e->sequence,
		      "startTime", (json_int_t)e->start_ms, "duration", (json_int_t)e->duration_ms,
		      "bytes", (json_int_t)e->bytes, "keyframe", e->keyframe, "init",
		      (json_int_t)e->init, "sha256", e->sha256);
	if (o == NULL)
		return -ENOMEM;
	n = json_dumpb(o, buf, size, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (n == 0 || n + 1 >= size) {
		r = -ENOBUFS;
		goto out;
	}
	buf[n++] = '\n';
	buf[n] = '\0';
	r = (int)n;
out:
	json_decref(o);
	return r;
}

static bool
store_hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (int i = 0; i < 64; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

int
archive_entry_parse(const char *line, size_t len, struct archive_entry *ret)
{
	json_int_t seq, start, dur, bytes, init;
	struct archive_entry e = { 0 };
	const char *sha;
	json_t *o;
	int kf, r = -EINVAL;

	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (o == NULL)
		return -EINVAL;
	if (json_unpack(o, "{s:I, s:I, s:I, s:I, s:b, s:I, s:s}", "sequence", &seq, "startTime",
			&start, "duration", &dur, "bytes", &bytes, "keyframe", &kf, "init", &init,
			"sha256", &sha) != 0)
		goto out;
	if (seq < 0 || dur < 0 || dur > UINT32_MAX || bytes < 0 || init < 0 || init > UINT32_MAX ||
	    !store_hex64(sha))
		goto out;
	e.sequence = seq;
	e.start_ms = start;
	e.duration_ms = (uint32_t)dur;
	e.bytes = (uint64_t)bytes;
	e.keyframe = kf != 0;
	e.init = (uint32_t)init;
	memcpy(e.sha256, sha, ARCHIVE_SHA_HEX);
	*ret = e;
	r = 0;
out:
	json_decref(o);
	return r;
}

int
archive_fsync_dir(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

static int
store_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
archive_write_atomic(int dirfd, const char *name, const void *data, size_t len, bool sync_dir)
{
	char tmp[300];
	int fd, r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = store_write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	return sync_dir ? archive_fsync_dir(dirfd) : 0;
}

static char *
store_dump(json_t *o)
{
	char *text;

	if (o == NULL)
		return NULL;
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return text;
}

static int
store_write_text(int dirfd, const char *name, char *text)
{
	int r;

	if (text == NULL)
		return -ENOMEM;
	r = archive_write_atomic(dirfd, name, text, strlen(text), true);
	free(text);
	return r;
}

char *
archive_meta_text(const struct archive_meta *m)
{
	json_t *o;

	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:I}", "sentinelId",
		      m->sentinel, "sessionId", m->session, "name", m->name, "codec", m->codec,
		      "width", (json_int_t)m->width, "height", (json_int_t)m->height, "timescale",
		      (json_int_t)m->timescale, "startTime", (json_int_t)m->start_ms, "endTime",
		      m->end_ms < 0 ? json_null() : json_integer(m->end_ms), "inits",
		      (json_int_t)m->inits);
	return store_dump(o);
}

int
archive_meta_write(int dirfd, const struct archive_meta *m)
{
	return store_write_text(dirfd, STORE_SESSION, archive_meta_text(m));
}

static json_t *
store_load(int dirfd, const char *name)
{
	json_t *o;
	FILE *f;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		return NULL;
	}
	o = json_loadf(f, JSON_REJECT_DUPLICATES, NULL);
	fclose(f);
	return o;
}

static void
store_copy_str(json_t *o, const char *key, char *buf, size_t size)
{
	const char *s = json_string_value(json_object_get(o, key));

	snprintf(buf, size, "%s", s != NULL ? s : "");
}

static int64_t
store_int(json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

int
archive_meta_read(int dirfd, struct archive_meta *ret)
{
	struct archive_meta m = { 0 };
	json_t *o;
	int r = -EINVAL;

	o = store_load(dirfd, STORE_SESSION);
	if (o == NULL)
		return errno == ENOENT ? -ENOENT : -EINVAL;
	if (!json_is_object(o) || !json_is_integer(json_object_get(o, "startTime")))
		goto out;
	store_copy_str(o, "sentinelId", m.sentinel, sizeof(m.sentinel));
	store_copy_str(o, "sessionId", m.session, sizeof(m.session));
	store_copy_str(o, "name", m.name, sizeof(m.name));
	store_copy_str(o, "codec", m.codec, sizeof(m.codec));
	m.width = (uint32_t)store_int(o, "width", 0);
	m.height = (uint32_t)store_int(o, "height", 0);
	m.timescale = (uint32_t)store_int(o, "timescale", 0);
	m.start_ms = store_int(o, "startTime", 0);
	m.end_ms = store_int(o, "endTime", -1);
	m.inits = (uint32_t)store_int(o, "inits", 0);
	*ret = m;
	r = 0;
out:
	json_decref(o);
	return r;
}

char *
archive_sentinel_text(const char *id, const char *name)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return store_dump(json_pack("{s:s, s:s, s:I}", "sentinelId", id, "name", name, "updated",
				    (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
}

int
archive_sentinel_write(int dirfd, const char *id, const char *name)
{
	return store_write_text(dirfd, STORE_SENTINEL, archive_sentinel_text(id, name));
}

int
archive_sentinel_read(int dirfd, char *name, size_t size)
{
	json_t *o = store_load(dirfd, STORE_SENTINEL);
	const char *s;
	int r = -EINVAL;

	if (o == NULL)
		return errno == ENOENT ? -ENOENT : -EINVAL;
	s = json_string_value(json_object_get(o, "name"));
	if (s != NULL) {
		snprintf(name, size, "%s", s);
		r = 0;
	}
	json_decref(o);
	return r;
}

/* The whole index file, NUL-terminated; *ret_buf NULL when there is none. */
static int
store_read_index(int dirfd, char **ret_buf, size_t *ret_len)
{
	struct stat sb;
	char *buf = NULL;
	size_t off = 0;
	int fd, r = 0;

	*ret_buf = NULL;
	*ret_len = 0;
	fd = openat(dirfd, STORE_INDEX, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		goto out_close;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = -EINVAL;
		goto out_close;
	}
	if ((uint64_t)sb.st_size > STORE_INDEX_MAX) {
		r = -EFBIG;
		goto out_close;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (buf == NULL) {
		r = -ENOMEM;
		goto out_close;
	}
	while (off < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)sb.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	*ret_buf = buf;
	*ret_len = off;
	buf = NULL;
out_free:
	free(buf);
out_close:
	close(fd);
	return r;
}

/* Sequences listed, for finding unlisted segment files: sorted array. */
static int
store_cmp_seq(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static bool
store_file_size(int dirfd, const char *name, uint64_t *ret)
{
	struct stat sb;

	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
		return false;
	*ret = (uint64_t)sb.st_size;
	return true;
}

/* The kept lines go into out; entries whose file is missing or of the wrong size
 * and lines that are not entries are dropped. Sequences must ascend. */
static int
store_filter_index(int dirfd, const char *buf, size_t len, char *out, size_t *ret_out_len,
		   int64_t *seqs, struct archive_scan *scan)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t out_len = 0;
	int64_t last = -1;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		struct archive_entry e;
		char name[64];
		uint64_t size;

		if (archive_entry_parse(p, (size_t)(nl - p), &e) < 0 || e.sequence <= last) {
			scan->dropped++;
		} else {
			archive_seg_name(e.sequence, name, sizeof(name));
			if (!store_file_size(dirfd, name, &size) || size != e.bytes) {
				scan->dropped++;
			} else {
				memcpy(out + out_len, p, (size_t)(nl - p) + 1);
				out_len += (size_t)(nl - p) + 1;
				seqs[scan->segments++] = e.sequence;
				last = e.sequence;
				scan->last_seq = e.sequence;
				scan->last_end_ms = e.start_ms + e.duration_ms;
			}
		}
		p = nl + 1;
	}
	if (p < end)
		scan->torn = true;
	*ret_out_len = out_len;
	return 0;
}

/* Removes *.tmp and unlisted segments; sums the sizes of what stays. */
static int
store_sweep(int dirfd, const int64_t *seqs, size_t n, struct archive_scan *scan)
{
	struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t len = strlen(name);
		uint64_t size;
		bool drop = false;

		if (!archive_layout_name(name) || strcmp(name, STORE_SENTINEL) == 0)
			continue;
		if (len > 4 && strcmp(name + len - 4, ".tmp") == 0) {
			drop = true;
		} else if (store_seg_name(name, len)) {
			int64_t seq = strtoll(name, NULL, 10);

			drop = bsearch(&seq, seqs, n, sizeof(*seqs), store_cmp_seq) == NULL;
		}
		if (drop) {
			if (unlinkat(dirfd, name, 0) == 0)
				scan->removed++;
			continue;
		}
		if (store_file_size(dirfd, name, &size))
			scan->bytes += size;
	}
	closedir(d);
	return 0;
}

int
archive_session_repair(int dirfd, struct archive_scan *ret)
{
	struct archive_scan scan = { .last_seq = -1, .last_end_ms = -1 };
	char *buf = NULL, *out = NULL;
	size_t len, out_len = 0;
	int64_t *seqs = NULL;
	int fd, r;

	r = store_read_index(dirfd, &buf, &len);
	if (r < 0)
		return r;
	if (buf != NULL) {
		/* A line is at least 20 bytes: that bounds the sequences. */
		seqs = malloc((len / 20 + 1) * sizeof(*seqs));
		out = malloc(len + 1);
		if (seqs == NULL || out == NULL) {
			r = -ENOMEM;
			goto out;
		}
		store_filter_index(dirfd, buf, len, out, &out_len, seqs, &scan);
		if (scan.dropped > 0) {
			r = archive_write_atomic(dirfd, STORE_INDEX, out, out_len, true);
			if (r < 0)
				goto out;
		} else if (scan.torn) {
			fd = openat(dirfd, STORE_INDEX, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0 || ftruncate(fd, (off_t)out_len) < 0 || fsync(fd) < 0) {
				r = -errno;
				if (fd >= 0)
					close(fd);
				goto out;
			}
			close(fd);
		}
	}
	scan.index_size = out_len;
	/* The sequences ascend, so they are already sorted for bsearch. */
	r = store_sweep(dirfd, seqs, scan.segments, &scan);
	if (r < 0)
		goto out;
	if (scan.removed > 0)
		r = archive_fsync_dir(dirfd);
	*ret = scan;
out:
	free(seqs);
	free(out);
	free(buf);
	return r;
}

int
archive_remove_dir(int parent, const char *name)
{
	struct dirent *de;
	bool left = false;
	DIR *d;
	int fd, r = 0;

	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* Never a file archive did not write. */
		if (!archive_layout_name(de->d_name) || unlinkat(dirfd(d), de->d_name, 0) < 0) {
			left = true;
			continue;
		}
	}
	closedir(d);
	if (left)
		return -ENOTEMPTY;
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0)
		r = -errno;
	return r;
}
