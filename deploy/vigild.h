/* vigild: the supervisor process's setup and teardown (vigild_setup.c), which
 * vigild.c's main sequences around its loop. Only vigild runs this code. */
#ifndef VIGIL_VIGILD_H
#define VIGIL_VIGILD_H

#include <stdbool.h>
#include <stddef.h>

#include "wd.h"

/* The vigil-<stage> programs: beside vigild when installed, in
 * build/<folder>/ in the build tree, or in $VIGIL_STAGE_DIR. -ENOENT (said
 * on stderr) when one is missing. */
int vigild_find_stages(struct wd *wd);
/* The instance lock (an abstract Unix socket, gone with the process): its
 * fd, or -EADDRINUSE after saying which vigild holds it. */
int vigild_lock(const char *instance);
int vigild_open_listeners(struct wd *wd);
int vigild_create_ring(struct wd *wd);
/* bus.sock and ctl.sock in run_dir. */
int vigild_open_sockets(struct wd *wd);
/* Forks; the parent waits for the readiness byte and the banner on
 * *ret_ready_fd's pipe, prints the banner and exits (0 when the byte is 'y');
 * the child returns, holding lock_fd as the instance lock's listener. */
int vigild_detach(struct wd *wd, int lock_fd, int *ret_ready_fd);
int vigild_write_pidfile(struct wd *wd);
#define VIGILD_BANNER_MAX 1024
/* What vigild prints once the stages are up (up), or why not: where vigil
 * listens, vigild's pid and each stage's pid (or state). Returns its length. */
size_t vigild_banner(const struct wd *wd, bool up, char *buf, size_t size);
/* Closes what vigild opened, removes its sockets, pid file and ring. */
void vigild_cleanup(struct wd *wd);

#endif
