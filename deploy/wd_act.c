/* wd_act: operators' actions on a stage that answer once they are done
 * (stage.set from httpd's console, vigilctl start/stop/restart/kill), and the
 * announced shutdown (shutdown.request, vigilctl shutdown --in). The bus and
 * ctl.sock share this code; only the form of the answer differs. The actions
 * themselves are wd.c's: a kill is SIGKILL, and the crash restart brings the
 * stage back. Runs in vigild only. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mp.h"
#include "proc.h"
#include "wd.h"

static const char *const wd_act_names[WD_N_ACTS] = {
	[WD_ACT_START] = "start",
	[WD_ACT_STOP] = "stop",
	[WD_ACT_RESTART] = "restart",
	[WD_ACT_KILL] = "kill",
};

static int
wd_act_parse(const char *name)
{
	for (int i = 0; i < WD_N_ACTS; i++) {
		if (strcmp(name, wd_act_names[i]) == 0)
			return i;
	}
	return -EINVAL;
}

/* The pids of w's children as they are now. */
static json_t *
wd_act_pids(const struct wd *wd, const struct wd_wait *w)
{
	json_t *pids = json_array();

	for (unsigned i = 0; pids != NULL && i < w->n; i++)
		json_array_append_new(pids, json_integer(wd->child[w->first + i].pid));
	return pids;
}

/* Answers w's asker: done when err is NULL (with the pid of its first child,
 * and every pid when it acts on workers), else refused or failed. */
