/* thumb_make: one thumbnail job (thumb.h), in a worker thread: the init and
 * the keyframe segment read from the session's directory, decoded and scaled
 * by snapshot.c, and the JPEG written beside them. The directory is opened
 * by its path for each job, and checked again after the write: a session
 * renamed away for its removal (docs/archive.md, Deletion) keeps no file of
 * ours, since archive's removal takes every name of the layout and this
 * takes back one that came too late. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "files.h"
#include "log.h"
#include "snapshot.h"
#include "thumb.h"

#define THUMB_INIT_MAX (16u << 20) /* as archive_read.c's */

/* A regular file of dirfd read whole, when its size is want (0: any up to max). */
static int
thumb_read(int dirfd, const char *name, uint64_t want, uint64_t max, unsigned char **ret,
	   size_t *ret_len)
{
	struct stat sb;
	unsigned char *buf = NULL;
	ssize_t n;
	int fd, r;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return r == -ELOOP ? -ENOENT : r; /* a symlink is no file of the layout */
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0 ||
	    (want != 0 && (uint64_t)sb.st_size != want) || (uint64_t)sb.st_size > max) {
		r = -ENOENT;
		goto out;
	}
	buf = malloc((size_t)sb.st_size);
	if (buf == NULL) {
		r = -ENOMEM;
		goto out;
	}
	n = pread(fd, buf, (size_t)sb.st_size, 0);
	if (n != sb.st_size) {
		r = -EIO;
		goto out;
	}
	*ret = buf;
	*ret_len = (size_t)sb.st_size;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

bool
thumb_file_ok(int fd, uint64_t size)
{
	unsigned char head[2], tail[2];

	return size >= 4 && size <= SNAPSHOT_JPEG_MAX && pread(fd, head, 2, 0) == 2 &&
	       pread(fd, tail, 2, (off_t)size - 2) == 2 && head[0] == 0xff && head[1] == 0xd8 &&
	       tail[0] == 0xff && tail[1] == 0xd9;
}

/* Whether dirfd is still the directory at dir's path (not renamed away). */
static bool
thumb_dir_same(int data_fd, const char *dir, int dirfd)
{
	struct stat a, b;
	int fd = beneath_open(data_fd, dir, O_RDONLY | O_DIRECTORY, 0);
	bool same;

	if (fd < 0)
		return false;
	same = fstat(fd, &a) == 0 && fstat(dirfd, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
	close(fd);
	return same;
}

/* The JPEG into the session's directory, unless it left its place. */
static bool
thumb_keep(struct thumb_job *j, int dirfd)
{
	int r = files_replace(dirfd, j->thumb_name, j->jpeg, j->len, 0644, false);

	if (r < 0) {
		log_warn(r, "thumbnail %s/%s not cached", j->dir, j->thumb_name);
		return false;
	}
	if (!thumb_dir_same(j->data_fd, j->dir, dirfd)) {
		unlinkat(dirfd, j->thumb_name, 0);
		return false;
	}
	return true;
}

void
thumb_make(struct work_job *wj)
{
	struct thumb_job *j = (struct thumb_job *)wj;
	unsigned char *init = NULL, *seg = NULL;
	size_t init_len = 0, seg_len = 0;
	int dirfd;

	dirfd = beneath_open(j->data_fd, j->dir, O_RDONLY | O_DIRECTORY, 0);
	if (dirfd < 0) {
		j->err = -ENOENT;
		goto out;
	}
	j->err = thumb_read(dirfd, j->init_name, 0, THUMB_INIT_MAX, &init, &init_len);
	if (j->err == 0)
		j->err = thumb_read(dirfd, j->seg_name, j->seg_bytes, SNAPSHOT_INPUT_MAX, &seg,
				    &seg_len);
	if (j->err == 0)
		j->err = snapshot_jpeg_scaled(init, init_len, seg, seg_len, THUMB_WIDTH, &j->jpeg,
					      &j->len, NULL, NULL);
	if (j->err == 0)
		j->cached = thumb_keep(j, dirfd);
	close(dirfd);
out:
	free(init);
	free(seg);
}
