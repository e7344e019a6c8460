/* writer: vigil-archive's writer thread. It reads the ring from its tail (a
 * catch-up after a restart) and then every new segment, takes what is waiting
 * as one batch, and makes the batch durable in the order of docs/archive.md:
 * every segment's .tmp written and fsynced, renamed, each session directory
 * fsynced, then each session's index lines appended and fsynced. A batch that
 * fails (ENOSPC above all) stays in memory and is retried a second later while
 * retention frees space; segments the ring overwrites meanwhile are named
 * as lost. The loop also hands the stage thread's events to session.c and
 * runs retention. Everything in this file runs in the writer thread. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "log.h"
#include "proc.h"

#define WRITER_WAIT_MS      500   /* the writer looks at its events at least this often */
#define WRITER_CHECK_MS     2000  /* the ring's sentinel table is compared this often */
#define WRITER_RETENTION_MS 10000 /* a retention pass this often */
#define WRITER_RETRY_MS     1000  /* a failed batch is tried again after this */
#define WRITER_BATCH_US     250000
#define WRITER_INITS_MS     100 /* the table's inits are looked at this often */
#define WRITER_TRIES        3   /* other errors than a full disk: then the segment is lost */
#define WRITER_SYNC_THREADS 8

static int64_t
writer_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Notes the descriptors published since the last call, while they are fresh. */
static void
writer_shadow(struct archive *ar)
{
	uint64_t head = ring_head(ar->ring), n = ar->rs.n_slots;
	uint64_t i = ar->shadow_next > ar->next ? ar->shadow_next : ar->next;

	if (head - i > n)
		i = head - n;
	for (; i < head; i++) {
		struct archive_shadow *sh = &ar->shadow[i % n];
		struct ring_seg m;
		const void *data;

		if (ring_peek(ar->ring, i, &m, &data) < 0)
			continue;
		sh->index = i;
		memcpy(sh->session, m.session, 16);
		sh->sequence = m.sequence;
	}
	ar->shadow_next = head;
}

static void
writer_lost(struct archive *ar, uint64_t index)
{
	const struct archive_shadow *sh = &ar->shadow[index % ar->rs.n_slots];

	if (sh->index != index) {
		ar->lost_unknown++;
		return;
	}
	if (archive_tombstoned(ar, sh->session))
		return; /* deleted: it was not going to be stored */
	for (size_t k = 0; k < ar->n_lost; k++) {
		struct archive_lost *l = &ar->lost[k];

		if (memcmp(l->session, sh->session, 16) == 0 && l->to + 1 == sh->sequence) {
			l->to = sh->sequence;
			return;
		}
	}
	if (ar->n_lost == ARCHIVE_LOST_RUNS) {
		ar->lost_unknown++;
		return;
	}
	memcpy(ar->lost[ar->n_lost].session, sh->session, 16);
	ar->lost[ar->n_lost].from = ar->lost[ar->n_lost].to = sh->sequence;
	ar->n_lost++;
}

static void
writer_log_lost(struct archive *ar)
{
	uint64_t total = ar->lost_unknown;

	for (size_t k = 0; k < ar->n_lost; k++) {
		const struct archive_lost *l = &ar->lost[k];
		struct archive_sess *s = archive_sess_by_id(ar, l->session);
		char id[ID_STR_LEN];

		id_format(l->session, id);
		log_error(0,
			  "segments %" PRId64 "..%" PRId64 " of session %s/%s were overwritten in "
			  "the ring before archive stored them: lost",
			  l->from, l->to, s != NULL ? s->meta.sentinel : "?", id);
		total += (uint64_t)(l->to - l->from + 1);
	}
	if (ar->lost_unknown > 0)
		log_error(0, "%" PRIu64 " more ring segments (not seen in time to name them) lost",
			  ar->lost_unknown);
	if (total > 0) {
		pthread_mutex_lock(&ar->mu);
		ar->fig.lost += total;
		pthread_mutex_unlock(&ar->mu);
	}
	ar->n_lost = 0;
	ar->lost_unknown = 0;
}

/* While a batch waits for the disk, the ring moves on: what falls out of it is
 * reported now, not when the disk has room again. */
static void
writer_overrun(struct archive *ar)
{
	uint64_t tail = ring_tail(ar->ring);

	if (tail <= ar->next)
		return;
	for (uint64_t k = ar->next; ar->read_any && k < tail; k++)
		writer_lost(ar, k);
	ar->next = tail;
	atomic_store(&ar->next_shared, ar->next);
	writer_log_lost(ar);
}

