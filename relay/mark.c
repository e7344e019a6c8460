/* mark: proctor.mark (PROTOCOL.md section 8, docs/protocol.md "Marks"). A
 * mark is checked against the ring's sentinel table, sent to archive
 * (mark.add) and answered only once archive says it is stored and recorded
 * (mark.added): then server.mark goes to the proctor who made it and to every
 * proctor of this relay subscribed to the sentinel, as it does for a mark
 * another stage made (httpd's POST). Until then the request waits here,
 * asked again every second (a bus message may be lost; archive takes one
 * markId once), for MARK_WAIT_MS at most: after that the proctor gets 503 and
 * archive, told the deadline, stores nothing that comes later. Runs in the
 * service thread. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mark.h"
#include "mp.h"
#include "proc.h"
#include "relay.h"

#define MARK_WAIT_MS     5000 /* from proctor.mark to server.error 503 */
#define MARK_RESEND_MS   1000 /* mark.add again while no answer came */
#define MARK_ARCHIVE_CUT 1000 /* archive stores nothing this long before relay gives up */
#define MARK_PER_PROCTOR 8    /* waiting at once; more are refused (429) */

static const char mark_ref[] = "proctor.mark";

/* A proctor.mark waiting for archive's answer. */
struct relay_mark {
	struct relay_mark *next;
	int64_t ref;
	struct wss_conn *c; /* NULL once the proctor has gone */
	struct mark m;
	char role[16], remote[64];
	int64_t give_up_ms, resend_ms; /* CLOCK_MONOTONIC */
	int64_t deadline_ms;           /* unix ms, archive's */
};

/* mark.add { ref, mark, deadline, actor, role, remote }; -EAGAIN and the rest:
 * it is sent again at the next resend. */
static int
mark_send(struct relay *rl, struct relay_mark *w)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 6);
	mp_pack_kv_int(&pk, "ref", w->ref);
	mp_pack_str(&pk, "mark");
	mark_pack(&pk, &w->m);
	mp_pack_kv_int(&pk, "deadline", w->deadline_ms);
	mp_pack_kv_str(&pk, "actor", w->m.by);
	mp_pack_kv_str(&pk, "role", w->role);
	mp_pack_kv_str(&pk, "remote", w->remote);
	r = stage_send(rl->st, "mark.add", "archive", sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	w->resend_ms = proc_mono_ms() + MARK_RESEND_MS;
	return r;
}

/* server.mark { mark } to one proctor. */
static void
mark_send_to(struct wss_conn *c, const struct mark *m)
{
	struct wss_msg msg;

	wss_msg_begin(&msg, "server.mark", 1);
	mp_pack_str(&msg.pk, "mark");
	mark_pack(&msg.pk, m);
	wss_msg_send(c, &msg);
}

/* To every registered proctor subscribed to the mark's sentinel, and to maker
 * (which may be NULL) whether it is subscribed or not. */
static void
mark_fan_out(struct relay *rl, const struct mark *m, struct wss_conn *maker)
{
	uint8_t id[16];

	if (maker != NULL)
		mark_send_to(maker, m);
	if (id_parse(m->sentinel, id) < 0)
		return;
	for (struct wss_conn *c = wss_first(rl->wss); c != NULL; c = wss_next(c)) {
		struct relay_sess *s = relay_conn_sess(c);

		if (c == maker || !s->registered || wss_conn_closing(c))
			continue;
		for (struct relay_sub *sub = s->subs; sub != NULL; sub = sub->next) {
			if (memcmp(sub->id, id, 16) == 0) {
				mark_send_to(c, m);
				break;
			}
		}
	}
}

