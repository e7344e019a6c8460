/* store: how vigil-archive writes the layout of common/layout.h: atomic
 * whole-file writes (session.json, sentinel.json, a rewritten index), the
 * start-up repair of one session directory and the removal of one. No state:
 * every function works on the directory fd it is given. Writer thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include "archive.h"
#include "files.h"
#include "layout.h"

int
archive_fsync_dir(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

int
archive_write_atomic(int dirfd, const char *name, const void *data, size_t len, bool sync_dir)
{
	return files_replace(dirfd, name, data, len, 0644, sync_dir);
}

/* text is freed. */
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

int
archive_meta_write(int dirfd, const struct layout_session *m)
{
	return store_write_text(dirfd, LAYOUT_SESSION, layout_session_text(m));
}

char *
archive_sentinel_text(const char *id, const char *name)
{
	struct layout_sentinel s = { 0 };
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(s.sentinel, sizeof(s.sentinel), "%s", id);
	snprintf(s.name, sizeof(s.name), "%s", name);
	s.updated_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return layout_sentinel_text(&s);
}

int
archive_sentinel_write(int dirfd, const char *id, const char *name)
{
	return store_write_text(dirfd, LAYOUT_SENTINEL, archive_sentinel_text(id, name));
}

bool
archive_sentinel_stale(int dirfd, const char *name)
{
	struct layout_sentinel s;

	return layout_sentinel_read(dirfd, &s) < 0 || strcmp(s.name, name) != 0;
}

/* The whole index file, NUL-terminated; *ret_buf NULL when there is none. */
static int
store_read_index(int dirfd, char **ret_buf, size_t *ret_len)
{
	int fd, r;

	*ret_buf = NULL;
	*ret_len = 0;
	fd = openat(dirfd, LAYOUT_INDEX, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = layout_index_read(fd, 0, ret_buf, ret_len);
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
	struct layout_index_iter it;
	struct layout_entry e;
	const char *line;
	size_t line_len, out_len = 0;
	int r;

	layout_index_begin(&it, buf, len, -1);
	while ((r = layout_index_next(&it, &e, &line, &line_len)) != 0) {
		char name[64];
		uint64_t size;

		if (r > 0) {
			layout_seg_name(e.sequence, name, sizeof(name));
			if (!store_file_size(dirfd, name, &size) || size != e.bytes) {
				/* The next entry must ascend from the last one kept. */
				it.last_seq = scan->last_seq;
				r = -ENOENT;
			}
		}
		if (r < 0) {
			scan->dropped++;
			continue;
		}
		memcpy(out + out_len, line, line_len + 1);
		out_len += line_len + 1;
		seqs[scan->segments++] = e.sequence;
		scan->last_seq = e.sequence;
		scan->last_end_ms = e.start_ms + e.duration_ms;
	}
	if (it.p < it.end)
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
		int64_t seq;
		bool drop = false;

		if (!layout_name(name) || strcmp(name, LAYOUT_SENTINEL) == 0)
			continue;
		if (len > 4 && strcmp(name + len - 4, LAYOUT_TMP) == 0)
			drop = true;
		else if (layout_seg_file(name, &seq))
			drop = bsearch(&seq, seqs, n, sizeof(*seqs), store_cmp_seq) == NULL;
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
			r = archive_write_atomic(dirfd, LAYOUT_INDEX, out, out_len, true);
			if (r < 0)
				goto out;
		} else if (scan.torn) {
			fd = openat(dirfd, LAYOUT_INDEX, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
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

/* One pass over a directory: unlinks every name of the layout; -ENOTEMPTY
 * when a name that is not archive's stays. */
static int
store_unlink_all(int parent, const char *name)
{
	struct dirent *de;
	bool left = false;
	DIR *d;
	int fd;

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
		/* Never a file archive did not write. A name gone meanwhile (a
		 * thumbnail's .tmp renamed) is taken by the next pass. */
		if (!layout_name(de->d_name) ||
		    (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT))
			left = true;
	}
	closedir(d);
	return left ? -ENOTEMPTY : 0;
}

int
archive_remove_dir(int parent, const char *name)
{
	int r;

	/* httpd may have been writing a thumbnail (layout_thumb_name) into the
	 * session as it was renamed for removal: a file made after the listing
	 * fails the rmdir, and the next pass takes it. httpd opens the session by
	 * its path for each thumbnail, so only the few it had begun can come. */
	for (int pass = 0; pass < 4; pass++) {
		r = store_unlink_all(parent, name);
		if (r < 0)
			return r;
		if (unlinkat(parent, name, AT_REMOVEDIR) == 0)
			return 0;
		r = -errno;
		if (r != -ENOTEMPTY)
			return r;
	}
	return r;
}
