/* floor: archive.min_free, the free space archive keeps on data_dir's volume
 * so that the disk never fills while sessions are recorded. Every
 * ARCHIVE_FLOOR_MS the writer thread measures the ingest rate (the ring's
 * bytes written, over the last minute) and the volume (statvfs), works out
 * the floor, and below it runs a retention pass, which deletes the oldest
 * ended sessions until the floor is reached again (retention.c; never a live
 * session, never more than half of the archive in a pass). The floor and the
 * rate go to the heartbeat's figures; the stage thread tells from them
 * whether the disk is below the floor now. Writer thread only. */
#include <errno.h>
#include <inttypes.h>
#include <sys/statvfs.h>

#include "archive.h"
#include "log.h"
#include "proc.h"

#define FLOOR_AUTO_HUNDREDTHS 500  /* auto: at least 5 % of the volume, */
#define FLOOR_AUTO_SECONDS    7200 /* and two hours of recording at the ingest rate */
#define FLOOR_STUCK_LOG_MS    60000

/* The ring's writes per second over the samples kept (up to a minute). */
static double
floor_rate(struct archive_floor *fl, uint64_t bytes, int64_t now_ms)
{
	size_t last = (fl->next + ARCHIVE_RATE_SAMPLES - 1) % ARCHIVE_RATE_SAMPLES, oldest;
	int64_t span;

	/* A ring made anew (vigild restarted) counts from 0 again. */
	if (fl->n > 0 && bytes < fl->bytes[last])
		fl->n = 0;
	fl->bytes[fl->next] = bytes;
	fl->ms[fl->next] = now_ms;
	fl->next = (fl->next + 1) % ARCHIVE_RATE_SAMPLES;
	if (fl->n < ARCHIVE_RATE_SAMPLES)
		fl->n++;
	oldest = (fl->next + ARCHIVE_RATE_SAMPLES - fl->n) % ARCHIVE_RATE_SAMPLES;
	span = now_ms - fl->ms[oldest];
	if (fl->n < 2 || span <= 0)
		return 0;
	return (double)(bytes - fl->bytes[oldest]) * 1000.0 / (double)span;
}

/* hundredths of a percent of volume, without overflow or a float */
static uint64_t
floor_share(uint64_t volume, uint64_t hundredths)
{
	return volume / 10000 * hundredths + volume % 10000 * hundredths / 10000;
}

uint64_t
archive_floor_bytes(const struct cfg_floor *f, uint64_t volume, double rate)
{
	uint64_t share, recording;

	switch (f->kind) {
	case CFG_FLOOR_BYTES:
		return f->bytes;
	case CFG_FLOOR_PERCENT:
		return floor_share(volume, f->hundredths);
	default:
		share = floor_share(volume, FLOOR_AUTO_HUNDREDTHS);
		recording = rate > 0 ? (uint64_t)(rate * FLOOR_AUTO_SECONDS) : 0;
		return share > recording ? share : recording;
	}
}

/* The volume's size and its free bytes (for unprivileged users, as archive
 * writes); -errno. */
static int
floor_statvfs(const struct archive *ar, uint64_t *ret_total, uint64_t *ret_free)
{
	struct statvfs sv;

	if (fstatvfs(ar->data_fd, &sv) < 0)
		return -errno;
	*ret_total = (uint64_t)sv.f_blocks * sv.f_frsize;
	*ret_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}

uint64_t
archive_floor_need(struct archive *ar)
{
	uint64_t total = 0, free_bytes = 0;

	if (ar->floor.floor_bytes == 0 || floor_statvfs(ar, &total, &free_bytes) < 0)
		return 0;
	return free_bytes < ar->floor.floor_bytes ? ar->floor.floor_bytes - free_bytes : 0;
}

void
archive_floor_check(struct archive *ar)
{
	struct archive_floor *fl = &ar->floor;
	struct ring_stats rs;
	struct cfg_floor conf;
	uint64_t total = 0, free_bytes = 0;
	int64_t now = proc_mono_ms();
	int r;

	ring_get_stats(ar->ring, &rs);
	fl->rate = floor_rate(fl, rs.bytes_written, now);
	pthread_mutex_lock(&ar->mu);
	conf = ar->min_free;
	pthread_mutex_unlock(&ar->mu);
	r = floor_statvfs(ar, &total, &free_bytes);
	if (r < 0) {
		log_warn(r, "statvfs(%s) failed: archive.min_free not checked", ar->data_dir);
		return;
	}
	fl->floor_bytes = archive_floor_bytes(&conf, total, fl->rate);
	pthread_mutex_lock(&ar->mu);
	ar->fig.min_free_bytes = fl->floor_bytes;
	ar->fig.ingest_rate = fl->rate;
	pthread_mutex_unlock(&ar->mu);
	if (free_bytes >= fl->floor_bytes) {
		if (fl->below)
			log_info("%s is above archive.min_free again: %" PRIu64 " bytes free, "
				 "the floor is %" PRIu64,
				 ar->data_dir, free_bytes, fl->floor_bytes);
		fl->below = false;
		return;
	}
	if (!fl->below)
		log_warn(0,
			 "%s is below archive.min_free: %" PRIu64
			 " bytes free, the floor is %" PRIu64
			 " (ingest %.0f bytes/s): the oldest ended sessions go",
			 ar->data_dir, free_bytes, fl->floor_bytes, fl->rate);
	fl->below = true;
	archive_retention(ar, ar->stalled_enospc);
	if (floor_statvfs(ar, &total, &free_bytes) == 0 && free_bytes < fl->floor_bytes &&
	    now - fl->stuck_log_ms >= FLOOR_STUCK_LOG_MS) {
		/* What is left is live, or more than a pass may delete. */
		fl->stuck_log_ms = now;
		log_error(0,
			  "%s stays below archive.min_free: %" PRIu64 " bytes free, the floor is "
			  "%" PRIu64 "; nothing more may be deleted now (live sessions are kept, "
			  "and a pass deletes at most half of the archive)",
			  ar->data_dir, free_bytes, fl->floor_bytes);
	}
}