static void
wd_act_answer(struct wd *wd, const struct wd_wait *w, const char *stage, const char *state,
	      const char *err)
{
	pid_t pid = err == NULL && w->n > 0 ? wd->child[w->first].pid : 0;
	bool many = err == NULL && w->n > 1;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	json_t *ans;

	if (w->silent)
		return;
	if (!w->bus_form) {
		if (err != NULL)
			ans = json_pack("{s:b, s:s}", "ok", 0, "error", err);
		else
			ans = json_pack("{s:b, s:s, s:s, s:i}", "ok", 1, "stage", stage, "state",
					state, "pid", (int)pid);
		if (ans != NULL && many)
			json_object_set_new(ans, "pids", wd_act_pids(wd, w));
		if (ans != NULL && w->peer.gen == wd->ctl[w->peer.slot].gen &&
		    wd->ctl[w->peer.slot].fd >= 0)
			wd_ctl_write(wd, w->peer.slot, ans);
		json_decref(ans);
		return;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "stage.result", "vigild", wd_peer_name(wd, &w->peer));
	msgpack_pack_map(&pk, many ? 5 : 4);
	mp_pack_str(&pk, "ref");
	msgpack_sbuffer_write(&sb, (const char *)w->ref, w->ref_len);
	mp_pack_kv_str(&pk, "stage", stage);
	mp_pack_kv_str(&pk, "state", state);
	if (err != NULL)
		mp_pack_kv_str(&pk, "error", err);
	else
		mp_pack_kv_int(&pk, "pid", pid);
	if (many) {
		mp_pack_str(&pk, "pids");
		msgpack_pack_array(&pk, w->n);
		for (unsigned i = 0; i < w->n; i++)
			msgpack_pack_int64(&pk, wd->child[w->first + i].pid);
	}
	wd_peer_send(wd, &w->peer, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* Whether child i of w is where w asked it to be. */
static bool
wd_wait_there(const struct wd *wd, const struct wd_wait *w, unsigned i)
{
	const struct wd_child *c = &wd->child[w->first + i];

	if (w->act == WD_ACT_STOP)
		return c->state == WD_DOWN;
	/* start, restart, kill: running, and not the process that was */
	return c->state == WD_RUNNING && c->pid != w->old_pid[i];
}

/* A rolling restart goes on: the next worker once the one before runs
 * again. (Its stop comes back here, through the state change, and finds the
 * next one not there yet.) */
static void
wd_roll(struct wd *wd, struct wd_wait *w)
{
	while (w->rolling && w->next < w->n && wd_wait_there(wd, w, w->next)) {
		w->next++;
		if (w->next < w->n)
			wd_stop(wd, &wd->child[w->first + w->next], true);
	}
}

/* Answers and frees the wait once it is settled; false while it waits on. */
static bool
wd_wait_settle(struct wd *wd, struct wd_wait *w, int64_t now)
{
	const char *act = wd_act_names[w->act];
	const struct wd_child *failed = NULL, *late = NULL;
	char err[192];

	wd_roll(wd, w);
	if (!w->used)
		return true; /* settled meanwhile, by the state change of a stop */

	for (unsigned i = 0; i < w->n; i++) {
		const struct wd_child *c = &wd->child[w->first + i];

		if (c->state == WD_FAILED && failed == NULL)
			failed = c;
		if (!wd_wait_there(wd, w, i) && late == NULL)
			late = c;
	}
	if (late == NULL) {
		wd_act_answer(wd, w, w->name, act, NULL);
	} else if (failed != NULL) {
		snprintf(err, sizeof(err), "%s failed (%s)", failed->name, failed->last_exit);
		wd_act_answer(wd, w, w->name, act, err);
	} else if (wd->shutdown && w->act != WD_ACT_STOP) {
		wd_act_answer(wd, w, w->name, act, "vigil is shutting down");
	} else if (now >= w->deadline_ms) {
		snprintf(err, sizeof(err), "%s: not %s within %d s (%s)", late->name,
			 w->act == WD_ACT_STOP ? "down" : "running", WD_WAIT_MS / 1000,
			 wd_state_name(late->state));
		wd_act_answer(wd, w, w->name, act, err);
	} else {
		return false;
	}
	w->used = false;
	return true;
}

static bool
wd_up(const struct wd_child *c)
{
	return c->state == WD_STARTING || c->state == WD_RUNNING;
}

/* Takes the action on every child of w; NULL when taken, else why not (in err). */
static const char *
wd_act_take(struct wd *wd, struct wd_wait *w, char *err, size_t errlen)
{
	unsigned up = 0;
	int r;

	for (unsigned i = 0; i < w->n; i++)
		up += wd_up(&wd->child[w->first + i]);
	if (w->act == WD_ACT_START && up == w->n) {
		snprintf(err, errlen, "%s is already running", w->name);
		return err;
	}
	if (w->act == WD_ACT_KILL && up == 0) {
		snprintf(err, errlen, "%s is not running (%s)", w->name,
			 wd_state_name(wd->child[w->first].state));
		return err;
	}
	for (unsigned i = 0; i < w->n; i++) {
		struct wd_child *c = &wd->child[w->first + i];

		switch (w->act) {
		case WD_ACT_START:
			if (wd_up(c))
				break;
			/* Stopping: it comes back once it is down. */
			if (c->state == WD_STOPPING) {
				wd_stop(wd, c, true);
				break;
			}
			r = wd_start(wd, c);
			if (r < 0) {
				snprintf(err, errlen, "%s could not be started: %s", c->name,
					 strerror(-r));
				return err;
			}
			break;
		case WD_ACT_STOP:
			wd_stop(wd, c, false);
			break;
		case WD_ACT_RESTART:
			/* Workers one at a time (wd_roll): the first now. */
			if (!w->rolling || i == 0)
				wd_stop(wd, c, true);
			break;
		case WD_ACT_KILL:
			if (wd_up(c))
				wd_kill(wd, c);
			break;
		default:
			snprintf(err, errlen, "no such action");
			return err;
		}
	}
	return NULL;
}

void
wd_act_request(struct wd *wd, const struct wd_peer *peer, const msgpack_object *ref,
	       const char *stage, const char *state, bool bus_form, bool wait)
{
	static const msgpack_object nil = { .type = MSGPACK_OBJECT_NIL };
	struct wd_wait w = { .used = true, .bus_form = bus_form, .peer = *peer };
	struct wd_wait *slot = NULL;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char err[192];
	const char *why = NULL;
	int found, act;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, ref != NULL ? *ref : nil);
	if (sb.size <= sizeof(w.ref)) {
		memcpy(w.ref, sb.data, sb.size);
		w.ref_len = sb.size;
	}
	msgpack_sbuffer_destroy(&sb);

	found = wd_lookup(wd, stage, &w.first, &w.n);
	act = wd_act_parse(state);
	for (int i = 0; i < WD_WAITS_MAX && slot == NULL; i++) {
		if (!wd->waits[i].used)
			slot = &wd->waits[i];
	}
	if (found < 0) {
		snprintf(err, sizeof(err), "unknown stage '%.32s' (ingest, relay, archive, httpd)",
			 stage);
		why = err;
	} else if (act < 0) {
		snprintf(err, sizeof(err), "unknown state '%.32s' (start, stop, restart, kill)",
			 state);
		why = err;
	} else if (wd->shutdown) {
		why = "vigil is shutting down";
	} else if (wait && slot == NULL) {
		why = "too many actions waiting for their outcome; try again";
	}
	if (why == NULL) {
		snprintf(w.name, sizeof(w.name), "%s", stage);
		w.act = (enum wd_act)act;
		w.rolling = w.act == WD_ACT_RESTART && w.n > 1;
		for (unsigned i = 0; i < w.n; i++)
			w.old_pid[i] = wd->child[w.first + i].pid;
		w.deadline_ms = proc_mono_ms() + (int64_t)WD_WAIT_MS * (w.rolling ? w.n : 1);
		why = wd_act_take(wd, &w, err, sizeof(err));
	}
	if (why != NULL) {
		log_info("%.32s of %.32s refused: %s", state, stage, why);
		w.n = 0;
		wd_act_answer(wd, &w, stage, state, why);
		return;
	}
	if (!wait) {
		json_t *ok = json_pack("{s:b}", "ok", 1);

		if (ok != NULL)
			wd_ctl_write(wd, peer->slot, ok);
		json_decref(ok);
		if (!w.rolling)
			return;
		/* The roll needs its slot to go on; without one, the rest at once. */
		w.silent = true;
		for (unsigned i = 1; slot == NULL && i < w.n; i++)
			wd_stop(wd, &wd->child[w.first + i], true);
		if (slot == NULL)
			return;
	}
	*slot = w;
	/* A stop of a stage that was down is done already. */
	wd_wait_settle(wd, slot, proc_mono_ms());
}

void
wd_act_state_changed(struct wd *wd, struct wd_child *c)
{
	int64_t now = proc_mono_ms();

	unsigned k = (unsigned)(c - wd->child);

	for (int i = 0; i < WD_WAITS_MAX; i++) {
		struct wd_wait *w = &wd->waits[i];

		if (w->used && k >= w->first && k < w->first + w->n)
			wd_wait_settle(wd, w, now);
	}
}

/* shutdown.notice { at } to one stage. */
static void
wd_act_notice(struct wd *wd, struct wd_child *c)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (c->bus_fd < 0)
		return;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "shutdown.notice", "vigild", "*");
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_int(&pk, "at", wd->shutdown_at_ms);
	/* Queued if need be: a stage must not miss the stop for a full socket. */
	wd_bus_send(wd, c, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

int64_t
wd_shutdown_schedule(struct wd *wd, int64_t in_ms)
{
	json_t *ev;

	if (wd->shutdown_mono_ms != 0)
		log_info("the announced stop moves to %lld s from now", (long long)(in_ms / 1000));
	else
		log_info("stop announced: every stage stops in order in %lld s",
			 (long long)(in_ms / 1000));
	wd->shutdown_mono_ms = proc_mono_ms() + in_ms;
	wd->shutdown_at_ms = proc_now_ms() + in_ms;
	for (unsigned i = 0; i < wd->n_child; i++)
		wd_act_notice(wd, &wd->child[i]);
	ev = json_pack("{s:s, s:s, s:s, s:{s:I}}", "event", "bus", "type", "shutdown.notice",
		       "from", "vigild", "body", "at", (json_int_t)wd->shutdown_at_ms);
	if (ev != NULL)
		wd_ctl_broadcast(wd, ev);
	json_decref(ev);
	return wd->shutdown_at_ms;
}

void
wd_shutdown_request(struct wd *wd, const struct wd_peer *peer, const msgpack_object *body)
{
	const msgpack_object *ref = wd_ref(body);
	const char *err = NULL;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int64_t at = 0;
	double in = -1;

	if (mp_get_double(body, "in", &in) < 0 || !(in >= 0 && in <= WD_SHUTDOWN_MAX_S))
		err = "in: expected seconds from 0 to 3600";
	else if (wd->shutdown)
		err = "vigil is shutting down";
	else
		at = wd_shutdown_schedule(wd, (int64_t)(in * 1000));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "shutdown.result", "vigild", wd_peer_name(wd, peer));
	msgpack_pack_map(&pk, 2);
	mp_pack_str(&pk, "ref");
	msgpack_pack_object(&pk, *ref);
	if (err != NULL)
		mp_pack_kv_str(&pk, "error", err);
	else
		mp_pack_kv_int(&pk, "at", at);
	wd_peer_send(wd, peer, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

void
wd_act_hello(struct wd *wd, struct wd_child *c)
{
	if (wd->shutdown_mono_ms != 0 && !wd->shutdown)
		wd_act_notice(wd, c);
}

int
wd_act_tick(struct wd *wd)
{
	int64_t now = proc_mono_ms(), next = now + 1000;

	if (wd->shutdown_mono_ms != 0 && !wd->shutdown) {
		if (now >= wd->shutdown_mono_ms) {
			log_info("the announced time has come: stopping the stages in order");
			wd->shutdown = true;
		} else if (wd->shutdown_mono_ms < next) {
			next = wd->shutdown_mono_ms;
		}
	}
	for (int i = 0; i < WD_WAITS_MAX; i++) {
		struct wd_wait *w = &wd->waits[i];

		if (w->used && !wd_wait_settle(wd, w, now) && w->deadline_ms < next)
			next = w->deadline_ms;
	}
	return next <= now ? 0 : (int)(next - now);
}
