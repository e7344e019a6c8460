/* delete: a hard delete on request (session.delete, docs/archive.md
 * "Deletion"), made so that it happened if and only if its audit record is in
 * the log (PROTOCOL.md section 9: recorded before it is acknowledged):
 *
 *   1. writer thread: the session is there and ended; the intent
 *      data_dir/.delete-intent-{sessionId} names it, httpd's ref and the id of
 *      the record about to be made (written atomically and fsynced);
 *   2. stage thread: the record goes into the audit writer's next batch
 *      (alog_put: never sent again, its outcome is that batch's);
 *   3. writer thread: durable: the tombstone, the rename away, the removal,
 *      then the intent goes: 204. Not written (the disk is full...): only the
 *      intent goes: 503, nothing was touched.
 *
 * A crash between 1 and 3 leaves the intent. At the next start the record's
 * id is looked up in the log (the writer's start-up scan read it): there, the
 * delete is finished before anything else (step 3) and httpd is told; not
 * there, it never happened: the intent goes and the session stays.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "archive.h"
#include "audit.h"
#include "log.h"

#define DELETE_INTENT_NAME (sizeof(LAYOUT_INTENT) + ID_STR_LEN)

static void
delete_intent_name(const uint8_t session[16], char name[DELETE_INTENT_NAME])
{
	char id[ID_STR_LEN];

	id_format(session, id);
	snprintf(name, DELETE_INTENT_NAME, LAYOUT_INTENT "%s", id);
}

static void
delete_status(struct archive_ev *ev, int status, const char *why, const char *err)
{
	ev->kind = ARCHIVE_EV_DELETED;
	ev->status = status;
	snprintf(ev->error, sizeof(ev->error), "%s%s", why, err);
}

/* The record (docs/audit.md: the keys in their order, id last) in ev->record,
 * and the intent's text (malloc'ed) naming it. NULL: out of memory, or a
 * record over the buffer. */
static char *
delete_texts(struct archive *ar, struct archive_ev *ev)
{
	char sentinel[ID_STR_LEN], session[ID_STR_LEN], id[AUDIT_SRC_MAX + 24];
	json_t *rec, *intent = NULL;
	char *text = NULL, *out = NULL;

	id_format(ev->sentinel, sentinel);
	id_format(ev->session, session);
	snprintf(id, sizeof(id), "%s.%" PRIu64, ar->del_src, ++ar->del_n);
	rec = audit_record_as("delete", ev->actor[0] ? ev->actor : NULL,
			      ev->role[0] ? ev->role : NULL, ev->remote[0] ? ev->remote : NULL);
	if (rec == NULL || json_object_set_new(rec, "sentinelId", json_string(sentinel)) < 0 ||
	    json_object_set_new(rec, "sessionId", json_string(session)) < 0 ||
	    json_object_set_new(rec, "id", json_string(id)) < 0)
		goto out;
	text = json_dumps(rec, JSON_COMPACT);
	if (text == NULL || strlen(text) >= sizeof(ev->record))
		goto out;
	memcpy(ev->record, text, strlen(text) + 1);
	intent = json_pack("{s:s, s:s, s:I, s:s}", "sentinelId", sentinel, "sessionId", session,
			   "ref", (json_int_t)ev->ref, "id", id);
	if (intent != NULL)
		out = json_dumps(intent, JSON_COMPACT);
out:
	free(text);
	json_decref(rec);
	json_decref(intent);
	return out;
}

void
archive_delete_begin(struct archive *ar, struct archive_ev *ev)
{
	struct archive_sess *s =
		ev->ids_ok ? archive_sess_find(ar, ev->sentinel, ev->session) : NULL;
	char name[DELETE_INTENT_NAME], *intent;
	int r;

	if (s == NULL) {
		delete_status(ev, 404, "no such session", "");
		return;
	}
	if (s->live) {
		delete_status(ev, 409, "the session is live", "");
		return;
	}
	if (s->deleting) {
		delete_status(ev, 409, "the session is being deleted", "");
		return;
	}
	if (ar->alog == NULL) {
		delete_status(ev, 503, "the audit log is not being written: nothing was deleted",
			      "");
		return;
	}
	intent = delete_texts(ar, ev);
	if (intent == NULL) {
		delete_status(ev, 500, "out of memory", "");
		return;
	}
	delete_intent_name(ev->session, name);
	r = archive_write_atomic(ar->data_fd, name, intent, strlen(intent), true);
	free(intent);
	if (r < 0) {
		log_error(r, "%s/%s not written: the deletion is refused", ar->data_dir, name);
		delete_status(ev, 500, "writing the intent failed: ", strerror(-r));
		return;
	}
	s->deleting = true;
	ev->kind = ARCHIVE_EV_RECORD;
}

/* The intent has done its work. After a commit it need not be durable: an
 * intent a crash brings back finds its record and commits again, to the same
 * end. After an abort it must: the start-up check knows the newest id of
 * each sender, and a later delete's record would vouch for this one. */
static void
delete_intent_drop(struct archive *ar, const uint8_t session[16], bool sync)
{
	char name[DELETE_INTENT_NAME];
	int r;

	delete_intent_name(session, name);
	if (unlinkat(ar->data_fd, name, 0) < 0 && errno != ENOENT) {
		log_warn(-errno, "%s/%s not removed", ar->data_dir, name);
		return;
	}
	if (sync && (r = archive_fsync_dir(ar->data_fd)) < 0)
		log_warn(r, "fsync of %s after removing %s failed", ar->data_dir, name);
}