/* Takes what waits in the ring as one batch. */
static void
writer_collect(struct archive *ar)
{
	uint64_t head = ring_head(ar->ring), skipped = 0;
	int64_t t0 = writer_mono_us();
	size_t used = 0;

	ar->batch_n = 0;
	while (ar->batch_n < ARCHIVE_BATCH_MAX && used < ARCHIVE_BATCH_BYTES && ar->next < head &&
	       writer_mono_us() - t0 < WRITER_BATCH_US) {
		struct archive_item *it = &ar->batch[ar->batch_n];
		struct archive_sess *s;
		int r;

		r = ring_read(ar->ring, ar->next, &it->meta, ar->arena + used,
			      ar->arena_size - used);
		if (r == -EAGAIN)
			break;
		if (r == -ESTALE) {
			uint64_t tail = ring_tail(ar->ring);
			uint64_t to = tail > ar->next + 1 ? tail : ar->next + 1;

			for (uint64_t k = ar->next; ar->read_any && k < to; k++)
				writer_lost(ar, k);
			ar->next = to;
			continue;
		}
		if (r < 0) {
			log_error(r, "ring_read(%" PRIu64 ") failed; segment skipped", ar->next);
			ar->next++;
			continue;
		}
		ar->read_any = true;
		ar->next++;
		s = archive_sess_for(ar, &it->meta, &skipped);
		if (s == NULL || it->meta.sequence <= s->batch_seq)
			continue;
		s->batch_seq = it->meta.sequence;
		it->sess = s;
		it->off = used;
		it->fd = -1;
		it->err = 0;
		it->tries = 0;
		it->read_mono_us = writer_mono_us();
		it->entry = (struct layout_entry){
			.sequence = it->meta.sequence,
			.start_ms = it->meta.start_ms,
			.duration_ms = it->meta.duration_ms,
			.bytes = it->meta.len,
			.keyframe = (it->meta.flags & RING_SEG_KEYFRAME) != 0,
			.init = it->meta.init_gen > 0 ? it->meta.init_gen - 1 : 0,
		};
		layout_sha256_hex(ar->arena + used, it->meta.len, it->entry.sha256);
		used += it->meta.len;
		ar->batch_n++;
	}
	atomic_store(&ar->next_shared, ar->next);
	writer_log_lost(ar);
	if (skipped > 0)
		log_warn(0,
			 "%" PRIu64 " ring segments of sessions no longer in the ring's table "
			 "skipped (they started and ended while archive was down)",
			 skipped);
}

static void
writer_fail(struct archive_item *it, int err)
{
	if (it->err == 0)
		it->err = err;
	if (it->sess != NULL && it->sess->batch_err == 0)
		it->sess->batch_err = err;
}

static void
writer_unlink_tmp(struct archive_item *it)
{
	char name[64];

	if (it->fd >= 0) {
		close(it->fd);
		it->fd = -1;
	}
	if (it->sess != NULL && it->sess->dir_fd >= 0) {
		layout_seg_name(it->entry.sequence, name, sizeof(name));
		strcat(name, ".tmp");
		unlinkat(it->sess->dir_fd, name, 0);
	}
}

