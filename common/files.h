/* files: the few file operations the stages that write share: a directory
 * path made whole, a buffer written whole, and a file replaced atomically
 * (a temporary beside it, fsync, rename, and an fsync of the directory), so
 * that a crash leaves the old file or the new one, never a mix. */
#ifndef VIGIL_FILES_H
#define VIGIL_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* mkdir -p with mode for every directory it makes. -errno, -ENAMETOOLONG. */
int files_mkdirs(const char *path, mode_t mode);
/* write(2) until every byte is out (EINTR retried). -errno. */
int files_write_all(int fd, const void *data, size_t len);
/* name beneath dirfd replaced by data: written to "name.tmp" (mode, whatever
 * the umask or an older file said), fsynced, renamed over name, and the
 * directory fsynced when sync_dir. The temporary is removed on failure. */
int files_replace(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
		  bool sync_dir);

#endif
