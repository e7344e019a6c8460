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

/* Answers w's asker: done with pid when err is NULL, else refused or failed. */
static void
wd_act_answer(struct wd *wd, const struct wd_wait *w, const char *stage, const char *state,
	      pid_t pid, const char *err)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	json_t *ans;

	if (!w->bus_form) {
		if (err != NULL)
			ans = json_pack("{s:b, s:s}", "ok", 0, "error", err);
		else
			ans = json_pack("{s:b, s:s, s:s, s:i}", "ok", 1, "stage", stage, "state",
					state, "pid", (int)pid);
		if (ans != NULL && w->peer.gen == wd->ctl[w->peer.slot].gen &&
		    wd->ctl[w->peer.slot].fd >= 0)
			wd_ctl_write(wd, w->peer.slot, ans);
		json_decref(ans);
		return;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "stage.result", "vigild", wd_peer_name(&w->peer));
	msgpack_pack_map(&pk, 4);
	mp_pack_str(&pk, "ref");
	msgpack_sbuffer_write(&sb, (const char *)w->ref, w->ref_len);
	mp_pack_kv_str(&pk, "stage", stage);
	mp_pack_kv_str(&pk, "state", state);
	if (err != NULL)
		mp_pack_kv_str(&pk, "error", err);
	else
		mp_pack_kv_int(&pk, "pid", pid);
	wd_peer_send(wd, &w->peer, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* Answers and frees the wait once it is settled; false while it waits on. */
static bool
wd_wait_settle(struct wd *wd, struct wd_wait *w, int64_t now)
{
	const struct wd_child *c = &wd->child[w->stage];
	const char *name = bus_stage_name(w->stage), *act = wd_act_names[w->act];
	char err[192];
	bool done;

	if (w->act == WD_ACT_STOP)
		done = c->state == WD_DOWN;
	else /* start, restart, kill: running, and not the process that was */
		done = c->state == WD_RUNNING && c->pid != w->old_pid;
	if (done) {
		wd_act_answer(wd, w, name, act, c->pid, NULL);
	} else if (c->state == WD_FAILED) {
		snprintf(err, sizeof(err), "%s failed (%s)", name, c->last_exit);
		wd_act_answer(wd, w, name, act, 0, err);
	} else if (wd->shutdown && w->act != WD_ACT_STOP) {
		wd_act_answer(wd, w, name, act, 0, "vigil is shutting down");
	} else if (now >= w->deadline_ms) {
		snprintf(err, sizeof(err), "%s: not %s within %d s (%s)", name,
			 w->act == WD_ACT_STOP ? "down" : "running", WD_WAIT_MS / 1000,
			 wd_state_name(c->state));
		wd_act_answer(wd, w, name, act, 0, err);
	} else {
		return false;
	}
	w->used = false;
	return true;
}

/* Takes the action; NULL when taken, else why not (in err). */
static const char *
wd_act_take(struct wd *wd, struct wd_child *c, enum wd_act act, char *err, size_t errlen)
{
	const char *name = bus_stage_name(c->which);
	bool up = c->state == WD_STARTING || c->state == WD_RUNNING;
	int r;

	switch (act) {
	case WD_ACT_START:
		if (up) {
			snprintf(err, errlen, "%s is already running", name);
			return err;
		}
		/* Stopping: it comes back once it is down. */
		if (c->state == WD_STOPPING) {
			wd_stop(wd, c, true);
			return NULL;
		}
		r = wd_start(wd, c);
		if (r < 0) {
			snprintf(err, errlen, "%s could not be started: %s", name, strerror(-r));
			return err;
		}
		return NULL;
	case WD_ACT_STOP:
		wd_stop(wd, c, false);
		return NULL;
	case WD_ACT_RESTART:
		wd_stop(wd, c, true);
		return NULL;
	case WD_ACT_KILL:
		if (!up) {
			snprintf(err, errlen, "%s is not running (%s)", name,
				 wd_state_name(c->state));
			return err;
		}
		wd_kill(wd, c);
		return NULL;
	default:
		snprintf(err, errlen, "no such action");
		return err;
	}
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
	int which, act;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, ref != NULL ? *ref : nil);
	if (sb.size <= sizeof(w.ref)) {
		memcpy(w.ref, sb.data, sb.size);
		w.ref_len = sb.size;
	}
	msgpack_sbuffer_destroy(&sb);

	which = bus_stage_parse(stage);
	act = wd_act_parse(state);
	for (int i = 0; i < WD_WAITS_MAX && slot == NULL; i++) {
		if (!wd->waits[i].used)
			slot = &wd->waits[i];
	}
	if (which < 0) {
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
		w.stage = (enum bus_stage)which;
		w.act = (enum wd_act)act;
		w.old_pid = wd->child[which].pid;
		why = wd_act_take(wd, &wd->child[which], w.act, err, sizeof(err));
	}
	if (why != NULL) {
		log_info("%.32s of %.32s refused: %s", state, stage, why);
		wd_act_answer(wd, &w, stage, state, 0, why);
		return;
	}
	if (!wait) {
		json_t *ok = json_pack("{s:b}", "ok", 1);

		if (ok != NULL)
			wd_ctl_write(wd, peer->slot, ok);
		json_decref(ok);
		return;
	}
	w.deadline_ms = proc_mono_ms() + WD_WAIT_MS;
	*slot = w;
	/* A stop of a stage that was down is done already. */
	wd_wait_settle(wd, slot, proc_mono_ms());
}

void
wd_act_state_changed(struct wd *wd, struct wd_child *c)
{
	int64_t now = proc_mono_ms();

	for (int i = 0; i < WD_WAITS_MAX; i++) {
		if (wd->waits[i].used && wd->waits[i].stage == c->which)
			wd_wait_settle(wd, &wd->waits[i], now);
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
	for (int i = 0; i < BUS_N_STAGES; i++)
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
	bus_pack_begin(&pk, "shutdown.result", "vigild", wd_peer_name(peer));
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
