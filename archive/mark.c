/* mark: a proctor's mark stored with its session (PROTOCOL.md section 8,
 * docs/archive.md "Marks"): one line appended to the session directory's
 * marks.jsonl and fdatasynced (the directory too when the file is new) before
 * the answer, so that a mark acknowledged is on disk; a write that fails is
 * cut off again, so a mark is stored whole or not at all. Writer thread: the
 * sessions and the disk are its own. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "files.h"
#include "log.h"
#include "proc.h"

static void mark_answer(struct archive_ev *ev, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
mark_answer(struct archive_ev *ev, int status, const char *fmt, ...)
{
	va_list ap;

	ev->status = status;
	va_start(ap, fmt);
	vsnprintf(ev->error, sizeof(ev->error), fmt, ap);
	va_end(ap);
}

/* The session the mark is for, or NULL after an answer. */
static struct archive_sess *
mark_session(struct archive *ar, struct archive_ev *ev)
{
	const struct mark *m = &ev->mark;
	struct archive_sess *s;
	int64_t now = proc_now_ms(), last;

	if (archive_tombstoned(ar, ev->session)) {
		mark_answer(ev, 409, "session %s was deleted", m->session);
		return NULL;
	}
	s = archive_sess_find(ar, ev->sentinel, ev->session);
	if (s == NULL)
		s = archive_sess_from_table(ar, ev->sentinel, ev->session);
	if (s == NULL) {
		mark_answer(ev, 404, "no session %s of sentinel %s", m->session, m->sentinel);
		return NULL;
	}
	last = s->live ? now + MARK_FUTURE_MS : s->meta.end_ms;
	if (m->at < s->meta.start_ms || m->at > last) {
		if (s->live)
			mark_answer(ev, 400,
				    "at %" PRId64 " is outside session %s (from %" PRId64
				    ", live: now is %" PRId64 ")",
				    m->at, m->session, s->meta.start_ms, now);
		else
			mark_answer(ev, 400,
				    "at %" PRId64 " is outside session %s (%" PRId64 " to %" PRId64
				    ")",
				    m->at, m->session, s->meta.start_ms, s->meta.end_ms);
		return NULL;
	}
	return s;
}

/* marks.jsonl of the session, open for appending; *ret_made when it is new. */
static int
mark_open(struct archive_sess *s, bool *ret_made)
{
	int fd;

	*ret_made = false;
	fd = openat(s->dir_fd, LAYOUT_MARKS, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT)
		return fd >= 0 ? fd : -errno;
	fd = openat(s->dir_fd, LAYOUT_MARKS,
		    O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	*ret_made = true;
	return fd;
}

/* The line at end (past the last complete line: a torn tail is cut first),
 * durable; on failure the file is cut back to end. */
static int
mark_append(struct archive_sess *s, int fd, uint64_t end, bool made, const char *line, size_t len)
{
	struct stat sb;
	int r;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if ((uint64_t)sb.st_size != end && ftruncate(fd, (off_t)end) < 0)
		return -errno;
	r = files_write_all(fd, line, len);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	if (r == 0 && made)
		r = archive_fsync_dir(s->dir_fd);
	if (r < 0 && ftruncate(fd, (off_t)end) == 0)
		fdatasync(fd);
	return r;
}

void
archive_mark_add(struct archive *ar, struct archive_ev *ev)
{
	struct mark *have = NULL;
	struct archive_sess *s;
	uint64_t end = 0;
	size_t n = 0, len;
	char *line = NULL;
	bool made;
	int fd = -1, r;

	ev->dup = false;
	if (ev->deadline_ms > 0 && proc_now_ms() > ev->deadline_ms) {
		/* Its sender has answered "not stored" already: it must stay so. */
		mark_answer(ev, 504, "the mark reached the archive after its sender gave up");
		return;
	}
	s = mark_session(ar, ev);
	if (s == NULL)
		return;
	r = archive_sess_open(ar, s);
	if (r < 0) {
		mark_answer(ev, 500, "the directory of session %s: %s", ev->mark.session,
			    strerror(-r));
		return;
	}
	fd = mark_open(s, &made);
	r = fd < 0 ? fd : mark_file_read(fd, &have, &n, &end);
	if (r < 0) {
		mark_answer(ev, 500, "%s of session %s: %s", LAYOUT_MARKS, ev->mark.session,
			    strerror(-r));
		goto out;
	}
	/* A sender that did not hear the answer asks again with the same markId. */
	for (size_t i = 0; i < n; i++) {
		if (strcmp(have[i].id, ev->mark.id) == 0) {
			ev->mark = have[i];
			ev->dup = true;
			mark_answer(ev, 201, "%s", "");
			goto out;
		}
	}
	if (n >= MARK_SESSION_MAX) {
		mark_answer(ev, 409, "session %s holds %zu marks, the most it keeps",
			    ev->mark.session, n);
		goto out;
	}
	line = mark_line(&ev->mark, &len);
	r = line != NULL ? mark_append(s, fd, end, made, line, len) : -ENOMEM;
	if (r < 0) {
		log_error(r, "mark %s of session %s not stored", ev->mark.id, ev->mark.session);
		mark_answer(ev, 500, "%s of session %s not written: %s", LAYOUT_MARKS,
			    ev->mark.session, strerror(-r));
		goto out;
	}
	s->bytes += len;
	ar->total_bytes += len;
	s->used_mono_ms = proc_mono_ms();
	mark_answer(ev, 201, "%s", "");
out:
	if (fd >= 0)
		close(fd);
	free(line);
	free(have);
}
