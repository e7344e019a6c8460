/* session: vigil-archive's sessions, as the writer thread sees them: started
 * by sentinel.online or met in the ring, ended by sentinel.offline or by the
 * ring's sentinel table, their directories and session.json (made many at a
 * time when many sentinels come online together), their init files. Runs in
 * the writer thread only. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "archive.h"
#include "log.h"
#include "proc.h"

#define SESS_IDLE_MS 10000 /* fds of ended sessions are closed after this */

void
archive_sess_close(struct archive_sess *s)
{
	if (s->index_fd >= 0)
		close(s->index_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	s->index_fd = s->dir_fd = -1;
}

static int
sess_mkdir(int dirfd, const char *name, bool *ret_made)
{
	*ret_made = false;
	if (mkdirat(dirfd, name, 0755) == 0) {
		*ret_made = true;
		return 0;
	}
	return errno == EEXIST ? 0 : -errno;
}

/* The session's directory, sentinel.json and first session.json. */
static int
sess_create(struct archive *ar, struct archive_sess *s)
{
	bool made;
	int sfd = -1, r;

	r = sess_mkdir(ar->data_fd, s->meta.sentinel, &made);
	if (r < 0)
		return r;
	if (made && (r = archive_fsync_dir(ar->data_fd)) < 0)
		return r;
	sfd = openat(ar->data_fd, s->meta.sentinel,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return -errno;
	if (archive_sentinel_stale(sfd, s->meta.name)) {
		r = archive_sentinel_write(sfd, s->meta.sentinel, s->meta.name);
		if (r < 0)
			goto out;
	}
	r = sess_mkdir(sfd, s->meta.session, &made);
	if (r < 0)
		goto out;
	if (made && (r = archive_fsync_dir(sfd)) < 0)
		goto out;
	s->dir_fd = openat(sfd, s->meta.session, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->dir_fd < 0) {
		r = -errno;
		goto out;
	}
	r = archive_meta_write(s->dir_fd, &s->meta);
	if (r < 0) {
		close(s->dir_fd);
		s->dir_fd = -1;
		goto out;
	}
	s->created = true;
	s->meta_dirty = false;
out:
	close(sfd);
	return r;
}

int
archive_sess_open(struct archive *ar, struct archive_sess *s)
{
	char path[2 * ID_STR_LEN + 1];
	struct stat sb;
	int r;

	if (s->broken)
		return -EIO;
	if (!s->repaired && (r = archive_sess_repair(ar, s)) < 0)
		return r;
	if (s->dir_fd < 0) {
		if (!s->created)
			return sess_create(ar, s);
		snprintf(path, sizeof(path), "%s/%s", s->meta.sentinel, s->meta.session);
		s->dir_fd = beneath_open(ar->data_fd, path, O_RDONLY | O_DIRECTORY, 0);
		if (s->dir_fd < 0) {
			r = s->dir_fd;
			s->dir_fd = -1;
			if (r == -ENOENT)
				s->created = false; /* gone behind our back: made again */
			return r;
		}
	}
	if (s->index_fd < 0) {
		s->index_fd = openat(s->dir_fd, LAYOUT_INDEX,
				     O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (s->index_fd < 0)
			return -errno;
		if (fstat(s->index_fd, &sb) < 0)
			return -errno;
		s->index_size = (uint64_t)sb.st_size;
	}
	return 0;
}

void
archive_sess_flush(struct archive *ar, struct archive_sess *s)
{
	int r;

	if (!s->meta_dirty)
		return;
	if (!s->created) {
		if (!s->live)
			return; /* an ended session with nothing stored: nothing to show */
		r = sess_create(ar, s);
	} else {
		r = archive_sess_open(ar, s);
		if (r == 0)
			r = archive_meta_write(s->dir_fd, &s->meta);
	}
	if (r < 0) {
		log_warn(r, "session.json of %s/%s not written (tried again later)",
			 s->meta.sentinel, s->meta.session);
		return;
	}
	s->meta_dirty = false;
}

static void
sess_end(struct archive *ar, struct archive_sess *s, int64_t end_ms, bool from_bus)
{
	if (!s->live && (s->end_from_bus || !from_bus) && s->meta.end_ms >= 0)
		return;
	s->live = false;
	s->end_from_bus = from_bus;
	s->meta.end_ms = end_ms;
	s->meta_dirty = true;
	archive_sess_flush(ar, s);
	log_info("session %s/%s ended at %" PRId64 " (%s)", s->meta.sentinel, s->meta.session,
		 end_ms, from_bus ? "sentinel.offline" : "seen in the ring's table");
}

static int64_t
sess_derived_end(const struct archive_sess *s)
{
	return s->last_end_ms >= 0 ? s->last_end_ms : s->meta.start_ms;
}

static void
sess_from_table(struct archive_sess *s, const struct ring_sentinel *e)
{
	if (e->name[0] != '\0')
		snprintf(s->meta.name, sizeof(s->meta.name), "%s", e->name);
	if (e->codec[0] != '\0') {
		snprintf(s->meta.codec, sizeof(s->meta.codec), "%s", e->codec);
		s->meta.width = e->width;
		s->meta.height = e->height;
		s->meta.timescale = e->timescale;
	}
}

/* A session archive meets in the ring or the table before any bus message. */
static struct archive_sess *
sess_new(struct archive *ar, const struct ring_sentinel *e, uint32_t slot, int64_t first_ms)
{
	struct archive_sess *s = archive_sess_add(ar, e->id, e->session);

	if (s == NULL) {
		log_error(-ENOMEM, "a new session could not be catalogued");
		return NULL;
	}
	sess_from_table(s, e);
	s->meta.start_ms = e->session_start_ms > 0 ? e->session_start_ms : first_ms;
	s->slot = slot;
	s->live = e->online;
	if (!s->live)
		s->meta.end_ms = first_ms; /* moved on with every segment stored */
	s->meta_dirty = true;
	log_info("session %s/%s (%s) %s", s->meta.sentinel, s->meta.session, s->meta.name,
		 s->live ? "is live" : "ended already: its segments still in the ring are stored");
	return s;
}

struct archive_sess *
archive_sess_by_id(struct archive *ar, const uint8_t session[16])
{
	for (size_t i = 0; i < ar->n_sess; i++) {
		if (memcmp(ar->sess[i]->session, session, 16) == 0)
			return ar->sess[i];
	}
	return NULL;
}

/* The session a segment belongs to; NULL when it is not to be stored. */
struct archive_sess *
archive_sess_for(struct archive *ar, const struct ring_seg *m, uint64_t *skipped)
{
	struct archive_sess *s = NULL;
	struct ring_sentinel e;

	if (m->sentinel < ar->n_slots)
		s = ar->by_slot[m->sentinel];
	if (s != NULL && memcmp(s->session, m->session, 16) == 0)
		return s;
	if (archive_tombstoned(ar, m->session))
		return NULL;
	s = archive_sess_by_id(ar, m->session);
	if (s == NULL) {
		/* Only the table knows whose session it is. A session that started and
		 * ended while archive was down is no longer in it: it cannot be named. */
		if (ring_sentinel_get(ar->ring, m->sentinel, &e, NULL, 0) < 0 ||
		    memcmp(e.session, m->session, 16) != 0) {
			(*skipped)++;
			return NULL;
		}
		s = sess_new(ar, &e, m->sentinel, m->start_ms);
		if (s == NULL)
			return NULL;
	}
	/* Its last sequence must be known before anything is taken for it. */
	if (!s->repaired)
		archive_sess_repair(ar, s);
	if (s->broken)
		return NULL;
	if (m->sentinel < ar->n_slots) {
		ar->by_slot[m->sentinel] = s;
		s->slot = m->sentinel;
	}
	return s;
}

/* The init file the segment decodes with, stored before the segment is listed. */
int
archive_sess_init(struct archive *ar, struct archive_sess *s, const struct ring_seg *m)
{
	uint32_t gen = m->init_gen > 0 ? m->init_gen - 1 : 0;
	struct ring_sentinel e;
	char name[32];
	int r;

	if (gen < s->meta.inits)
		return 0;
	r = ring_sentinel_get(ar->ring, m->sentinel, &e, ar->init_buf, ar->init_size);
	if (r < 0 || memcmp(e.session, m->session, 16) != 0 || e.init_gen != m->init_gen ||
	    e.init_len == 0) {
		log_warn(0,
			 "init %u of %s/%s is no longer in the ring; its segments are stored "
			 "without it",
			 gen, s->meta.sentinel, s->meta.session);
		s->meta.inits = gen + 1; /* warned once: what follows uses this one */
		s->meta_dirty = true;
		return 0;
	}
	layout_init_name(gen, name, sizeof(name));
	r = archive_write_atomic(s->dir_fd, name, ar->init_buf, e.init_len, false);
	if (r < 0)
		return r;
	s->bytes += e.init_len;
	ar->total_bytes += e.init_len;
	s->meta.inits = gen + 1;
	sess_from_table(s, &e);
	/* The dir fsync of the batch makes the init's rename durable first. */
	s->meta_dirty = true;
	r = archive_meta_write(s->dir_fd, &s->meta);
	if (r == 0)
		s->meta_dirty = false;
	return r;
}

/* The table holds a sentinel's latest init only: each new one is stored as soon
 * as it is seen, not only when archive reaches its first segment (which may be
 * after a later init replaced it). Failures are left to the segment's turn. */
void
archive_sess_poll_inits(struct archive *ar)
{
	struct ring_sentinel e;

	for (size_t i = 0; i < ar->n_sess; i++) {
		struct archive_sess *s = ar->sess[i];
		struct ring_seg m = { 0 };

		if (!s->live || s->slot >= ar->n_slots ||
		    ring_sentinel_get(ar->ring, s->slot, &e, NULL, 0) < 0 ||
		    memcmp(e.session, s->session, 16) != 0 || e.init_gen == 0 || e.init_len == 0 ||
		    e.init_gen - 1 < s->meta.inits)
			continue;
		m.sentinel = s->slot;
		memcpy(m.session, s->session, 16);
		m.init_gen = e.init_gen;
		if (archive_sess_open(ar, s) == 0)
			archive_sess_init(ar, s, &m);
	}
}

/* ---- many new sessions at once ------------------------------------------ */

struct sess_tmp {
	int dirfd; /* not owned */
	const char *name;
	int fd;
	size_t owner; /* the session's place in the chunk */
};

static int
sess_tmp_open(struct sess_tmp *t, int dirfd, const char *name, char *text, size_t owner)
{
	char tmp[64];
	size_t len;
	ssize_t n;
	int r = 0;

	t->dirfd = dirfd;
	t->name = name;
	t->owner = owner;
	t->fd = -1;
	if (text == NULL)
		return -ENOMEM;
	len = strlen(text);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	t->fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (t->fd < 0)
		r = -errno;
	else if ((n = write(t->fd, text, len)) < 0 || (size_t)n != len)
		r = n < 0 ? -errno : -ENOSPC;
	free(text);
	return r;
}

static void
sess_tmp_drop(struct sess_tmp *t)
{
	char tmp[64];

	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp", t->name);
	unlinkat(t->dirfd, tmp, 0);
}

static bool
sess_same_sentinel(struct archive_sess **ss, size_t i, const int *err)
{
	for (size_t j = 0; j < i; j++) {
		if (err[j] == 0 && memcmp(ss[j]->sentinel, ss[i]->sentinel, 16) == 0)
			return true;
	}
	return false;
}

/* Up to ARCHIVE_CREATE_MAX sessions: every directory made and every file
 * written, then the files fsynced together, renamed, and the directories
 * fsynced together: two rounds of parallel fsyncs instead of five fsyncs in a
 * row per session (200 sentinels come online at once when an exam starts). */
static void
sess_create_chunk(struct archive *ar, struct archive_sess **ss, size_t n)
{
	struct sess_tmp t[2 * ARCHIVE_CREATE_MAX];
	int sfd[ARCHIVE_CREATE_MAX], err[ARCHIVE_CREATE_MAX];
	int fds[2 * ARCHIVE_CREATE_MAX + 1], errs[2 * ARCHIVE_CREATE_MAX + 1];
	size_t owner[2 * ARCHIVE_CREATE_MAX + 1];
	size_t nt = 0, nf = 0;
	bool new_dir = false;

	for (size_t i = 0; i < n; i++) {
		struct archive_sess *s = ss[i];
		bool made;

		sfd[i] = -1;
		err[i] = sess_mkdir(ar->data_fd, s->meta.sentinel, &made);
		new_dir |= made;
		if (err[i] == 0) {
			sfd[i] = openat(ar->data_fd, s->meta.sentinel,
					O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sfd[i] < 0)
				err[i] = -errno;
		}
		if (err[i] == 0 && !sess_same_sentinel(ss, i, err) &&
		    archive_sentinel_stale(sfd[i], s->meta.name))
			err[i] =
				sess_tmp_open(&t[nt++], sfd[i], LAYOUT_SENTINEL,
					      archive_sentinel_text(s->meta.sentinel, s->meta.name),
					      i);
		if (err[i] == 0)
			err[i] = sess_mkdir(sfd[i], s->meta.session, &made);
		if (err[i] == 0) {
			s->dir_fd = openat(sfd[i], s->meta.session,
					   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s->dir_fd < 0)
				err[i] = -errno;
		}
		if (err[i] == 0)
			err[i] = sess_tmp_open(&t[nt++], s->dir_fd, LAYOUT_SESSION,
					       layout_session_text(&s->meta), i);
	}
	for (size_t k = 0; k < nt; k++) {
		if (t[k].fd >= 0 && err[t[k].owner] == 0) {
			owner[nf] = t[k].owner;
			fds[nf++] = t[k].fd;
		}
	}
	archive_writer_sync(ar, fds, errs, nf);
	for (size_t k = 0; k < nf; k++) {
		if (errs[k] < 0 && err[owner[k]] == 0)
			err[owner[k]] = errs[k];
	}
	for (size_t k = 0; k < nt; k++) {
		char tmp[64];

		if (err[t[k].owner] != 0) {
			sess_tmp_drop(&t[k]);
			continue;
		}
		close(t[k].fd);
		t[k].fd = -1;
		snprintf(tmp, sizeof(tmp), "%s.tmp", t[k].name);
		if (renameat(t[k].dirfd, tmp, t[k].dirfd, t[k].name) < 0) {
			err[t[k].owner] = -errno;
			sess_tmp_drop(&t[k]);
		}
	}
	/* The directories: data_dir if a sentinel's is new, each sentinel's, each session's. */
	nf = 0;
	if (new_dir) {
		owner[nf] = SIZE_MAX;
		fds[nf++] = ar->data_fd;
	}
	for (size_t i = 0; i < n; i++) {
		if (err[i] != 0)
			continue;
		if (!sess_same_sentinel(ss, i, err)) {
			owner[nf] = i;
			fds[nf++] = sfd[i];
		}
		owner[nf] = i;
		fds[nf++] = ss[i]->dir_fd;
	}
	archive_writer_sync(ar, fds, errs, nf);
	for (size_t k = 0; k < nf; k++) {
		if (errs[k] < 0) {
			for (size_t i = 0; i < n; i++) {
				if ((owner[k] == SIZE_MAX || owner[k] == i ||
				     memcmp(ss[i]->sentinel, ss[owner[k]]->sentinel, 16) == 0) &&
				    err[i] == 0)
					err[i] = errs[k];
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (sfd[i] >= 0)
			close(sfd[i]);
		if (err[i] == 0) {
			ss[i]->created = true;
			ss[i]->meta_dirty = false;
			continue;
		}
		log_warn(err[i], "directory of session %s/%s not made yet (tried again later)",
			 ss[i]->meta.sentinel, ss[i]->meta.session);
		if (ss[i]->dir_fd >= 0)
			close(ss[i]->dir_fd);
		ss[i]->dir_fd = -1;
	}
}

/* The sessions of ss that have no directory yet, made together. */
void
archive_sess_create_all(struct archive *ar, struct archive_sess **ss, size_t n)
{
	struct archive_sess *chunk[ARCHIVE_CREATE_MAX];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		struct archive_sess *s = ss[i];
		bool seen = false;

		if (s == NULL || s->created || s->broken || s->dir_fd >= 0)
			continue;
		for (size_t j = 0; j < k; j++)
			seen |= chunk[j] == s;
		if (seen)
			continue;
		chunk[k++] = s;
		if (k == ARCHIVE_CREATE_MAX) {
			sess_create_chunk(ar, chunk, k);
			k = 0;
		}
	}
	if (k > 0)
		sess_create_chunk(ar, chunk, k);
}

/* ---- sessions from events and the table ---------------------------------- */

/* Returns a session whose directory is still to be made (by archive_sess_create_all). */
struct archive_sess *
archive_sess_online(struct archive *ar, const struct archive_ev *ev)
{
	struct archive_sess *s = archive_sess_by_id(ar, ev->session);
	struct ring_sentinel e;

	if (archive_tombstoned(ar, ev->session))
		return NULL;
	if (s == NULL) {
		s = archive_sess_add(ar, ev->sentinel, ev->session);
		if (s == NULL)
			return NULL;
		snprintf(s->meta.name, sizeof(s->meta.name), "%s", ev->name);
		s->meta.start_ms = ev->time_ms;
		log_info("session %s/%s (%s) started", s->meta.sentinel, s->meta.session,
			 s->meta.name);
	} else if (s->live) {
		return NULL;
	}
	s->live = true;
	s->meta.end_ms = -1;
	s->end_from_bus = false;
	s->slot = ev->slot;
	if (ev->slot < ar->n_slots) {
		ar->by_slot[ev->slot] = s;
		if (ring_sentinel_get(ar->ring, ev->slot, &e, NULL, 0) == 0 &&
		    memcmp(e.session, s->session, 16) == 0)
			sess_from_table(s, &e);
	}
	s->meta_dirty = true;
	if (!s->created)
		return s;
	archive_sess_flush(ar, s);
	return NULL;
}

void
archive_sess_offline(struct archive *ar, const struct archive_ev *ev)
{
	struct archive_sess *s = archive_sess_by_id(ar, ev->session);

	if (s != NULL)
		sess_end(ar, s, ev->time_ms, true);
}

struct archive_sess *
archive_sess_from_table(struct archive *ar, const uint8_t sentinel[16], const uint8_t session[16])
{
	struct archive_sess *s;
	struct ring_sentinel e;
	uint32_t slot;
	int r = -EAGAIN;

	if (archive_sess_by_id(ar, session) != NULL || archive_tombstoned(ar, session) ||
	    ring_sentinel_find(ar->ring, sentinel, &slot) < 0)
		return NULL;
	/* -EAGAIN: ingest is writing the entry this instant. */
	for (int tries = 0; tries < 3 && r == -EAGAIN; tries++)
		r = ring_sentinel_get(ar->ring, slot, &e, NULL, 0);
	if (r < 0 || !e.online || memcmp(e.id, sentinel, 16) != 0 ||
	    memcmp(e.session, session, 16) != 0)
		return NULL;
	s = sess_new(ar, &e, slot, e.session_start_ms);
	if (s != NULL && slot < ar->n_slots)
		ar->by_slot[slot] = s;
	return s;
}

/* The ring's table is the truth on who is online: a lost bus message does not
 * leave a session live forever, and after a restart the live ones are known. */
void
archive_sess_check_table(struct archive *ar, bool start)
{
	struct ring_sentinel e;
	uint64_t live = 0;
	int64_t now = proc_mono_ms();

	for (size_t i = 0; i < ar->n_sess; i++) {
		struct archive_sess *s = ar->sess[i];
		uint32_t slot = s->slot;
		bool on = false;
		int r;

		if (s->live || (start && s->meta.end_ms < 0)) {
			if (slot == UINT32_MAX &&
			    ring_sentinel_find(ar->ring, s->sentinel, &slot) < 0)
				slot = UINT32_MAX;
			r = slot != UINT32_MAX ? ring_sentinel_get(ar->ring, slot, &e, NULL, 0)
					       : -ENOENT;
			if (r == -EAGAIN && !start) {
				live++; /* the writer kept the entry busy: ask again later */
				continue;
			}
			if (r == 0)
				on = e.online && memcmp(e.id, s->sentinel, 16) == 0 &&
				     memcmp(e.session, s->session, 16) == 0;
			if (on) {
				s->live = true;
				s->slot = slot;
				if (slot < ar->n_slots)
					ar->by_slot[slot] = s;
				live++;
			} else {
				s->live = true; /* so that sess_end ends it */
				sess_end(ar, s, sess_derived_end(s), false);
			}
		}
		if (!s->live && s->dir_fd >= 0 && now - s->used_mono_ms > SESS_IDLE_MS)
			archive_sess_close(s);
		if (s->meta_dirty)
			archive_sess_flush(ar, s);
	}
	/* Online sentinels archive has not heard of (it was down when they came). */
	for (uint32_t slot = 0; start && slot < ar->n_slots; slot++) {
		struct archive_sess *s;

		if (ring_sentinel_get(ar->ring, slot, &e, NULL, 0) < 0 || !e.online ||
		    id_is_nil(e.id) || archive_sess_by_id(ar, e.session) != NULL ||
		    archive_tombstoned(ar, e.session))
			continue;
		s = sess_new(ar, &e, slot, e.session_start_ms);
		if (s != NULL) {
			ar->by_slot[slot] = s;
			live++;
		}
	}
	/* Their directories, made together (by_slot holds each new one). */
	if (start)
		archive_sess_create_all(ar, ar->by_slot, ar->n_slots);
	pthread_mutex_lock(&ar->mu);
	ar->fig.sessions_live = live;
	pthread_mutex_unlock(&ar->mu);
}

void
archive_sess_count_live(struct archive *ar)
{
	uint64_t live = 0;

	for (size_t i = 0; i < ar->n_sess; i++)
		live += ar->sess[i]->live;
	pthread_mutex_lock(&ar->mu);
	ar->fig.sessions_live = live;
	pthread_mutex_unlock(&ar->mu);
}
