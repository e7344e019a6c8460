/* loop: vigil-archive's stage thread. It owns the bus: sentinel.online,
 * sentinel.offline, session.delete and mark.add (mark_bus.c) become events for
 * the writer thread, the writer's answers go back as session.deleted and
 * mark.added, and heartbeats carry the writer's figures. It never touches the
 * disk beyond statvfs. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "archive.h"
#include "audit.h"
#include "files.h"
#include "id.h"
#include "log.h"
#include "mp.h"
#include "proc.h"

#define LOOP_EVQ_MAX 4096 /* events waiting for the writer; more are dropped */

void
archive_push(struct archive *ar, struct archive_ev *ev)
{
	bool dropped = false;

	pthread_mutex_lock(&ar->mu);
	/* A delete's second half is never dropped: its record may be durable. */
	if (ar->evq_len >= LOOP_EVQ_MAX && ev->kind != ARCHIVE_EV_COMMIT &&
	    ev->kind != ARCHIVE_EV_ABORT) {
		dropped = true;
	} else {
		ev->next = NULL;
		*ar->evq_tail = ev;
		ar->evq_tail = &ev->next;
		ar->evq_len++;
		pthread_cond_broadcast(&ar->cond);
	}
	pthread_mutex_unlock(&ar->mu);
	if (dropped) {
		log_warn(0, "the writer is %d events behind: event dropped", LOOP_EVQ_MAX);
		free(ev);
		return;
	}
	/* The writer may sleep in ring_wait: wake it (the other readers look again). */
	ring_wake_all(ar->ring);
}

void
archive_reply(struct archive *ar, struct archive_ev *ev)
{
	uint64_t one = 1;

	pthread_mutex_lock(&ar->mu);
	ev->next = NULL;
	*ar->rq_tail = ev;
	ar->rq_tail = &ev->next;
	pthread_mutex_unlock(&ar->mu);
	if (write(ar->reply_efd, &one, sizeof(one)) < 0) {
		/* The counter is full: the loop is being woken anyway. */
	}
}

static void
loop_send_deleted(struct archive *ar, const struct archive_ev *ev)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, ev->ids_ok ? 4 : 3);
	mp_pack_kv_int(&pk, "ref", ev->ref);
	mp_pack_kv_int(&pk, "status", ev->status);
	mp_pack_kv_str(&pk, "error", ev->error);
	if (ev->ids_ok) {
		char id[ID_STR_LEN];

		/* httpd forgets the session in memory too before it answers 204. */
		id_format(ev->session, id);
		mp_pack_kv_str(&pk, "sessionId", id);
	}
	log_info("session.delete ref %lld: %d %s", (long long)ev->ref, ev->status, ev->error);
	r = stage_send(ar->st, "session.deleted", "httpd", sb.data, sb.size);
	if (r < 0 && r != -ENOTCONN)
		log_warn(r, "session.deleted (ref %lld) not sent", (long long)ev->ref);
	msgpack_sbuffer_destroy(&sb);
}

