/* retention: the catalogue of the sessions on disk (loaded and repaired at
 * start, kept up to date by the writer), deletion of a session on request,
 * and retention passes by age, by size and for a full disk. Runs in the writer
 * thread only: the catalogue is its own. */
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

#include "beneath.h"
#include "archive.h"
#include "log.h"
#include "proc.h"

#define RET_DAY_MS    (86400 * 1000ll)
#define RET_GUARD_LOG (60 * 1000) /* the half-of-everything refusal is logged this often */
#define RET_RECENT_S  3600        /* an index changed this lately is repaired at start */

struct archive_sess *
archive_sess_find(struct archive *ar, const uint8_t sentinel[16], const uint8_t session[16])
{
	for (size_t i = 0; i < ar->n_sess; i++) {
		struct archive_sess *s = ar->sess[i];

		if (memcmp(s->session, session, 16) == 0 && memcmp(s->sentinel, sentinel, 16) == 0)
			return s;
	}
	return NULL;
}

struct archive_sess *
archive_sess_add(struct archive *ar, const uint8_t sentinel[16], const uint8_t session[16])
{
	struct archive_sess *s;

	if (ar->n_sess == ar->cap_sess) {
		size_t cap = ar->cap_sess ? 2 * ar->cap_sess : 64;
		struct archive_sess **n = realloc(ar->sess, cap * sizeof(*n));

		if (n == NULL)
			return NULL;
		ar->sess = n;
		ar->cap_sess = cap;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	memcpy(s->sentinel, sentinel, 16);
	memcpy(s->session, session, 16);
	id_format(sentinel, s->meta.sentinel);
	id_format(session, s->meta.session);
	s->meta.end_ms = -1;
	s->slot = UINT32_MAX;
	s->last_seq = -1;
	s->batch_seq = -1;
	s->last_end_ms = -1;
	s->dir_fd = -1;
	s->index_fd = -1;
	s->repaired = true; /* new: nothing to repair (the loader says otherwise) */
	ar->sess[ar->n_sess++] = s;
	return s;
}

static void
ret_sess_free(struct archive_sess *s)
{
	archive_sess_close(s);
	free(s->lines);
	free(s);
}

void
archive_sess_free_all(struct archive *ar)
{
	for (size_t i = 0; i < ar->n_sess; i++)
		ret_sess_free(ar->sess[i]);
	free(ar->sess);
	ar->sess = NULL;
	ar->n_sess = ar->cap_sess = 0;
}

bool
archive_tombstoned(const struct archive *ar, const uint8_t session[16])
{
	size_t n = ar->n_tombs < ARCHIVE_TOMBS ? ar->n_tombs : ARCHIVE_TOMBS;

	for (size_t i = 0; i < n; i++) {
		if (memcmp(ar->tombs[i], session, 16) == 0)
			return true;
	}
	return false;
}

/* The start-up repair of one catalogued session (docs/archive.md), done before
 * anything is appended to it and, for the others, in the background. */
int
archive_sess_repair(struct archive *ar, struct archive_sess *s)
{
	char path[2 * ID_STR_LEN + 1];
	struct archive_scan scan;
	int fd, r;

	if (s->repaired)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", s->meta.sentinel, s->meta.session);
	fd = beneath_open(ar->data_fd, path, O_RDONLY | O_DIRECTORY, 0);
	r = fd < 0 ? fd : archive_session_repair(fd, &scan);
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		/* Appending to an index archive could not read would risk repeats:
		 * the session is left as it is (no writes, no retention). */
		log_error(r, "repair of session %s failed: it is left alone", path);
		s->broken = true;
		s->repaired = true;
		ar->n_unrepaired--;
		return r;
	}
	if (scan.dropped > 0 || scan.removed > 0 || scan.torn)
		log_warn(0, "session %s repaired: %u index entries dropped, %u files removed%s",
			 s->meta.session, scan.dropped, scan.removed,
			 scan.torn ? ", a torn index line cut" : "");
	if (s->meta_dirty && s->meta.start_ms == 0)
		s->meta.start_ms = scan.last_end_ms; /* no session.json: the best guess */
	s->repaired = true;
	s->last_seq = scan.last_seq;
	s->batch_seq = scan.last_seq;
	s->last_end_ms = scan.last_end_ms;
	s->bytes = scan.bytes;
	s->index_size = scan.index_size;
	ar->total_bytes += scan.bytes;
	ar->n_unrepaired--;
	return 0;
}