static void
mark_forget(struct relay *rl, struct relay_mark *w)
{
	struct relay_mark **pp;

	for (pp = &rl->marks; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	if (w->c != NULL)
		relay_conn_sess(w->c)->marks_waiting--;
	free(w);
}

/* Archive's state as vigild last told it: running, or known not to be. */
static bool
mark_archive_down(struct relay *rl)
{
	const char *st = rl->stage_state[BUS_ARCHIVE];

	return st[0] != '\0' && strcmp(st, "running") != 0 && strcmp(st, "starting") != 0;
}

/* The mark of the payload, checked: 0, or -1 after a server.error. */
static int
mark_fields(struct relay *rl, struct wss_conn *c, const msgpack_object *p, struct mark *m,
	    int64_t *ret_slot)
{
	const char *note, *kind, *why;
	struct ring_sentinel e;
	uint8_t id[16];
	uint32_t slot;
	size_t len;
	int64_t now = proc_now_ms();
	int r;

	if (mp_get_strbuf(p, "sentinelId", m->sentinel, sizeof(m->sentinel)) < 0 ||
	    !id_valid(m->sentinel)) {
		wss_send_error(c, RELAY_ERR_BAD_REQUEST, "proctor.mark needs sentinelId (a UUID)",
			       mark_ref);
		return -1;
	}
	r = mp_get_str(p, "kind", &kind, &len);
	if (r == -ENOENT) {
		m->kind = MARK_NOTE;
	} else if (r < 0 || mark_kind_parse(kind, len, &m->kind) < 0) {
		wss_send_error(c, RELAY_ERR_BAD_REQUEST, MARK_KIND_PROBLEM, mark_ref);
		return -1;
	}
	if (mp_get_str(p, "note", &note, &len) < 0) {
		wss_send_error(c, RELAY_ERR_BAD_REQUEST, "proctor.mark needs note (a string)",
			       mark_ref);
		return -1;
	}
	why = mark_note_problem(note, len);
	if (why != NULL) {
		wss_send_errorf(c, RELAY_ERR_BAD_REQUEST, mark_ref, "%s (%zu bytes)", why, len);
		return -1;
	}
	memcpy(m->note, note, len);
	m->note[len] = '\0';
	r = mp_get_int(p, "at", &m->at);
	if (r == -ENOENT) {
		m->at = now;
	} else if (r < 0) {
		wss_send_error(c, RELAY_ERR_BAD_REQUEST, "at must be an integer (unix ms)",
			       mark_ref);
		return -1;
	}
	/* The nil UUID is the ring's free entry, no sentinel's. */
	if (id_parse(m->sentinel, id) < 0 || id_is_nil(id) ||
	    ring_sentinel_find(rl->ring, id, &slot) < 0 ||
	    ring_sentinel_get(rl->ring, slot, &e, NULL, 0) < 0 || memcmp(e.id, id, 16) != 0) {
		wss_send_errorf(c, RELAY_ERR_NOT_FOUND, mark_ref, "unknown sentinel %s",
				m->sentinel);
		return -1;
	}
	if (!e.online) {
		wss_send_errorf(
			c, RELAY_ERR_CONFLICT, mark_ref,
			"sentinel %s is offline: mark its session over HTTP (POST .../marks)",
			m->sentinel);
		return -1;
	}
	id_format(e.session, m->session);
	if (m->at < e.session_start_ms || m->at > now + MARK_FUTURE_MS) {
		wss_send_errorf(c, RELAY_ERR_BAD_REQUEST, mark_ref,
				"at %" PRId64 " is outside session %s (from %" PRId64
				", live: now is %" PRId64 ")",
				m->at, m->session, e.session_start_ms, now);
		return -1;
	}
	*ret_slot = slot;
	return 0;
}

void
relay_mark_request(struct relay *rl, struct wss_conn *c, const msgpack_object *p)
{
	struct relay_sess *s = relay_conn_sess(c);
	struct relay_mark *w;
	int64_t slot;
	int r;

	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		wss_send_error(c, RELAY_ERR_INTERNAL, "out of memory", mark_ref);
		return;
	}
	if (mark_fields(rl, c, p, &w->m, &slot) < 0)
		goto refused;
	if (s->marks_waiting >= MARK_PER_PROCTOR) {
		wss_send_errorf(c, RELAY_ERR_TOO_MANY, mark_ref,
				"%d marks of this proctor wait for the archive already",
				MARK_PER_PROCTOR);
		goto refused;
	}
	if (mark_archive_down(rl)) {
		wss_send_errorf(c, RELAY_ERR_UNAVAILABLE, mark_ref,
				"the archive is %s: the mark was not stored",
				rl->stage_state[BUS_ARCHIVE]);
		goto refused;
	}
	id_new(w->m.id);
	snprintf(w->m.by, sizeof(w->m.by), "%s", s->actor != NULL ? s->actor : "");
	snprintf(w->role, sizeof(w->role), "%s", cfg_role_name(s->role));
	snprintf(w->remote, sizeof(w->remote), "%s", wss_conn_peer(c));
	w->ref = ++rl->mark_ref;
	w->c = c;
	w->give_up_ms = proc_mono_ms() + MARK_WAIT_MS;
	w->deadline_ms = proc_now_ms() + MARK_WAIT_MS - MARK_ARCHIVE_CUT;
	w->next = rl->marks;
	rl->marks = w;
	s->marks_waiting++;
	r = mark_send(rl, w);
	if (r < 0 && r != -EAGAIN)
		log_warn(r, "mark.add (ref %" PRId64 ") not sent: asked again", w->ref);
	return;
refused:
	free(w);
}

