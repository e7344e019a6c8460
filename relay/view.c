/* view: relay's audit records (PROTOCOL.md section 9, docs/audit.md "What
 * each stage records"). A live.view is one proctor's watching of one
 * sentinel session: it begins when the subscription meets the session online
 * (at subscribe, or when the sentinel comes online while subscribed) and ends
 * when either goes (unsubscribe, the proctor's close for any reason, the
 * sentinel going offline, relay stopping). A subscription that stays while
 * the sentinel reconnects makes one record per session. viewlog.c keeps them
 * until their record is durable. Runs in the lws service thread. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "files.h"
#include "log.h"
#include "proc.h"
#include "relay.h"

struct relay_viewlog *
relay_view_open(struct stage *st)
{
	char name[64];

	/* Each worker its own file (a relay of one process is worker 0): a
	 * worker that starts again finds what it left, and no other writes it. */
	snprintf(name, sizeof(name), "relay-%d.views",
		 stage_worker(st) >= 0 ? stage_worker(st) : 0);
	return relay_viewlog_for(st, name, NULL);
}

/* The slot's sentinel and session as the ring has them now; true when that
 * differs from what the views knew. */
static bool
view_look(struct relay *rl, uint32_t slot)
{
	struct relay_slot *s = &rl->slots[slot];
	struct ring_sentinel e;

	if (ring_sentinel_get(rl->ring, slot, &e, NULL, 0) < 0)
		return false; /* busy: the next tick looks again */
	if (memcmp(s->seen_id, e.id, 16) == 0 && memcmp(s->seen_session, e.session, 16) == 0 &&
	    s->seen_online == e.online)
		return false;
	memcpy(s->seen_id, e.id, 16);
	memcpy(s->seen_session, e.session, 16);
	s->seen_online = e.online;
	return true;
}

/* The slot of sub's sentinel, found again when it was given to another. */
static int64_t
view_slot(struct relay *rl, struct relay_sub *sub)
{
	uint32_t slot;

	if (sub->slot >= 0 && sub->slot < rl->n_slots &&
	    memcmp(rl->slots[sub->slot].seen_id, sub->id, 16) == 0)
		return sub->slot;
	sub->slot = ring_sentinel_find(rl->ring, sub->id, &slot) == 0 ? (int64_t)slot : -1;
	if (sub->slot >= 0)
		rl->views_dirty |= view_look(rl, slot);
	return sub->slot;
}

static void
view_close(struct relay *rl, struct relay_sub *sub, int64_t now)
{
	if (sub->view == NULL)
		return;
	relay_viewlog_end(rl->views, sub->view, now);
	sub->view = NULL;
}

/* Opens or closes sub's view to match its sentinel's session now. */
static void
view_follow(struct relay *rl, struct wss_conn *c, struct relay_sub *sub, int64_t now)
{
	struct relay_sess *s = relay_conn_sess(c);
	int64_t slot = view_slot(rl, sub);
	const struct relay_slot *sl = slot >= 0 ? &rl->slots[slot] : NULL;
	bool live = sl != NULL && sl->seen_online && memcmp(sl->seen_id, sub->id, 16) == 0;
	char session[ID_STR_LEN];

	if (sub->view != NULL && (!live || memcmp(sub->view_session, sl->seen_session, 16) != 0))
		view_close(rl, sub, now);
	if (sub->view != NULL || !live || rl->views == NULL || s->actor == NULL)
		return;
	id_format(sl->seen_session, session);
	sub->view = relay_viewlog_begin(rl->views, s->actor, cfg_role_name(s->role),
					wss_conn_peer(c), sub->id_str, session, now);
	memcpy(sub->view_session, sl->seen_session, 16);
}

void
relay_view_sub(struct relay *rl, struct wss_conn *c, struct relay_sub *sub)
{
	if (sub->slot >= 0 && sub->slot < rl->n_slots)
		rl->views_dirty |= view_look(rl, (uint32_t)sub->slot);
	view_follow(rl, c, sub, proc_now_ms());
}

void
relay_view_end(struct relay *rl, struct relay_sub *sub)
{
	view_close(rl, sub, proc_now_ms());
}

/* Every subscription follows its sentinel again, when a slot changed. Cheap
 * when nothing did: one read of each slot's table entry. */
static void
view_sync(struct relay *rl)
{
	int64_t now = proc_now_ms();

	for (uint32_t slot = 0; slot < rl->n_slots; slot++)
		rl->views_dirty |= view_look(rl, slot);
	if (!rl->views_dirty)
		return;
	rl->views_dirty = false;
	for (struct wss_conn *c = wss_first(rl->wss); c != NULL; c = wss_next(c)) {
		for (struct relay_sub *sub = relay_conn_sess(c)->subs; sub != NULL; sub = sub->next)
			view_follow(rl, c, sub, now);
	}
}

void
relay_view_changed(struct relay *rl)
{
	view_sync(rl);
}

void
relay_view_tick(struct relay *rl)
{
	view_sync(rl);
	if (rl->views != NULL)
		relay_viewlog_tick(rl->views, proc_now_ms());
}

void
relay_view_refused(struct relay *rl, struct wss_conn *c, const struct tok_info *who,
		   const char *reason)
{
	json_t *rec = audit_record("auth.failed", who, wss_conn_peer(c));

	if (rec != NULL && (json_object_set_new(rec, "endpoint", json_string("/proctor")) < 0 ||
			    json_object_set_new(rec, "reason", json_string(reason)) < 0)) {
		json_decref(rec);
		rec = NULL;
	}
	audit_emit_refusal(stage_audit(rl->st), rec);
}
