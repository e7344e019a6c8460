/* beneath: files under a directory that nothing in the tree can lead out of.
 * data_dir is written by archive and read by httpd; a symlink placed in it
 * (as a segment, an init, an index or a whole sentinel directory) must never
 * make either of them read, write or delete what it points to.
 *
 * Paths are relative ("sid/sess/init.mp4"); no component may be a symlink and
 * none may climb out ("..", or an absolute path). openat2(2) with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS does it in the kernel; on kernels
 * before 5.6 each component is opened with O_NOFOLLOW instead.
 */
#ifndef VIGIL_BENEATH_H
#define VIGIL_BENEATH_H

#include <stdio.h>
#include <sys/stat.h>

/* flags as open(2) (O_CLOEXEC is added). The fd, or -errno: -ELOOP for a
 * symlink on the way, -EXDEV for a path that leaves dirfd. */
int beneath_open(int dirfd, const char *path, int flags, mode_t mode);
/* A regular file for reading, with its stat: -ENOENT when the path is not a
 * regular file (a directory, a device, a FIFO). */
int beneath_open_file(int dirfd, const char *path, struct stat *ret_sb);
/* The same as a stream ("re"), or NULL with errno. */
FILE *beneath_fopen(int dirfd, const char *path);
/* A regular file's stat (the file is opened and closed, never followed). */
int beneath_stat_file(int dirfd, const char *path, struct stat *ret_sb);

#endif