static struct relay_mark *
mark_find(struct relay *rl, int64_t ref)
{
	for (struct relay_mark *w = rl->marks; w != NULL; w = w->next) {
		if (w->ref == ref)
			return w;
	}
	return NULL;
}

bool
relay_mark_bus(struct relay *rl, const struct bus_msg *msg)
{
	char who[BUS_NAME_MAX] = "", error[256] = "";
	struct relay_mark *w = NULL;
	int64_t ref = -1, status = 0;
	struct mark m;

	if (strcmp(msg->type, "mark.added") != 0)
		return false;
	mp_get_strbuf(msg->body, "for", who, sizeof(who));
	mp_get_int(msg->body, "ref", &ref);
	mp_get_int(msg->body, "status", &status);
	mp_get_strbuf(msg->body, "error", error, sizeof(error));
	/* "relay/1" for a worker: another worker's answer is not for us. */
	if (strcmp(who, stage_name(rl->st)) == 0)
		w = mark_find(rl, ref);
	if (status == 201 && mark_from_mp(mp_map_get(msg->body, "mark"), &m) == 0) {
		/* An answer for a request that gave up, or a repeat, is news for nobody:
		 * only a new mark (sent to every stage) goes to the watchers then. */
		if (w != NULL || strcmp(msg->to, "*") == 0)
			mark_fan_out(rl, &m, w != NULL ? w->c : NULL);
	} else if (w != NULL && w->c != NULL) {
		wss_send_error(w->c,
			       status >= 400 && status < 600 ? (int)status : RELAY_ERR_INTERNAL,
			       error[0] != '\0' ? error : "the archive refused the mark", mark_ref);
	}
	if (w != NULL)
		mark_forget(rl, w);
	return true;
}

void
relay_mark_tick(struct relay *rl)
{
	int64_t now = proc_mono_ms();
	struct relay_mark *w, *next;

	for (w = rl->marks; w != NULL; w = next) {
		next = w->next;
		if (now >= w->give_up_ms) {
			log_warn(0, "mark %s of sentinel %s: no answer from the archive in %d ms",
				 w->m.id, w->m.sentinel, MARK_WAIT_MS);
			if (w->c != NULL)
				wss_send_errorf(w->c, RELAY_ERR_UNAVAILABLE, mark_ref,
						"the archive did not confirm the mark within %d s: "
						"it was not stored",
						MARK_WAIT_MS / 1000);
			mark_forget(rl, w);
		} else if (now >= w->resend_ms) {
			mark_send(rl, w);
		}
	}
}

void
relay_mark_archive_up(struct relay *rl)
{
	for (struct relay_mark *w = rl->marks; w != NULL; w = w->next)
		mark_send(rl, w);
}

void
relay_mark_closed(struct relay *rl, struct wss_conn *c)
{
	/* Its marks are still stored (and shown to the others): only the answer
	 * has nobody to go to. */
	for (struct relay_mark *w = rl->marks; w != NULL; w = w->next) {
		if (w->c == c) {
			w->c = NULL;
			relay_conn_sess(c)->marks_waiting--;
		}
	}
}

void
relay_mark_free(struct relay *rl)
{
	while (rl->marks != NULL) {
		struct relay_mark *w = rl->marks;

		rl->marks = w->next;
		free(w);
	}
}
