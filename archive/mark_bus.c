/* mark_bus: the stage thread's half of marks (docs/archive.md "Marks"):
 * mark.add from relay or httpd goes to the writer (mark.c), and once the mark
 * is on disk its audit record ("mark") is made durable too before mark.added
 * answers: a mark acknowledged is stored and recorded, even if archive is
 * killed the instant after. A new mark's answer goes to every stage (relay
 * shows it to the proctors watching that sentinel, whoever made it); any
 * other answer only to the stage that asked. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "audit.h"
#include "log.h"
#include "mp.h"

#define MARK_AUDIT_WAIT_MS 1000 /* then the answer goes anyway: the mark is stored */

static void
mark_send(struct archive *ar, const struct archive_ev *ev)
{
	bool news = ev->status == 201 && !ev->dup;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, ev->status == 201 ? 5 : 4);
	mp_pack_kv_int(&pk, "ref", ev->ref);
	mp_pack_kv_str(&pk, "for", ev->from);
	mp_pack_kv_int(&pk, "status", ev->status);
	mp_pack_kv_str(&pk, "error", ev->error);
	if (ev->status == 201) {
		mp_pack_str(&pk, "mark");
		mark_pack(&pk, &ev->mark);
	}
	if (ev->status != 201)
		log_info("mark %s from %s (ref %lld): %d %s", ev->mark.id, ev->from,
			 (long long)ev->ref, ev->status, ev->error);
	r = stage_send(ar->st, "mark.added", news ? "*" : ev->from, sb.data, sb.size);
	if (r < 0 && r != -ENOTCONN)
		log_warn(r, "mark.added (ref %lld) not sent: %s asks again", (long long)ev->ref,
			 ev->from);
	msgpack_sbuffer_destroy(&sb);
}

/* The mark's record is on disk (or waited for long enough): the answer. */
static void
mark_recorded(void *ctx, int status)
{
	struct archive_ev *ev = ctx;
	struct archive *ar = (struct archive *)ev->next; /* parked there while waiting */

	if (status < 0)
		log_warn(status,
			 "audit: the record of mark %s is not on disk yet; it is stored, "
			 "the answer goes",
			 ev->mark.id);
	mark_send(ar, ev);
	free(ev);
}

/* Whether this process recorded the mark already (and remembers it now). */
static bool
mark_seen(struct archive *ar, const char *id)
{
	size_t n = ar->n_marks_recorded < ARCHIVE_MARKS_RECORDED ? ar->n_marks_recorded
								 : ARCHIVE_MARKS_RECORDED;
	uint8_t u[16];

	if (id_parse(id, u) < 0)
		return true;
	for (size_t i = 0; i < n; i++) {
		if (memcmp(ar->marks_recorded[i], u, 16) == 0)
			return true;
	}
	memcpy(ar->marks_recorded[ar->n_marks_recorded++ % ARCHIVE_MARKS_RECORDED], u, 16);
	return false;
}

void
archive_mark_done(struct archive *ar, struct archive_ev *ev)
{
	const struct mark *m = &ev->mark;
	json_t *rec;

	/* A mark found stored already was recorded by whoever stored it, unless
	 * that was an archive killed between the two: then it is recorded now
	 * (at least once, docs/audit.md). */
	if (ev->status != 201 || mark_seen(ar, m->id)) {
		mark_send(ar, ev);
		free(ev);
		return;
	}
	rec = audit_record_as("mark", ev->actor[0] ? ev->actor : NULL,
			      ev->role[0] ? ev->role : NULL, ev->remote[0] ? ev->remote : NULL);
	if (rec == NULL || json_object_set_new(rec, "sentinelId", json_string(m->sentinel)) < 0 ||
	    json_object_set_new(rec, "sessionId", json_string(m->session)) < 0 ||
	    json_object_set_new(rec, "markId", json_string(m->id)) < 0) {
		json_decref(rec);
		log_error(-ENOMEM, "audit: mark %s not recorded", m->id);
		mark_send(ar, ev);
		free(ev);
		return;
	}
	ev->next = (struct archive_ev *)ar;
	audit_emit(stage_audit(ar->st), rec, MARK_AUDIT_WAIT_MS, mark_recorded, ev);
}

void
archive_mark_msg(struct archive *ar, const struct bus_msg *msg)
{
	const msgpack_object *mo;
	struct archive_ev *ev;
	int64_t deadline;

	ev = calloc(1, sizeof(*ev));
	if (ev == NULL)
		return; /* the sender asks again */
	ev->kind = ARCHIVE_EV_MARK;
	snprintf(ev->from, sizeof(ev->from), "%s", msg->from);
	if (mp_get_int(msg->body, "ref", &ev->ref) < 0) {
		log_warn(0, "mark.add from %s without an integer ref ignored", msg->from);
		free(ev);
		return;
	}
	mp_get_strbuf(msg->body, "actor", ev->actor, sizeof(ev->actor));
	mp_get_strbuf(msg->body, "role", ev->role, sizeof(ev->role));
	mp_get_strbuf(msg->body, "remote", ev->remote, sizeof(ev->remote));
	if (mp_get_int(msg->body, "deadline", &deadline) == 0)
		ev->deadline_ms = deadline;
	mo = mp_map_get(msg->body, "mark");
	/* The senders check every field; one that did not is answered, not dropped. */
	if (mark_from_mp(mo, &ev->mark) < 0 || id_parse(ev->mark.sentinel, ev->sentinel) < 0 ||
	    id_parse(ev->mark.session, ev->session) < 0) {
		ev->status = 400;
		snprintf(ev->error, sizeof(ev->error), "mark.add: mark is not a valid Mark");
		mark_send(ar, ev);
		free(ev);
		return;
	}
	ev->ids_ok = true;
	archive_push(ar, ev);
}