static void
delete_commit(struct archive *ar, struct archive_ev *ev)
{
	struct archive_sess *s = archive_sess_find(ar, ev->sentinel, ev->session);
	char what[2 * ID_STR_LEN + 1], sentinel[ID_STR_LEN], session[ID_STR_LEN];
	uint64_t bytes = s != NULL ? s->bytes : 0;
	int r;

	id_format(ev->sentinel, sentinel);
	id_format(ev->session, session);
	snprintf(what, sizeof(what), "%s/%s", sentinel, session);
	if (!archive_tombstoned(ar, ev->session)) {
		r = archive_tombs_add(ar, ev->session);
		if (r < 0)
			log_warn(r,
				 "%s not recorded in %s/" LAYOUT_DELETED ": a restart while the "
				 "ring still holds its segments could store them again",
				 what, ar->data_dir);
	}
	/* Gone already (retention took it meanwhile, or a crash interrupted its
	 * removal, which the start-up repair finished): done all the same. */
	if (s != NULL) {
		r = archive_sess_remove(ar, s);
		if (r < 0) {
			/* Recorded: the intent stays, and the next start finishes it. */
			log_error(r, "deletion of session %s failed", what);
			delete_status(ev, 500,
				      "renameat failed (archive finishes it at its next start): ",
				      strerror(-r));
			return;
		}
	}
	delete_intent_drop(ar, ev->session, false);
	log_info("session %s deleted on request (%" PRIu64 " bytes)", what, bytes);
	delete_status(ev, 204, "", "");
}

void
archive_delete_end(struct archive *ar, struct archive_ev *ev)
{
	struct archive_sess *s;

	if (ev->kind == ARCHIVE_EV_COMMIT) {
		delete_commit(ar, ev);
		return;
	}
	s = archive_sess_find(ar, ev->sentinel, ev->session);
	if (s != NULL)
		s->deleting = false;
	delete_intent_drop(ar, ev->session, true);
	delete_status(ev, 503, "nothing was deleted: its audit record cannot be written: ",
		      strerror(-ev->status));
}

void
archive_delete_record(struct archive *ar, struct archive_ev *ev)
{
	int r = -ENOTCONN;

	if (ar->alog != NULL)
		r = alog_put(ar->alog, ev->record, strlen(ev->record), ev);
	if (r < 0)
		archive_delete_recorded(ar, ev, r);
}

void
archive_delete_recorded(void *ctx, void *own, int status)
{
	struct archive *ar = ctx;
	struct archive_ev *ev = own;

	if (status < 0)
		log_error(status, "audit: the record of a hard delete could not be written: "
				  "the session is not deleted");
	ev->kind = status == 0 ? ARCHIVE_EV_COMMIT : ARCHIVE_EV_ABORT;
	ev->status = status;
	archive_push(ar, ev);
}

/* One intent a crash left: finished (its record is in the log) or undone. */
static void
delete_recover_one(struct archive *ar, const char *name)
{
	const char *sentinel, *session, *id;
	json_int_t ref = 0;
	struct archive_ev *ev;
	json_t *j = NULL;
	int fd;

	fd = openat(ar->data_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		j = json_loadfd(fd, 0, NULL);
	if (fd >= 0)
		close(fd);
	if (j == NULL || json_unpack(j, "{s:s, s:s, s:I, s:s}", "sentinelId", &sentinel,
				     "sessionId", &session, "ref", &ref, "id", &id) < 0) {
		log_error(0, "%s/%s is not an intent archive wrote: left alone", ar->data_dir,
			  name);
		goto out;
	}
	if (!alog_written(ar->alog, id)) {
		log_info("the deletion of session %s was not recorded before archive stopped: "
			 "it did not happen",
			 session);
		if (unlinkat(ar->data_fd, name, 0) < 0)
			log_warn(-errno, "%s/%s not removed", ar->data_dir, name);
		goto out;
	}
	ev = calloc(1, sizeof(*ev));
	if (ev == NULL)
		goto out; /* the next start */
	ev->kind = ARCHIVE_EV_COMMIT;
	ev->ref = ref;
	ev->ids_ok = id_parse(sentinel, ev->sentinel) == 0 && id_parse(session, ev->session) == 0;
	if (!ev->ids_ok) {
		free(ev);
		goto out;
	}
	log_info("the deletion of session %s was recorded (%s) before archive stopped: "
		 "finishing it",
		 session, id);
	archive_push(ar, ev); /* the writer takes it once the catalogue is read */
out:
	json_decref(j);
}

void
archive_delete_recover(struct archive *ar)
{
	struct alog_figures af = { 0 };
	struct dirent *de;
	DIR *d;
	int fd;

	/* Its own offset: a dup's would leave data_fd's at the end for the
	 * catalogue's walk. */
	fd = openat(ar->data_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		log_warn(-errno, "%s not listed for interrupted deletions", ar->data_dir);
		return;
	}
	if (ar->alog != NULL)
		alog_figures(ar->alog, &af);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (strncmp(de->d_name, LAYOUT_INTENT, strlen(LAYOUT_INTENT)) != 0)
			continue;
		if (len > strlen(LAYOUT_TMP) &&
		    strcmp(de->d_name + len - strlen(LAYOUT_TMP), LAYOUT_TMP) == 0) {
			unlinkat(ar->data_fd, de->d_name, 0); /* never made: nothing began */
			continue;
		}
		/* Only a log that was read whole can say a record is not there. */
		if (ar->alog == NULL || !af.ok) {
			log_warn(0, "%s/%s left for a start that can read the audit log",
				 ar->data_dir, de->d_name);
			continue;
		}
		delete_recover_one(ar, de->d_name);
	}
	closedir(d);
}