/* Phase 1: each segment's .tmp written (and the session made, the init stored). */
static void
writer_phase_write(struct archive *ar)
{
	for (size_t i = 0; i < ar->batch_n; i++) {
		struct archive_item *it = &ar->batch[i];
		struct archive_sess *s = it->sess;
		const uint8_t *p = ar->arena + it->off;
		size_t left = it->meta.len;
		char name[64];
		int r;

		if (s == NULL || s->batch_err != 0) {
			if (s != NULL)
				writer_fail(it, s->batch_err);
			continue;
		}
		r = archive_sess_open(ar, s);
		if (r == 0)
			r = archive_sess_init(ar, s, &it->meta);
		if (r == 0) {
			layout_seg_name(it->entry.sequence, name, sizeof(name));
			strcat(name, ".tmp");
			it->fd =
				openat(s->dir_fd, name,
				       O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (it->fd < 0)
				r = -errno;
		}
		while (r == 0 && left > 0) {
			ssize_t n = write(it->fd, p, left);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				r = -errno;
			else {
				p += n;
				left -= (size_t)n;
			}
		}
		if (r < 0) {
			writer_fail(it, r);
			writer_unlink_tmp(it);
		}
	}
}

/* fsyncs the fds in fds[0..n) together and adds the time to the figures. */
void
archive_writer_sync(struct archive *ar, int *fds, int *errs, size_t n)
{
	int64_t t0 = writer_mono_us(), dt;

	archive_sync_all(ar->sync, fds, n, errs);
	dt = writer_mono_us() - t0;
	pthread_mutex_lock(&ar->mu);
	ar->fig.fsyncs += n;
	ar->fig.fsync_ms += (double)dt / 1000.0;
	pthread_mutex_unlock(&ar->mu);
}

/* Phases 2 and 3: the .tmp files fsynced together, then renamed in order. */
static void
writer_phase_rename(struct archive *ar, int *fds, int *errs, size_t *idx)
{
	size_t n = 0;

	for (size_t i = 0; i < ar->batch_n; i++) {
		if (ar->batch[i].fd >= 0) {
			idx[n] = i;
			fds[n++] = ar->batch[i].fd;
		}
	}
	archive_writer_sync(ar, fds, errs, n);
	for (size_t k = 0; k < n; k++) {
		if (errs[k] < 0)
			writer_fail(&ar->batch[idx[k]], errs[k]);
	}
	for (size_t i = 0; i < ar->batch_n; i++) {
		struct archive_item *it = &ar->batch[i];
		char name[64], tmp[72];

		if (it->fd < 0)
			continue;
		if (it->err == 0 && it->sess->batch_err != 0)
			writer_fail(it, it->sess->batch_err); /* an earlier one failed */
		if (it->err != 0) {
			writer_unlink_tmp(it);
			continue;
		}
		close(it->fd);
		it->fd = -1;
		layout_seg_name(it->entry.sequence, name, sizeof(name));
		snprintf(tmp, sizeof(tmp), "%s.tmp", name);
		if (renameat(it->sess->dir_fd, tmp, it->sess->dir_fd, name) < 0) {
			writer_fail(it, -errno);
			unlinkat(it->sess->dir_fd, tmp, 0);
		}
	}
}

static int
writer_add_line(struct archive_sess *s, const struct layout_entry *e)
{
	char line[512];
	int n = layout_entry_format(e, line, sizeof(line));

	if (n < 0)
		return n;
	if (s->lines_len + (size_t)n > s->lines_cap) {
		size_t cap = s->lines_cap ? 2 * s->lines_cap : 4096;
		char *p;

		while (cap < s->lines_len + (size_t)n)
			cap *= 2;
		p = realloc(s->lines, cap);
		if (p == NULL)
			return -ENOMEM;
		s->lines = p;
		s->lines_cap = cap;
	}
	memcpy(s->lines + s->lines_len, line, (size_t)n);
	s->lines_len += (size_t)n;
	return 0;
}

/* The sessions of the batch whose renames all went through, each once. */
static size_t
writer_touched(struct archive *ar, struct archive_sess **out)
{
	size_t n = 0;

	for (size_t i = 0; i < ar->batch_n; i++) {
		struct archive_sess *s = ar->batch[i].sess;

		if (s == NULL || ar->batch[i].err != 0 || s->in_batch)
			continue;
		s->in_batch = true;
		s->lines_len = 0;
		out[n++] = s;
	}
	return n;
}

/* Phases 4 and 5: each touched directory fsynced, then each index appended to
 * and fsynced. A session whose step fails keeps all its segments for the retry. */
static void
writer_phase_index(struct archive *ar, int *fds, int *errs)
{
	struct archive_sess *ts[ARCHIVE_BATCH_MAX];
	size_t n = writer_touched(ar, ts);

	for (size_t k = 0; k < n; k++)
		fds[k] = ts[k]->dir_fd;
	archive_writer_sync(ar, fds, errs, n);
	for (size_t k = 0; k < n; k++) {
		if (errs[k] < 0 && ts[k]->batch_err == 0)
			ts[k]->batch_err = errs[k];
	}
	for (size_t i = 0; i < ar->batch_n; i++) {
		struct archive_item *it = &ar->batch[i];
		int r;

		if (it->sess == NULL || it->err != 0)
			continue;
		if (it->sess->batch_err != 0) {
			writer_fail(it, it->sess->batch_err);
			continue;
		}
		r = writer_add_line(it->sess, &it->entry);
		if (r < 0)
			writer_fail(it, r);
	}
	for (size_t k = 0; k < n; k++) {
		struct archive_sess *s = ts[k];
		const char *p = s->lines;
		size_t left = s->lines_len;
		int r = s->batch_err;

		while (r == 0 && left > 0) {
			ssize_t w = write(s->index_fd, p, left);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				r = -errno;
			else {
				p += w;
				left -= (size_t)w;
			}
		}
		if (r < 0) {
			/* A partial line must not stay: readers would see it complete
			 * once the next one is appended. */
			if (ftruncate(s->index_fd, (off_t)s->index_size) < 0)
				log_error(-errno, "ftruncate of %s/%s/index.jsonl failed",
					  s->meta.sentinel, s->meta.session);
			s->batch_err = r;
		}
		fds[k] = s->index_fd;
	}
	archive_writer_sync(ar, fds, errs, n);
	for (size_t k = 0; k < n; k++) {
		struct archive_sess *s = ts[k];

		if (errs[k] < 0 && s->batch_err == 0) {
			s->batch_err = errs[k];
			if (ftruncate(s->index_fd, (off_t)s->index_size) < 0)
				log_error(-errno, "ftruncate of %s/%s/index.jsonl failed",
					  s->meta.sentinel, s->meta.session);
		}
		if (s->batch_err == 0) {
			s->index_size += s->lines_len;
			s->bytes += s->lines_len;
			ar->total_bytes += s->lines_len;
		}
	}
}

static bool
writer_full(int err)
{
	return err == -ENOSPC || err == -EDQUOT;
}

/* Phase 6: figures, session state; failed segments stay for the retry. */
static void
writer_settle(struct archive *ar)
{
	int64_t now_us = writer_mono_us();
	size_t kept = 0;
	int full = 0, other = 0;

	pthread_mutex_lock(&ar->mu);
	for (size_t i = 0; i < ar->batch_n; i++) {
		struct archive_item *it = &ar->batch[i];
		struct archive_sess *s = it->sess;
		double lat;

		if (s == NULL)
			continue;
		if (it->err == 0 && s->batch_err != 0)
			writer_fail(it, s->batch_err);
		if (it->err != 0) {
			if (writer_full(it->err)) {
				full = it->err;
			} else if (++it->tries >= WRITER_TRIES) {
				log_error(it->err,
					  "segment %" PRId64 " of %s/%s lost after %d tries",
					  it->entry.sequence, s->meta.sentinel, s->meta.session,
					  it->tries);
				ar->fig.lost++;
				continue;
			} else {
				other = it->err;
			}
			it->err = 0;
			ar->batch[kept++] = *it;
			continue;
		}
		s->last_seq = it->entry.sequence;
		s->last_end_ms = it->entry.start_ms + it->entry.duration_ms;
		s->bytes += it->entry.bytes;
		s->used_mono_ms = now_us / 1000;
		ar->total_bytes += it->entry.bytes;
		if (!s->live && !s->end_from_bus && s->last_end_ms > s->meta.end_ms) {
			s->meta.end_ms = s->last_end_ms;
			s->meta_dirty = true;
		}
		lat = (double)(now_us - it->read_mono_us) / 1000.0;
		ar->fig.segments_written++;
		ar->fig.bytes_written += it->entry.bytes;
		ar->fig.lat_sum_ms += lat;
		ar->fig.lat_n++;
		if (lat > ar->fig.lat_max_ms)
			ar->fig.lat_max_ms = lat;
	}
	if (full != 0)
		ar->fig.enospc++;
	pthread_mutex_unlock(&ar->mu);
	for (size_t i = 0; i < ar->batch_n; i++) {
		if (ar->batch[i].sess != NULL) {
			ar->batch[i].sess->in_batch = false;
			ar->batch[i].sess->batch_err = 0;
			archive_sess_flush(ar, ar->batch[i].sess);
		}
	}
	ar->batch_n = kept;
	if (kept == 0) {
		if (ar->stalled)
			log_info("writing again after %" PRId64
				 " s: the waiting segments are stored",
				 (proc_now_ms() - ar->stall_since_ms) / 1000);
		ar->stalled = false;
		ar->stalled_enospc = false;
		atomic_store(&ar->stalled_shared, false);
		return;
	}
	if (!ar->stalled) {
		ar->stall_since_ms = proc_now_ms();
		if (full != 0)
			log_error(
				full,
				"DISK FULL in %s: %zu segments wait in memory and are tried "
				"again every second; retention frees space; ingest is not affected",
				ar->data_dir, kept);
		else
			log_error(other,
				  "writing to %s failed: %zu segments wait in memory and "
				  "are tried again",
				  ar->data_dir, kept);
	}
	ar->stalled = true;
	atomic_store(&ar->stall_err, full != 0 ? full : other);
	atomic_store(&ar->stalled_shared, true);
	ar->retry_mono_ms = proc_mono_ms() + WRITER_RETRY_MS;
	if (full != 0) {
		ar->stalled_enospc = true;
		archive_retention(ar, true);
	}
}

/* Sessions met in the ring before any bus message (after a restart) get their
 * directories together too. */
static void
writer_create_batch(struct archive *ar)
{
	struct archive_sess *ss[ARCHIVE_BATCH_MAX];

	for (size_t i = 0; i < ar->batch_n; i++)
		ss[i] = ar->batch[i].sess;
	archive_sess_create_all(ar, ss, ar->batch_n);
}

static void
writer_commit(struct archive *ar)
{
	int fds[ARCHIVE_BATCH_MAX], errs[ARCHIVE_BATCH_MAX];
	size_t idx[ARCHIVE_BATCH_MAX];

	if (ar->batch_n == 0)
		return;
	for (size_t i = 0; i < ar->batch_n; i++) {
		if (ar->batch[i].sess != NULL) {
			ar->batch[i].sess->batch_err = 0;
			ar->batch[i].sess->in_batch = false;
		}
	}
	writer_phase_write(ar);
	writer_phase_rename(ar, fds, errs, idx);
	writer_phase_index(ar, fds, errs);
	writer_settle(ar);
}

static void
writer_events(struct archive *ar)
{
	struct archive_sess *made[4 * ARCHIVE_CREATE_MAX];
	struct archive_ev *ev, *next;
	size_t n_made = 0;

	pthread_mutex_lock(&ar->mu);
	ev = ar->evq;
	ar->evq = NULL;
	ar->evq_tail = &ar->evq;
	ar->evq_len = 0;
	pthread_mutex_unlock(&ar->mu);
	if (ev == NULL)
		return;
	for (; ev != NULL; ev = next) {
		next = ev->next;
		/* New sessions' directories are made together; before any other
		 * event, which could end or delete one of them. */
		if (n_made > 0 &&
		    (ev->kind != ARCHIVE_EV_ONLINE || n_made == 4 * ARCHIVE_CREATE_MAX)) {
			archive_sess_create_all(ar, made, n_made);
			n_made = 0;
		}
		switch (ev->kind) {
		case ARCHIVE_EV_ONLINE:
			made[n_made] = archive_sess_online(ar, ev);
			n_made += made[n_made] != NULL;
			break;
		case ARCHIVE_EV_OFFLINE:
			archive_sess_offline(ar, ev);
			break;
		case ARCHIVE_EV_DELETE:
			archive_delete_begin(ar, ev);
			archive_reply(ar, ev);
			continue; /* the stage thread records it, or answers and frees it */
		case ARCHIVE_EV_COMMIT:
		case ARCHIVE_EV_ABORT:
			archive_delete_end(ar, ev);
			archive_reply(ar, ev);
			continue; /* the stage thread answers and frees it */
		case ARCHIVE_EV_CONFIG:
			archive_retention(ar, false);
			break;
		case ARCHIVE_EV_MARK:
			archive_mark_add(ar, ev);
			ev->kind = ARCHIVE_EV_MARKED;
			archive_reply(ar, ev);
			continue; /* the stage thread answers and frees it */
		case ARCHIVE_EV_DELETED:
		case ARCHIVE_EV_MARKED:
		case ARCHIVE_EV_RECORD:
			break;
		}
		free(ev);
	}
	if (n_made > 0)
		archive_sess_create_all(ar, made, n_made);
	archive_sess_count_live(ar);
}

static void
writer_wait_stalled(struct archive *ar)
{
	int64_t left = ar->retry_mono_ms - proc_mono_ms();
	struct timespec ts;

	if (left <= 0)
		return;
	if (left > WRITER_WAIT_MS)
		left = WRITER_WAIT_MS;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += left / 1000;
	ts.tv_nsec += (left % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&ar->mu);
	if (ar->evq == NULL && !atomic_load(&ar->stop))
		pthread_cond_timedwait(&ar->cond, &ar->mu, &ts);
	pthread_mutex_unlock(&ar->mu);
}

static void *
writer_main(void *arg)
{
	struct archive *ar = arg;
	int64_t next_check, next_ret, next_floor, next_inits = 0;
	int r;

	r = archive_catalog_load(ar);
	if (r < 0)
		log_error(r, "reading %s failed; only new sessions are known", ar->data_dir);
	archive_sess_check_table(ar, true);
	archive_catalog_step(ar, 0);
	archive_floor_check(ar);
	archive_retention(ar, false);
	/* The catch-up: whatever the ring still holds and the index does not. */
	ar->next = ring_tail(ar->ring);
	atomic_store(&ar->next_shared, ar->next);
	log_info("reading the ring from segment %" PRIu64 " (head %" PRIu64 ")", ar->next,
		 ring_head(ar->ring));
	next_check = proc_mono_ms() + WRITER_CHECK_MS;
	next_ret = proc_mono_ms() + WRITER_RETENTION_MS;
	next_floor = proc_mono_ms() + ARCHIVE_FLOOR_MS;
	while (!atomic_load(&ar->stop)) {
		int64_t now;

		writer_events(ar);
		now = proc_mono_ms();
		if (now >= next_check) {
			archive_sess_check_table(ar, false);
			next_check = now + WRITER_CHECK_MS;
		}
		if (now >= next_ret) {
			archive_retention(ar, ar->stalled_enospc);
			next_ret = now + WRITER_RETENTION_MS;
		}
		/* Before the disk fills: the floor is kept while there is room. */
		if (now >= next_floor) {
			archive_floor_check(ar);
			next_floor = now + ARCHIVE_FLOOR_MS;
		}
		if (now >= next_inits && !ar->stalled) {
			archive_sess_poll_inits(ar);
			next_inits = now + WRITER_INITS_MS;
		}
		writer_shadow(ar);
		if (ar->stalled)
			writer_overrun(ar);
		if (ar->stalled) {
			if (now >= ar->retry_mono_ms)
				writer_commit(ar);
			else
				writer_wait_stalled(ar);
			continue;
		}
		if (ar->next < ring_head(ar->ring)) {
			writer_collect(ar);
			writer_create_batch(ar);
			writer_commit(ar);
			continue;
		}
		/* Idle: the sessions left unrepaired at start, a few at a time. */
		if (ar->n_unrepaired > 0) {
			archive_catalog_step(ar, 8);
			continue;
		}
		/* A new init does not move the head: with live sessions look sooner. */
		ring_wait(ar->ring, ar->next,
			  ar->fig.sessions_live > 0 ? WRITER_INITS_MS : WRITER_WAIT_MS);
	}
	return NULL;
}

int
archive_writer_start(struct archive *ar)
{
	int r;

	ring_get_stats(ar->ring, &ar->rs);
	ar->n_slots = ring_sentinel_slots(ar->ring);
	ar->by_slot = calloc(ar->n_slots, sizeof(*ar->by_slot));
	ar->arena_size = ARCHIVE_BATCH_BYTES + ar->rs.max_segment_bytes;
	ar->arena = malloc(ar->arena_size);
	ar->init_size = ar->rs.max_init_bytes;
	ar->init_buf = malloc(ar->init_size);
	ar->sync = archive_sync_new(WRITER_SYNC_THREADS);
	if (ar->by_slot == NULL || ar->arena == NULL || ar->init_buf == NULL || ar->sync == NULL)
		return -ENOMEM;
	ar->shadow = malloc(ar->rs.n_slots * sizeof(*ar->shadow));
	if (ar->shadow == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < ar->rs.n_slots; i++)
		ar->shadow[i].index = UINT64_MAX;
	r = -pthread_create(&ar->thread, NULL, writer_main, ar);
	if (r < 0)
		return r;
	ar->thread_started = true;
	return 0;
}

void
archive_writer_stop(struct archive *ar)
{
	if (ar->thread_started) {
		atomic_store(&ar->stop, true);
		pthread_mutex_lock(&ar->mu);
		pthread_cond_broadcast(&ar->cond);
		pthread_mutex_unlock(&ar->mu);
		ring_wake_all(ar->ring);
		pthread_join(ar->thread, NULL);
		ar->thread_started = false;
	}
	archive_sync_free(ar->sync);
	ar->sync = NULL;
	archive_sess_free_all(ar);
	free(ar->by_slot);
	free(ar->arena);
	free(ar->init_buf);
	free(ar->shadow);
	ar->shadow = NULL;
	ar->by_slot = NULL;
	ar->arena = NULL;
	ar->init_buf = NULL;
}
