/* sentinel_state: where a sentinel keeps the sentinelId the server assigned, so
 * that it keeps its identity across restarts: one small file per simulated
 * sentinel holding the UUID and a newline. Runs in the lws thread. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sentinel.h"

#define SNT_STATE_DIR "vigil-sentinel"

/* name with every byte outside [A-Za-z0-9._-] replaced by '_' ("Hall A / seat 14"
 * becomes "Hall_A___seat_14"); a leading dot too, so it is never hidden or "..". */
static void
snt_state_file_name(const char *name, char *out, size_t size)
{
	size_t i;

	for (i = 0; name[i] != '\0' && i + 1 < size; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_' || (c == '.' && i > 0);

		out[i] = ok ? c : '_';
	}
	out[i] = '\0';
}

int
snt_state_path(const struct snt_opts *o, unsigned index, const char *name, char *buf, size_t size)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char file[SNT_NAME_MAX + 1];
	int n;

	if (o->state != NULL) {
		if (o->count > 1)
			n = snprintf(buf, size, "%s-%u", o->state, index);
		else
			n = snprintf(buf, size, "%s", o->state);
	} else {
		snt_state_file_name(name, file, sizeof(file));
		/* XDG: a relative XDG_STATE_HOME is invalid and ignored. */
		if (xdg != NULL && xdg[0] == '/')
			n = snprintf(buf, size, "%s/" SNT_STATE_DIR "/%s.id", xdg, file);
		else if (home != NULL && home[0] != '\0')
			n = snprintf(buf, size, "%s/.local/state/" SNT_STATE_DIR "/%s.id", home,
				     file);
		else
			return -ENOENT;
	}
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

int
snt_state_load(const char *path, char id[ID_STR_LEN])
{
	char buf[ID_STR_LEN + 8];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!id_valid(buf))
		return -EBADMSG;
	memcpy(id, buf, ID_STR_LEN);
	return 0;
}

/* mkdir -p of path's parent directory, private to the user. */
static int
snt_state_mkdirs(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int
snt_state_save(const char *path, const char id[ID_STR_LEN])
{
	char tmp[PATH_MAX], line[ID_STR_LEN + 1];
	int fd, r;

	r = snt_state_mkdirs(path);
	if (r < 0)
		return r;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	snprintf(line, sizeof(line), "%s\n", id);
	errno = EIO; /* what a short write reports */
	if (write(fd, line, ID_STR_LEN) != ID_STR_LEN) {
		r = -errno;
		close(fd);
		goto fail_unlink;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		r = -errno;
		goto fail_unlink;
	}
	return 0;

fail_unlink:
	unlink(tmp);
	return r;
}
