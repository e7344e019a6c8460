/* beneath: see beneath.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "beneath.h"

/* Component by component, each with O_NOFOLLOW: for kernels without openat2. */
static int
beneath_walk(int dirfd, const char *path, int flags, mode_t mode)
{
	char part[256];
	const char *p = path;
	int fd = dirfd, next;

	if (path[0] == '/')
		return -EXDEV;
	for (;;) {
		size_t n = strcspn(p, "/");
		bool last = p[n] == '\0';

		if (n == 0 || n >= sizeof(part)) {
			next = -EINVAL;
			goto out;
		}
		memcpy(part, p, n);
		part[n] = '\0';
		if (strcmp(part, "..") == 0) {
			next = -EXDEV;
			goto out;
		}
		next = last ? openat(fd, part, flags | O_NOFOLLOW | O_CLOEXEC, mode)
			    : openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			next = -errno;
		if (fd != dirfd)
			close(fd);
		if (next < 0 || last)
			return next;
		fd = next;
		p += n + 1;
	}
out:
	if (fd != dirfd)
		close(fd);
	return next;
}

int
beneath_open(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

	if (fd >= 0)
		return (int)fd;
	if (errno == ENOSYS)
		return beneath_walk(dirfd, path, flags, mode);
	return -errno;
}

int
beneath_open_file(int dirfd, const char *path, struct stat *ret_sb)
{
	/* O_NONBLOCK: a FIFO planted here must not hang the open. */
	int fd = beneath_open(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);

	if (fd < 0)
		return fd;
	if (fstat(fd, ret_sb) < 0 || !S_ISREG(ret_sb->st_mode)) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

FILE *
beneath_fopen(int dirfd, const char *path)
{
	struct stat sb;
	int fd = beneath_open_file(dirfd, path, &sb);
	FILE *f;

	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	f = fdopen(fd, "re");
	if (f == NULL)
		close(fd);
	return f;
}

int
beneath_stat_file(int dirfd, const char *path, struct stat *ret_sb)
{
	int fd = beneath_open_file(dirfd, path, ret_sb);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}