static void
loop_replies(struct archive *ar)
{
	struct archive_ev *ev, *next;
	uint64_t n;

	if (read(ar->reply_efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn(-errno, "read(eventfd) failed");
	pthread_mutex_lock(&ar->mu);
	ev = ar->rq;
	ar->rq = NULL;
	ar->rq_tail = &ar->rq;
	pthread_mutex_unlock(&ar->mu);
	for (; ev != NULL; ev = next) {
		next = ev->next;
		if (ev->kind == ARCHIVE_EV_MARKED) {
			archive_mark_done(ar, ev); /* it answers and frees */
			continue;
		}
		if (ev->kind == ARCHIVE_EV_RECORD) {
			archive_delete_record(ar, ev); /* back to the writer once written */
			continue;
		}
		loop_send_deleted(ar, ev);
		free(ev);
	}
}

static bool
loop_ids(const msgpack_object *body, struct archive_ev *ev)
{
	char buf[ID_STR_LEN];

	return mp_get_strbuf(body, "sentinelId", buf, sizeof(buf)) == 0 &&
	       id_parse(buf, ev->sentinel) == 0 &&
	       mp_get_strbuf(body, "sessionId", buf, sizeof(buf)) == 0 &&
	       id_parse(buf, ev->session) == 0;
}

/* audit.append from any stage or vigild (common/audit.h): to the writer. */
static void
loop_audit_append(struct archive *ar, const struct bus_msg *msg)
{
	char src[48];
	const char *text;
	size_t len;
	int64_t n, base = 0;

	if (ar->alog == NULL)
		return; /* no ack: the sender keeps it, and says so in its figures */
	if (mp_get_strbuf(msg->body, "src", src, sizeof(src)) < 0 ||
	    mp_get_int(msg->body, "n", &n) < 0 || n < 1 ||
	    mp_get_str(msg->body, "record", &text, &len) < 0) {
		log_warn(0, "a malformed audit.append from %s ignored", msg->from);
		return;
	}
	mp_get_int(msg->body, "base", &base);
	alog_push(ar->alog, msg->from, src, (uint64_t)n, base > 0 ? (uint64_t)base : 0, text, len);
}

static void
loop_send_ack(void *ctx, const char *to, const char *src, uint64_t n)
{
	struct archive *ar = ctx;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "src", src);
	mp_pack_kv_int(&pk, "n", (int64_t)n);
	r = stage_send(ar->st, "audit.ack", to, sb.data, sb.size);
	if (r < 0 && r != -ENOTCONN)
		log_debug("audit.ack to %s not sent (%d): it asks again", to, r);
	msgpack_sbuffer_destroy(&sb);
}

/* Bus messages (stage thread): sentinel.online / sentinel.offline from ingest
 * (ingest/registry.c packs them), session.delete from httpd, mark.add from
 * relay and httpd. */
static void
loop_msg(void *ctx, const struct bus_msg *msg)
{
	struct archive *ar = ctx;
	struct archive_ev *ev;
	const char *name;
	size_t len;
	int64_t v;

	if (strcmp(msg->type, "audit.append") == 0) {
		loop_audit_append(ar, msg);
		return;
	}
	if (strcmp(msg->type, "mark.add") == 0) {
		archive_mark_msg(ar, msg);
		return;
	}
	ev = calloc(1, sizeof(*ev));
	if (ev == NULL)
		return;
	ev->ids_ok = loop_ids(msg->body, ev);
	if (strcmp(msg->type, "sentinel.online") == 0) {
		ev->kind = ARCHIVE_EV_ONLINE;
		if (mp_get_str(msg->body, "name", &name, &len) == 0)
			mp_copy_utf8(ev->name, sizeof(ev->name), name, len);
		ev->time_ms = mp_get_int(msg->body, "startedAt", &v) == 0 ? v : proc_now_ms();
		ev->slot = mp_get_int(msg->body, "slot", &v) == 0 && v >= 0 && v < UINT32_MAX
				   ? (uint32_t)v
				   : UINT32_MAX;
	} else if (strcmp(msg->type, "sentinel.offline") == 0) {
		ev->kind = ARCHIVE_EV_OFFLINE;
		ev->time_ms = mp_get_int(msg->body, "endedAt", &v) == 0 ? v : proc_now_ms();
	} else if (strcmp(msg->type, "session.delete") == 0) {
		ev->kind = ARCHIVE_EV_DELETE;
		mp_get_strbuf(msg->body, "actor", ev->actor, sizeof(ev->actor));
		mp_get_strbuf(msg->body, "role", ev->role, sizeof(ev->role));
		mp_get_strbuf(msg->body, "remote", ev->remote, sizeof(ev->remote));
		if (mp_get_int(msg->body, "ref", &ev->ref) < 0) {
			log_warn(0, "session.delete from %s without an integer ref ignored",
				 msg->from);
			free(ev);
			return;
		}
		/* A bad id is answered (404) rather than dropped: httpd waits for it. */
		if (!ev->ids_ok)
			log_warn(0,
				 "session.delete (ref %lld) with a sentinelId or sessionId that "
				 "is not a UUID",
				 (long long)ev->ref);
		archive_push(ar, ev);
		return;
	} else {
		free(ev);
		return;
	}
	if (!ev->ids_ok) {
		log_warn(0, "%s without valid sentinelId and sessionId ignored", msg->type);
		free(ev);
		return;
	}
	archive_push(ar, ev);
}

/* Whether the writer can store the next segment, and if not why (""
 * otherwise): a stage that cannot do its job is not healthy, whatever its
 * heartbeat says, so httpd's /health turns on this. */
static bool
loop_writable(struct archive *ar, int sv_err, const struct statvfs *sv, char *why, size_t size)
{
	uint64_t free_bytes = sv_err == 0 ? (uint64_t)sv->f_bavail * sv->f_frsize : 0;
	int err = atomic_load(&ar->stall_err);

	why[0] = '\0';
	if (atomic_load(&ar->stalled_shared))
		snprintf(why, size, "writes to %s fail (%s): segments wait in memory", ar->data_dir,
			 strerror(err < 0 ? -err : EIO));
	else if (sv_err < 0)
		snprintf(why, size, "statvfs(%s) failed: %s", ar->data_dir, strerror(-sv_err));
	else if (sv->f_flag & ST_RDONLY)
		snprintf(why, size, "%s is on a read-only file system", ar->data_dir);
	else if (free_bytes < ar->rs.max_segment_bytes)
		snprintf(why, size,
			 "%s has %" PRIu64 " bytes free, less than a segment may take (%" PRIu32
			 "): the disk is full",
			 ar->data_dir, free_bytes, ar->rs.max_segment_bytes);
	return why[0] == '\0';
}

/* The writer's figures (stage thread, in each heartbeat). */
static void
loop_stats(void *ctx, msgpack_packer *pk)
{
	struct archive *ar = ctx;
	struct alog_figures af = { 0 };
	struct archive_figures f;
	struct statvfs sv;
	uint64_t head = ring_head(ar->ring), next = atomic_load(&ar->next_shared);
	int64_t free_bytes = -1, total_bytes = -1;
	char why[256];
	bool writable;
	int sv_err = 0;

	pthread_mutex_lock(&ar->mu);
	f = ar->fig;
	ar->fig.lat_sum_ms = ar->fig.lat_max_ms = 0;
	ar->fig.lat_n = 0;
	pthread_mutex_unlock(&ar->mu);
	if (fstatvfs(ar->data_fd, &sv) == 0) {
		free_bytes = (int64_t)((uint64_t)sv.f_bavail * sv.f_frsize);
		total_bytes = (int64_t)((uint64_t)sv.f_blocks * sv.f_frsize);
	} else {
		sv_err = -errno;
	}
	writable = loop_writable(ar, sv_err, &sv, why, sizeof(why));
	if (ar->alog != NULL)
		alog_figures(ar->alog, &af);
	msgpack_pack_map(pk, 25);
	mp_pack_kv_int(pk, "segmentsWritten", (int64_t)f.segments_written);
	mp_pack_kv_int(pk, "bytesWritten", (int64_t)f.bytes_written);
	mp_pack_kv_double(pk, "writeLatencyAvgMs", f.lat_n ? f.lat_sum_ms / (double)f.lat_n : 0);
	mp_pack_kv_double(pk, "writeLatencyMaxMs", f.lat_max_ms);
	mp_pack_kv_int(pk, "backlog", head > next ? (int64_t)(head - next) : 0);
	mp_pack_kv_int(pk, "diskFreeBytes", free_bytes);
	mp_pack_kv_int(pk, "sessionsLive", (int64_t)f.sessions_live);
	mp_pack_kv_int(pk, "retentionDeleted", (int64_t)f.retention_deleted);
	mp_pack_kv_int(pk, "enospc", (int64_t)f.enospc);
	mp_pack_kv_int(pk, "lost", (int64_t)f.lost);
	mp_pack_kv_int(pk, "fsyncs", (int64_t)f.fsyncs);
	mp_pack_kv_double(pk, "fsyncMs", f.fsync_ms);
	mp_pack_kv_bool(pk, "stalled", ar->stalled_shared);
	mp_pack_kv_bool(pk, "writable", writable);
	mp_pack_kv_str(pk, "writeError", why);
	mp_pack_kv_int(pk, "diskTotalBytes", total_bytes);
	mp_pack_kv_int(pk, "minFreeBytes", (int64_t)f.min_free_bytes);
	/* Now, not at the writer's last check: the floor is the writer's, the free space fresh. */
	mp_pack_kv_bool(pk, "belowMinFree",
			free_bytes >= 0 && (uint64_t)free_bytes < f.min_free_bytes);
	mp_pack_kv_int(pk, "minFreeDeleted", (int64_t)f.min_free_deleted);
	mp_pack_kv_double(pk, "ingestBytesPerS", f.ingest_rate);
	/* The audit log stops loudly: auditOk false turns health to degraded. */
	mp_pack_kv_bool(pk, "auditOk", ar->alog != NULL && af.ok);
	mp_pack_kv_int(pk, "auditSeq", (int64_t)af.seq);
	mp_pack_kv_int(pk, "auditWritten", (int64_t)af.written);
	mp_pack_kv_int(pk, "auditFailures", (int64_t)af.failures);
	mp_pack_kv_double(pk, "auditFsyncMs", af.fsync_ms);
}

/* The audit log opens or the stage runs without it, loudly: the video keeps
 * being archived, and every sender keeps its records until it opens. */
static int
loop_audit_open(struct archive *ar, const struct cfg *cfg)
{
	char dir[4096];
	int r;

	if (snprintf(dir, sizeof(dir), "%s/audit", cfg->data_dir) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	r = alog_open(dir, cfg->audit_retention_days, &ar->alog);
	if (r < 0) {
		log_error(r, "audit: %s cannot be written: recording stopped", dir);
		return r;
	}
	/* Whatever the senders kept while no writer ran comes now. */
	r = stage_send(ar->st, "audit.ready", "*", "\x80", 1);
	if (r < 0 && r != -ENOTCONN)
		log_warn(r, "audit.ready not sent");
	return 0;
}

/* mkdir -p: the data directory may not exist on a fresh install. */
struct archive *
archive_new(struct stage *st)
{
	const struct cfg *cfg = stage_cfg(st);
	struct archive *ar;
	char name[64];
	int r;

	ar = calloc(1, sizeof(*ar));
	if (ar == NULL)
		return NULL;
	ar->st = st;
	ar->data_fd = -1;
	ar->reply_efd = -1;
	pthread_mutex_init(&ar->mu, NULL);
	pthread_cond_init(&ar->cond, NULL);
	ar->evq_tail = &ar->evq;
	ar->rq_tail = &ar->rq;
	ar->retention_days = cfg->retention_days;
	ar->max_bytes = cfg->archive_max_bytes;
	ar->min_free = cfg->archive_min_free;
	ar->data_dir = strdup(cfg->data_dir);
	if (ar->data_dir == NULL)
		goto fail;
	r = files_mkdirs(ar->data_dir, 0750);
	if (r < 0) {
		log_error(r, "mkdir(%s) failed", ar->data_dir);
		goto fail;
	}
	ar->data_fd = open(ar->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ar->data_fd < 0) {
		log_error(-errno, "open(%s) failed", ar->data_dir);
		goto fail;
	}
	ar->reply_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ar->reply_efd < 0) {
		log_error(-errno, "eventfd failed");
		goto fail;
	}
	snprintf(name, sizeof(name), "/vigil-%s", cfg->instance);
	r = ring_open(name, false, &ar->ring);
	if (r < 0) {
		log_error(r, "ring_open(%s) as reader failed", name);
		goto fail;
	}
	loop_audit_open(ar, cfg); /* its failure is logged and in the figures */
	audit_src_new("archive", ar->del_src, sizeof(ar->del_src));
	archive_delete_recover(ar); /* before any record comes in */
	stage_on_message(st, loop_msg, ar);
	stage_on_stats(st, loop_stats, ar);
	r = archive_writer_start(ar);
	if (r < 0) {
		log_error(r, "the writer thread did not start");
		goto fail;
	}
	log_info("archiving to %s (retention %lld days, max %llu bytes)", ar->data_dir,
		 (long long)ar->retention_days, (unsigned long long)ar->max_bytes);
	return ar;
fail:
	archive_free(ar);
	return NULL;
}

static void
loop_reload(struct archive *ar)
{
	const struct cfg *cfg;
	struct archive_ev *ev;

	if (stage_reload(ar->st) < 0)
		return;
	cfg = stage_cfg(ar->st);
	if (strcmp(cfg->data_dir, ar->data_dir) != 0)
		log_warn(0, "data_dir changed to %s: it applies after a restart of archive",
			 cfg->data_dir);
	pthread_mutex_lock(&ar->mu);
	ar->retention_days = cfg->retention_days;
	ar->max_bytes = cfg->archive_max_bytes;
	ar->min_free = cfg->archive_min_free;
	pthread_mutex_unlock(&ar->mu);
	if (ar->alog != NULL)
		alog_set_retention(ar->alog, cfg->audit_retention_days);
	ev = calloc(1, sizeof(*ev));
	if (ev != NULL) {
		ev->kind = ARCHIVE_EV_CONFIG;
		archive_push(ar, ev);
	}
}

int
archive_run(struct archive *ar)
{
	struct pollfd pfd[4];

	stage_tick(ar->st);
	while (!stage_stopping(ar->st)) {
		int64_t t0;

		pfd[0] = (struct pollfd){ .fd = stage_signal_fd(ar->st), .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = stage_bus_fd(ar->st), .events = POLLIN };
		pfd[2] = (struct pollfd){ .fd = ar->reply_efd, .events = POLLIN };
		pfd[3] = (struct pollfd){ .fd = ar->alog != NULL ? alog_fd(ar->alog) : -1,
					  .events = POLLIN };
		if (poll(pfd, 4, 250) < 0 && errno != EINTR)
			return -errno;
		t0 = proc_mono_us();
		stage_service(ar->st);
		if (stage_take_reload(ar->st))
			loop_reload(ar);
		if (pfd[2].revents & POLLIN)
			loop_replies(ar);
		if (pfd[3].revents & POLLIN)
			alog_take_acks(ar->alog, loop_send_ack, archive_delete_recorded, ar);
		stage_tick(ar->st);
		/* The loop thread's rounds; the copying is the writer thread's. */
		stage_loop_round(ar->st, (double)(proc_mono_us() - t0) / 1e6);
	}
	return 0;
}

void
archive_free(struct archive *ar)
{
	struct archive_ev *ev, *next;

	if (ar == NULL)
		return;
	archive_writer_stop(ar);
	/* Answers the writer gave while the loop was stopping still go out. */
	if (ar->reply_efd >= 0)
		loop_replies(ar);
	/* What the other stages sent last is written and acknowledged. */
	if (ar->alog != NULL) {
		alog_stop(ar->alog);
		alog_take_acks(ar->alog, loop_send_ack, archive_delete_recorded, ar);
		alog_close(ar->alog);
		ar->alog = NULL;
	}
	for (ev = ar->evq; ev != NULL; ev = next) {
		next = ev->next;
		free(ev);
	}
	if (ar->ring != NULL)
		ring_close(ar->ring);
	if (ar->reply_efd >= 0)
		close(ar->reply_efd);
	if (ar->data_fd >= 0)
		close(ar->data_fd);
	pthread_cond_destroy(&ar->cond);
	pthread_mutex_destroy(&ar->mu);
	free(ar->data_dir);
	free(ar);
}