/* Repairs a few sessions that were left for later; true while some remain. */
bool
archive_catalog_step(struct archive *ar, unsigned n)
{
	for (size_t i = 0; i < ar->n_sess && n > 0 && ar->n_unrepaired > 0; i++) {
		if (!ar->sess[i]->repaired) {
			archive_sess_repair(ar, ar->sess[i]);
			n--;
		}
	}
	if (ar->n_unrepaired > 0)
		return true;
	if (!ar->catalog_done) {
		ar->catalog_done = true;
		log_info("catalogue complete: %zu sessions, %" PRIu64 " bytes", ar->n_sess,
			 ar->total_bytes);
		archive_retention(ar, false); /* the sizes are known now */
	}
	return false;
}

/* One session directory found at start: catalogued from its session.json.
 * Only a session that may have been written to lately is repaired now (it is
 * live, or its index changed in the last hour); reading every index and every
 * file of a large archive would delay the catch-up past the ring's window. */
static void
ret_load_session(struct archive *ar, int sfd, const uint8_t sentinel[16], const char *sentinel_name,
		 const char *name)
{
	struct layout_session meta;
	struct archive_sess *s;
	struct stat sb;
	uint8_t session[16];
	bool recent;
	int fd, r;

	if (!layout_id_name(name, session))
		return;
	fd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	r = layout_session_read(fd, &meta);
	recent = fstatat(fd, LAYOUT_INDEX, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		 sb.st_mtime >= time(NULL) - RET_RECENT_S;
	if (r < 0 && fstatat(fd, LAYOUT_INDEX, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		/* Killed between mkdir and the first session.json: nothing to keep. */
		close(fd);
		if (archive_remove_dir(sfd, name) == 0)
			log_info("empty session directory %s removed", name);
		return;
	}
	close(fd);
	s = archive_sess_add(ar, sentinel, session);
	if (s == NULL)
		return;
	if (r == 0) {
		s->meta = meta;
		id_format(sentinel, s->meta.sentinel);
		id_format(session, s->meta.session);
	} else {
		log_warn(r, "session %s has no readable session.json; one is made from its index",
			 name);
		snprintf(s->meta.name, sizeof(s->meta.name), "%s", sentinel_name);
		s->meta.start_ms = 0;
		s->meta.end_ms = -1;
		s->meta_dirty = true;
	}
	s->created = true; /* the directory is there; meta_dirty brings session.json back */
	s->end_from_bus = s->meta.end_ms >= 0;
	s->repaired = false;
	ar->n_unrepaired++;
	if (s->meta.end_ms < 0 || recent || s->meta_dirty)
		archive_sess_repair(ar, s);
}

static void
ret_load_sentinel(struct archive *ar, const char *name)
{
	struct layout_sentinel ls = { .name = "" };
	struct dirent *de;
	uint8_t sentinel[16];
	DIR *d;
	int sfd, fd;

	if (!layout_id_name(name, sentinel))
		return;
	sfd = openat(ar->data_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return;
	unlinkat(sfd, LAYOUT_SENTINEL LAYOUT_TMP, 0);
	if (layout_sentinel_read(sfd, &ls) < 0)
		ls.name[0] = '\0';
	fd = dup(sfd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		close(sfd);
		return;
	}
	while ((de = readdir(d)) != NULL && !atomic_load(&ar->stop)) {
		if (id_valid(de->d_name))
			ret_load_session(ar, sfd, sentinel, ls.name, de->d_name);
	}
	closedir(d);
	close(sfd);
}

static void
ret_tombstone(struct archive *ar, const uint8_t session[16])
{
	memcpy(ar->tombs[ar->n_tombs % ARCHIVE_TOMBS], session, 16);
	ar->n_tombs++;
}

/* The sessions deleted on request, newest last: a restarted archive must not
 * store them again from the ring, which can hold a quiet sentinel's segments
 * for hours. */
static void
ret_tombs_load(struct archive *ar)
{
	uint8_t(*ids)[16];
	size_t n;
	int r = layout_deleted_read(ar->data_fd, &ids, &n);

	if (r < 0) {
		if (r != -ENOENT)
			log_warn(r, "%s/" LAYOUT_DELETED " not read", ar->data_dir);
		return;
	}
	for (size_t i = 0; i < n; i++)
		ret_tombstone(ar, ids[i]);
	free(ids);
}

int
archive_tombs_add(struct archive *ar, const uint8_t session[16])
{
	char line[ID_STR_LEN + 1];
	struct stat sb;
	int fd, r = 0;

	ret_tombstone(ar, session);
	id_format(session, line);
	strcat(line, "\n");
	fd = openat(ar->data_fd, LAYOUT_DELETED,
		    O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	errno = 0;
	if (write(fd, line, ID_STR_LEN) != ID_STR_LEN || fsync(fd) < 0 || fstat(fd, &sb) < 0)
		r = errno != 0 ? -errno : -EIO;
	close(fd);
	if (r == 0 && sb.st_size > 2 * ARCHIVE_TOMBS * ID_STR_LEN) {
		size_t n = ar->n_tombs < ARCHIVE_TOMBS ? ar->n_tombs : ARCHIVE_TOMBS;
		char *buf = malloc(n * ID_STR_LEN);

		if (buf == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			/* oldest first: the ring of ids starts after the newest */
			size_t k = (ar->n_tombs - n + i) % ARCHIVE_TOMBS;

			id_format(ar->tombs[k], buf + i * ID_STR_LEN);
			buf[i * ID_STR_LEN + ID_STR_LEN - 1] = '\n';
		}
		r = archive_write_atomic(ar->data_fd, LAYOUT_DELETED, buf, n * ID_STR_LEN, true);
		free(buf);
	}
	return r;
}

int
archive_catalog_load(struct archive *ar)
{
	struct dirent *de;
	DIR *d;
	int fd, r;

	fd = dup(ar->data_fd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		r = -errno;
		close(fd);
		return r;
	}
	ret_tombs_load(ar);
	unlinkat(ar->data_fd, LAYOUT_DELETED LAYOUT_TMP, 0);
	while ((de = readdir(d)) != NULL && !atomic_load(&ar->stop)) {
		if (strncmp(de->d_name, LAYOUT_DELETING, strlen(LAYOUT_DELETING)) == 0) {
			r = archive_remove_dir(ar->data_fd, de->d_name);
			if (r < 0)
				log_warn(r,
					 "%s left by an interrupted deletion could not be removed",
					 de->d_name);
			else
				log_info("finished the interrupted deletion %s", de->d_name);
		} else if (id_valid(de->d_name)) {
			ret_load_sentinel(ar, de->d_name);
		}
	}
	closedir(d);
	log_info("catalogue: %zu sessions in %s, %zu of them to be checked in the background",
		 ar->n_sess, ar->data_dir, ar->n_unrepaired);
	return 0;
}

static bool
ret_sentinel_has_sessions(const struct archive *ar, const uint8_t sentinel[16])
{
	for (size_t i = 0; i < ar->n_sess; i++) {
		if (memcmp(ar->sess[i]->sentinel, sentinel, 16) == 0)
			return true;
	}
	return false;
}

int
archive_sess_remove(struct archive *ar, struct archive_sess *s)
{
	char path[2 * ID_STR_LEN + 1], hidden[sizeof(LAYOUT_DELETING) + ID_STR_LEN];
	char uuid[ID_STR_LEN];
	uint8_t sentinel[16];
	int sfd, r = 0;

	archive_sess_close(s);
	if (!s->repaired) {
		s->repaired = true;
		ar->n_unrepaired--;
	}
	snprintf(path, sizeof(path), "%s/%s", s->meta.sentinel, s->meta.session);
	id_new(uuid);
	snprintf(hidden, sizeof(hidden), LAYOUT_DELETING "%s", uuid);
	if (renameat(ar->data_fd, path, ar->data_fd, hidden) < 0) {
		if (errno != ENOENT)
			return -errno;
		hidden[0] = '\0'; /* never created: nothing on disk */
	}
	sfd = openat(ar->data_fd, s->meta.sentinel,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd >= 0) {
		r = archive_fsync_dir(sfd);
		close(sfd);
	}
	if (r == 0)
		r = archive_fsync_dir(ar->data_fd);
	if (r < 0)
		log_warn(r, "fsync after renaming %s away failed", path);
	if (hidden[0] != '\0') {
		r = archive_remove_dir(ar->data_fd, hidden);
		if (r < 0)
			log_warn(r, "%s (was %s) not fully removed: a file archive did not write?",
				 hidden, path);
	}
	/* Nothing may point at it any more. */
	for (size_t i = 0; i < ar->batch_n; i++) {
		if (ar->batch[i].sess == s)
			ar->batch[i].sess = NULL;
	}
	for (uint32_t i = 0; i < ar->n_slots; i++) {
		if (ar->by_slot[i] == s)
			ar->by_slot[i] = NULL;
	}
	for (size_t i = 0; i < ar->n_sess; i++) {
		if (ar->sess[i] == s) {
			ar->sess[i] = ar->sess[--ar->n_sess];
			break;
		}
	}
	ar->total_bytes -= s->bytes < ar->total_bytes ? s->bytes : ar->total_bytes;
	if (!archive_tombstoned(ar, s->session))
		ret_tombstone(ar, s->session);
	memcpy(sentinel, s->sentinel, 16);
	if (!ret_sentinel_has_sessions(ar, sentinel)) {
		/* Its last session went: so does the sentinel's listing. */
		char name[ID_STR_LEN];

		id_format(sentinel, name);
		if (archive_remove_dir(ar->data_fd, name) == 0)
			archive_fsync_dir(ar->data_fd);
	}
	ret_sess_free(s);
	return 0;
}

static int
ret_cmp_start(const void *a, const void *b)
{
	const struct archive_sess *x = *(struct archive_sess *const *)a;
	const struct archive_sess *y = *(struct archive_sess *const *)b;

	return (x->meta.start_ms > y->meta.start_ms) - (x->meta.start_ms < y->meta.start_ms);
}

enum ret_why {
	RET_KEEP = 0,
	RET_AGE,
	RET_SIZE,
	RET_FULL,
	RET_FLOOR,
};

/* The guard: a pass never deletes more than half of the archive's bytes (a
 * config mistake, max_bytes: 1MiB for 1GiB, must not wipe it). Logged at
 * most once a minute per kind; false when the plan is refused. */
static bool
ret_guard(struct archive *ar, int64_t *last_log_ms, const char *what, size_t n_plan,
	  uint64_t planned, uint64_t total)
{
	int64_t now = proc_now_ms(), days;
	uint64_t max_bytes;

	if (planned <= total / 2)
		return true;
	if (now - *last_log_ms >= RET_GUARD_LOG) {
		*last_log_ms = now;
		pthread_mutex_lock(&ar->mu);
		days = ar->retention_days;
		max_bytes = ar->max_bytes;
		pthread_mutex_unlock(&ar->mu);
		log_error(0,
			  "retention stopped: %s would delete %zu sessions, %" PRIu64 " of %" PRIu64
			  " bytes, more than half of the archive; check archive.retention_days "
			  "(%" PRId64 "), archive.max_bytes (%" PRIu64 ") and archive.min_free. "
			  "Nothing was deleted for it",
			  what, n_plan, planned, total, days, max_bytes);
	}
	return false;
}

/* Marks the oldest sessions kept so far for the floor, until what the pass
 * deletes brings the free space back to it; none when that would take
 * more than half of the archive. */
static void
ret_plan_floor(struct archive *ar, struct archive_sess **c, enum ret_why *why, size_t n,
	       uint64_t need, uint64_t planned, uint64_t total)
{
	uint64_t more = 0;
	size_t n_more = 0;

	for (size_t i = 0; i < n && planned + more < need; i++) {
		if (why[i] == RET_KEEP) {
			why[i] = RET_FLOOR;
			more += c[i]->bytes;
			n_more++;
		}
	}
	if (n_more == 0 || ret_guard(ar, &ar->last_floor_guard_log_ms, "keeping archive.min_free",
				     n_more, planned + more, total))
		return;
	for (size_t i = 0; i < n; i++) {
		if (why[i] == RET_FLOOR)
			why[i] = RET_KEEP;
	}
}

void
archive_retention(struct archive *ar, bool enospc)
{
	static const char *const why_text[] = { "", "older than retention_days",
						"archive above max_bytes", "disk full",
						"disk below archive.min_free" };
	struct archive_sess **c = NULL;
	enum ret_why *why = NULL;
	uint64_t planned = 0, limit, max_bytes, total = ar->total_bytes, need;
	int64_t now = proc_now_ms(), days;
	size_t n = 0, n_plan = 0;
	bool sized;

	pthread_mutex_lock(&ar->mu);
	days = ar->retention_days;
	max_bytes = ar->max_bytes;
	pthread_mutex_unlock(&ar->mu);
	need = archive_floor_need(ar);
	/* Age and size wait until the catalogue is complete and the sizes are
	 * known; a full disk and the floor cannot wait (they take what is known). */
	sized = ar->n_unrepaired == 0 || enospc;
	if (ar->n_sess == 0 || (!sized && need == 0))
		return;
	c = malloc(ar->n_sess * sizeof(*c));
	why = calloc(ar->n_sess, sizeof(*why));
	if (c == NULL || why == NULL)
		goto out;
	for (size_t i = 0; i < ar->n_sess; i++) {
		if (!ar->sess[i]->live && ar->sess[i]->repaired && !ar->sess[i]->broken)
			c[n++] = ar->sess[i];
	}
	qsort(c, n, sizeof(*c), ret_cmp_start);
	for (size_t i = 0; sized && days > 0 && i < n; i++) {
		if (c[i]->meta.end_ms >= 0 && c[i]->meta.end_ms < now - days * RET_DAY_MS) {
			why[i] = RET_AGE;
			planned += c[i]->bytes;
			n_plan++;
		}
	}
	limit = enospc ? total / 10 * 8 : max_bytes;
	for (size_t i = 0; sized && limit > 0 && i < n && total - planned > limit; i++) {
		if (why[i] == RET_KEEP) {
			why[i] = enospc ? RET_FULL : RET_SIZE;
			planned += c[i]->bytes;
			n_plan++;
		}
	}
	if (n_plan > 0 &&
	    !ret_guard(ar, &ar->last_guard_log_ms, "the pass", n_plan, planned, total)) {
		memset(why, 0, n * sizeof(*why));
		planned = 0;
	}
	/* What age and size delete counts towards the floor. */
	if (need > planned)
		ret_plan_floor(ar, c, why, n, need, planned, total);
	for (size_t i = 0; i < n; i++) {
		char what[2 * ID_STR_LEN + 1];
		uint64_t bytes = c[i]->bytes;
		int64_t end = c[i]->meta.end_ms;
		enum ret_why w = why[i];
		int r;

		if (w == RET_KEEP)
			continue;
		snprintf(what, sizeof(what), "%s/%s", c[i]->meta.sentinel, c[i]->meta.session);
		r = archive_sess_remove(ar, c[i]);
		if (r < 0) {
			log_error(r, "retention: removal of session %s failed", what);
			continue;
		}
		log_info("retention: deleted session %s (%" PRIu64 " bytes, ended %" PRId64 "): %s",
			 what, bytes, end, why_text[w]);
		pthread_mutex_lock(&ar->mu);
		ar->fig.retention_deleted++;
		ar->fig.min_free_deleted += w == RET_FLOOR;
		pthread_mutex_unlock(&ar->mu);
	}
out:
	free(why);
	free(c);
}
