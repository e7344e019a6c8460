/* session: PROTOCOL.md section 5 for one proctor connection: registration,
 * list, subscriptions, control requests, token expiry and refresh; and the bus
 * events turned into server.* events for every proctor. Runs in the lws
 * service thread. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mp.h"
#include "proc.h"
#include "relay.h"

#define RELAY_EXPIRY_WARN_S 60

/* Sends one event to every registered proctor. */
static void
sess_broadcast(struct relay *rl, struct wss_msg *m)
{
	for (struct wss_conn *c = wss_first(rl->wss); c != NULL; c = wss_next(c)) {
		if (relay_conn_sess(c)->registered)
			wss_conn_send(c, m->sb.data, m->sb.size);
	}
	msgpack_sbuffer_destroy(&m->sb);
}

/* Refuses a registration: the reject message, then the close with the same reason. */
static void
sess_reject(struct relay *rl, struct wss_conn *c, int code, const char *reason)
{
	rl->stats.rejected_total++;
	log_info("proctor registration refused (%d): %s", code, reason);
	wss_reject(c, code, reason);
}

/* tok_check for a proctor token, remembered for a revocation, its name and
 * role kept for the audit records; a refusal is one (auth.failed). The reason
 * text on failure: -ENOMEM is the server's, the rest the token's. */
static int
sess_token(struct relay *rl, struct wss_conn *c, const msgpack_object *p, int64_t *ret_expires,
	   const char **ret_why)
{
	struct relay_sess *s = relay_conn_sess(c);
	const struct tok_info *info;
	char *actor;
	int r;

	r = wss_conn_check_token(c, rl->tokens, p, CFG_ROLE_PROCTOR, &info);
	if (r < 0) {
		*ret_why = tok_refusal(r, CFG_ROLE_PROCTOR);
		relay_view_refused(rl, c, info, *ret_why);
		return r == -ENOMEM ? -EACCES : r;
	}
	actor = strdup(info->name);
	if (actor == NULL) {
		*ret_why = "Server error";
		return -ENOMEM;
	}
	free(s->actor);
	s->actor = actor;
	s->role = info->role;
	*ret_expires = info->expires;
	return 0;
}

static void
sess_register(struct relay *rl, struct wss_conn *c, const msgpack_object *p)
{
	struct relay_sess *s = relay_conn_sess(c);
	struct wss_msg m;
	const char *why, *name;
	char reason[96];
	int64_t expires = 0;
	size_t n;
	int r;

	if (wss_check_version(p, reason, sizeof(reason)) < 0) {
		sess_reject(rl, c, 3002, reason);
		return;
	}
	r = sess_token(rl, c, p, &expires, &why);
	if (r < 0) {
		sess_reject(rl, c, r == -ENOMEM ? 3005 : 3001, why);
		return;
	}
	/* limits.max_proctors is the server's: the other workers' proctors as
	 * vigild last told (workers.load, sent on every change) count too. */
	if ((int64_t)rl->proctors + stage_peer_connections(rl->st) >= rl->cfg->max_proctors) {
		sess_reject(rl, c, 3007, "Server busy");
		return;
	}
	if (mp_get_str(p, "name", &name, &n) == 0 && n > 0)
		mp_copy_utf8(s->name, sizeof(s->name), name, n);
	id_new(s->id_str);
	if (s->name[0] == '\0')
		snprintf(s->name, sizeof(s->name), "proctor-%.8s", s->id_str);
	s->token_expires = expires;
	s->registered = true;
	rl->proctors++;
	stage_load(rl->st, rl->proctors);
	rl->stats.registered_total++;
	/* The role lets the page offer only what the token may do (exports
	 * to archivists), instead of links that end in a 403. */
	wss_msg_begin(&m, "server.registration.ack", 2);
	mp_pack_kv_str(&m.pk, "proctorId", s->id_str);
	mp_pack_kv_str(&m.pk, "role", cfg_role_name(s->role));
	wss_msg_send(c, &m);
	wss_conn_registered(c);
	log_info("proctor %s '%s' registered", s->id_str, s->name);
}

void
relay_pack_sentinel(struct relay *rl, msgpack_packer *pk, uint32_t slot,
		    const struct ring_sentinel *e)
{
	char id[ID_STR_LEN], session[ID_STR_LEN];

	id_format(e->id, id);
	id_format(e->session, session);
	msgpack_pack_map(pk, 10);
	mp_pack_kv_str(pk, "sentinelId", id);
	mp_pack_kv_str(pk, "name", e->name);
	mp_pack_kv_str(pk, "sessionId", session);
	mp_pack_kv_bool(pk, "online", e->online);
	mp_pack_kv_str(pk, "codec", e->codec);
	mp_pack_kv_int(pk, "width", e->width);
	mp_pack_kv_int(pk, "height", e->height);
	mp_pack_kv_int(pk, "startedAt", e->session_start_ms);
	mp_pack_kv_int(pk, "lastSequence", e->last_sequence);
	mp_pack_kv_int(pk, "bitrate", relay_feed_bitrate(rl, slot));
}

static void
sess_list(struct relay *rl, struct wss_conn *c)
{
	struct ring_sentinel *e;
	uint32_t n = 0, *slots;
	struct wss_msg m;

	/* Count what is in the ring already, so lastSequence and bitrate agree. */
	relay_feed_drain(rl);
	e = calloc(rl->n_slots, sizeof(*e));
	slots = calloc(rl->n_slots, sizeof(*slots));
	if (e == NULL || slots == NULL) {
		wss_send_error(c, RELAY_ERR_INTERNAL, "out of memory", "proctor.list");
		goto out;
	}
	for (uint32_t slot = 0; slot < rl->n_slots; slot++) {
		if (ring_sentinel_get(rl->ring, slot, &e[n], NULL, 0) < 0 || id_is_nil(e[n].id))
			continue;
		slots[n++] = slot;
	}
	wss_msg_begin(&m, "server.sentinels", 1);
	mp_pack_str(&m.pk, "sentinels");
	msgpack_pack_array(&m.pk, n);
	for (uint32_t i = 0; i < n; i++)
		relay_pack_sentinel(rl, &m.pk, slots[i], &e[i]);
	wss_msg_send(c, &m);
out:
	free(e);
	free(slots);
}

static int
sess_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

static int
sess_sub_cmp(const void *a, const void *b)
{
	return memcmp((*(struct relay_sub *const *)a)->id, (*(struct relay_sub *const *)b)->id, 16);
}

/* An id and its ring slot, sorted by id: the lookups of one message. */
struct sess_slot {
	uint8_t id[16];
	uint32_t slot;
};

/* sentinelIds: every entry a UUID string, checked before anything changes,
 * at most limits.max_sentinels of them; *ret_ids sorted, without repeats. */
static int
sess_ids(struct relay *rl, struct wss_conn *c, const msgpack_object *p, const char *ref,
	 uint8_t (**ret_ids)[16], uint32_t *ret_n)
{
	const msgpack_object *ids;
	uint8_t(*v)[16];
	char buf[ID_STR_LEN];
	uint32_t n = 0;

	if (mp_get_array(p, "sentinelIds", &ids) < 0) {
		wss_send_errorf(c, RELAY_ERR_BAD_REQUEST, ref, "%s needs sentinelIds (an array)",
				ref);
		return -EINVAL;
	}
	if (ids->via.array.size > (uint64_t)rl->cfg->max_sentinels) {
		wss_send_errorf(
			c, RELAY_ERR_BAD_REQUEST, ref,
			"%u sentinelIds: at most %lld in one message (limits.max_sentinels)",
			ids->via.array.size, (long long)rl->cfg->max_sentinels);
		return -EINVAL;
	}
	v = malloc((ids->via.array.size + 1) * sizeof(*v));
	if (v == NULL) {
		wss_send_error(c, RELAY_ERR_INTERNAL, "out of memory", ref);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < ids->via.array.size; i++) {
		const msgpack_object *o = &ids->via.array.ptr[i];

		if (o->type == MSGPACK_OBJECT_STR && o->via.str.size == ID_STR_LEN - 1) {
			memcpy(buf, o->via.str.ptr, ID_STR_LEN - 1);
			buf[ID_STR_LEN - 1] = '\0';
		}
		if (o->type != MSGPACK_OBJECT_STR || o->via.str.size != ID_STR_LEN - 1 ||
		    id_parse(buf, v[i]) < 0) {
			wss_send_errorf(c, RELAY_ERR_BAD_REQUEST, ref,
					"sentinelIds[%u] is not a UUID", i);
			free(v);
			return -EINVAL;
		}
	}
	qsort(v, ids->via.array.size, sizeof(*v), sess_id_cmp);
	for (uint32_t i = 0; i < ids->via.array.size; i++)
		if (n == 0 || memcmp(v[n - 1], v[i], 16) != 0)
			memcpy(v[n++], v[i], 16);
	*ret_ids = v;
	*ret_n = n;
	return 0;
}

/* The proctor's subscriptions as an array sorted by id. */
static struct relay_sub **
sess_sorted_subs(struct relay_sess *s, uint32_t *ret_n)
{
	struct relay_sub **v, *sub;
	uint32_t n = 0;

	for (sub = s->subs; sub != NULL; sub = sub->next)
		n++;
	v = malloc((n + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	n = 0;
	for (sub = s->subs; sub != NULL; sub = sub->next)
		v[n++] = sub;
	qsort(v, n, sizeof(*v), sess_sub_cmp);
	*ret_n = n;
	return v;
}

static struct relay_sub *
sess_sub_find(struct relay_sub **v, uint32_t n, const uint8_t id[16])
{
	struct relay_sub key, *kp = &key, **hit;

	memcpy(key.id, id, 16);
	hit = bsearch(&kp, v, n, sizeof(*v), sess_sub_cmp);
	return hit != NULL ? *hit : NULL;
}

/* Every sentinel of the ring with its slot, read once for the message. */
static struct sess_slot *
sess_slots(struct relay *rl, uint32_t *ret_n)
{
	struct sess_slot *v = malloc((rl->n_slots + 1) * sizeof(*v));
	struct ring_sentinel e;
	uint32_t n = 0;

	if (v == NULL)
		return NULL;
	for (uint32_t slot = 0; slot < rl->n_slots; slot++) {
		if (ring_sentinel_get(rl->ring, slot, &e, NULL, 0) < 0 || id_is_nil(e.id))
			continue;
		memcpy(v[n].id, e.id, 16);
		v[n++].slot = slot;
	}
	qsort(v, n, sizeof(*v), sess_id_cmp);
	*ret_n = n;
	return v;
}

static void
sess_unsubscribe(struct relay *rl, struct wss_conn *c, struct relay_sess *s, uint8_t (*ids)[16],
		 uint32_t n)
{
	struct relay_sub **pp = &s->subs, *sub;

	while ((sub = *pp) != NULL) {
		if (bsearch(sub->id, ids, n, sizeof(*ids), sess_id_cmp) == NULL) {
			pp = &sub->next;
			continue;
		}
		wss_conn_drop(c, sub, NULL, NULL);
		relay_view_end(rl, sub);
		*pp = sub->next;
		free(sub);
	}
}

/* Linear in what the message and the proctor hold, sorted once: a message of
 * limits.max_sentinels ids costs milliseconds, not the square of it. */
static void
sess_subscribe(struct relay *rl, struct wss_conn *c, const msgpack_object *p, bool subscribe)
{
	const char *ref = subscribe ? "proctor.subscribe" : "proctor.unsubscribe";
	struct relay_sess *s = relay_conn_sess(c);
	uint8_t(*ids)[16] = NULL;
	struct relay_sub **have = NULL, *sub;
	struct sess_slot *slots = NULL, *hit;
	char from[16] = "latest";
	uint32_t n, n_have, n_slots, n_new = 0;
	int r;

	if (subscribe) {
		r = mp_get_strbuf(p, "startFrom", from, sizeof(from));
		if ((r < 0 && r != -ENOENT) ||
		    (strcmp(from, "latest") != 0 && strcmp(from, "oldest") != 0)) {
			wss_send_errorf(c, RELAY_ERR_BAD_REQUEST, ref,
					"startFrom must be \"latest\" or \"oldest\"");
			return;
		}
	}
	if (sess_ids(rl, c, p, ref, &ids, &n) < 0)
		return;
	if (!subscribe) {
		sess_unsubscribe(rl, c, s, ids, n);
		goto out;
	}
	have = sess_sorted_subs(s, &n_have);
	slots = sess_slots(rl, &n_slots);
	if (have == NULL || slots == NULL) {
		wss_send_error(c, RELAY_ERR_INTERNAL, "out of memory", ref);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++)
		n_new += sess_sub_find(have, n_have, ids[i]) == NULL;
	if (n_have + n_new > (uint64_t)rl->cfg->max_sentinels) {
		wss_send_errorf(c, RELAY_ERR_BAD_REQUEST, ref,
				"a proctor follows at most %lld sentinels (limits.max_sentinels); "
				"%u already",
				(long long)rl->cfg->max_sentinels, n_have);
		goto out;
	}
	/* Catching up first, the sentinels' own segments queued behind. */
	relay_feed_drain(rl);
	for (uint32_t i = 0; i < n; i++) {
		if (sess_sub_find(have, n_have, ids[i]) != NULL)
			continue; /* already subscribed: the stream goes on as it is */
		sub = calloc(1, sizeof(*sub));
		if (sub == NULL) {
			wss_send_error(c, RELAY_ERR_INTERNAL, "out of memory", ref);
			goto out;
		}
		memcpy(sub->id, ids[i], 16);
		id_format(ids[i], sub->id_str);
		sub->last_seq = -1;
		sub->skip_from = -1;
		sub->next = s->subs;
		s->subs = sub;
		hit = bsearch(ids[i], slots, n_slots, sizeof(*slots), sess_id_cmp);
		sub->slot = hit != NULL ? (int64_t)hit->slot : -1;
		relay_feed_subscribe(rl, c, sub, strcmp(from, "oldest") == 0, sub->slot);
		relay_view_sub(rl, c, sub);
	}
out:
	free(ids);
	free(have);
	free(slots);
}

/* The ring slot of the sentinelId in p, or -1 after a server.error. */
static int
sess_slot(struct relay *rl, struct wss_conn *c, const msgpack_object *p, const char *ref)
{
	char buf[64];
	uint8_t id[16];
	uint32_t slot;

	if (mp_get_strbuf(p, "sentinelId", buf, sizeof(buf)) < 0 || id_parse(buf, id) < 0) {
		wss_send_errorf(c, RELAY_ERR_BAD_REQUEST, ref, "%s needs sentinelId (a UUID)", ref);
		return -1;
	}
	if (ring_sentinel_find(rl->ring, id, &slot) < 0) {
		wss_send_errorf(c, RELAY_ERR_NOT_FOUND, ref, "unknown sentinel %s", buf);
		return -1;
	}
	return (int)slot;
}

static void
sess_fps(struct relay *rl, struct wss_conn *c, const msgpack_object *p)
{
	const char *ref = "proctor.fps.change";
	struct ring_sentinel e;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char id[ID_STR_LEN];
	double fps;
	int slot;

	if (mp_get_double(p, "framerate", &fps) < 0 || !isfinite(fps) || fps <= 0) {
		wss_send_errorf(c, RELAY_ERR_BAD_REQUEST, ref,
				"framerate must be a number above 0");
		return;
	}
	slot = sess_slot(rl, c, p, ref);
	if (slot < 0 || ring_sentinel_get(rl->ring, (uint32_t)slot, &e, NULL, 0) < 0)
		return;
	id_format(e.id, id);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "sentinelId", id);
	mp_pack_kv_double(&pk, "framerate", fps);
	stage_send(rl->st, "fps.change", "ingest", sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

static void
sess_refresh(struct relay *rl, struct wss_conn *c, const msgpack_object *p)
{
	struct relay_sess *s = relay_conn_sess(c);
	const char *why;
	int64_t expires;
	int r;

	r = sess_token(rl, c, p, &expires, &why);
	if (r < 0) {
		wss_send_error(c, r == -ENOMEM ? RELAY_ERR_INTERNAL : RELAY_ERR_UNAUTHORIZED, why,
			       "proctor.auth.refresh");
		return;
	}
	s->token_expires = expires;
	s->expiry_warned = false;
}

void
relay_sess_message(struct relay *rl, struct wss_conn *c, const void *buf, size_t len, bool binary)
{
	struct relay_sess *s = relay_conn_sess(c);
	const msgpack_object *p;
	struct env *env;
	const char *type;
	int slot;

	env = wss_decode(c, buf, len, binary);
	if (env == NULL)
		return;
	type = env_type(env);
	p = env_payload(env);
	if (!s->registered) {
		if (strcmp(type, "proctor.register") == 0)
			sess_register(rl, c, p);
		else
			sess_reject(rl, c, 3001, "The first message must be proctor.register");
	} else if (strcmp(type, "proctor.list") == 0) {
		sess_list(rl, c);
	} else if (strcmp(type, "proctor.subscribe") == 0) {
		sess_subscribe(rl, c, p, true);
	} else if (strcmp(type, "proctor.unsubscribe") == 0) {
		sess_subscribe(rl, c, p, false);
	} else if (strcmp(type, "proctor.keyframe.request") == 0) {
		slot = sess_slot(rl, c, p, type);
		if (slot >= 0)
			relay_feed_keyframe(rl, (uint32_t)slot);
	} else if (strcmp(type, "proctor.fps.change") == 0) {
		sess_fps(rl, c, p);
	} else if (strcmp(type, "proctor.mark") == 0) {
		relay_mark_request(rl, c, p);
	} else if (strcmp(type, "proctor.auth.refresh") == 0) {
		sess_refresh(rl, c, p);
	} else if (strcmp(type, "proctor.ping") == 0) {
		wss_send_pong(c);
	} else if (strcmp(type, "proctor.bye") == 0) {
		wss_conn_close(c, 1000, "Session ended by the proctor");
	} else if (strcmp(type, "proctor.register") == 0) {
		wss_send_errorf(c, RELAY_ERR_CONFLICT, type, "already registered");
	} else {
		wss_send_errorf(c, RELAY_ERR_NOT_FOUND, type, "unknown message type '%s'", type);
	}
	env_free(env);
}

void
relay_sess_closed(struct relay *rl, struct wss_conn *c)
{
	struct relay_sess *s = relay_conn_sess(c);
	struct relay_sub *sub, *next;

	for (sub = s->subs; sub != NULL; sub = next) {
		next = sub->next;
		relay_view_end(rl, sub);
		free(sub);
	}
	s->subs = NULL;
	relay_mark_closed(rl, c);
	free(s->actor);
	s->actor = NULL;
	if (s->registered) {
		rl->proctors--;
		stage_load(rl->st, rl->proctors);
		s->registered = false;
		log_info("proctor %s disconnected", s->id_str);
	}
}

static void
sess_bus_online(struct relay *rl, const msgpack_object *body)
{
	struct ring_sentinel e;
	struct wss_msg m;
	int64_t slot;

	if (mp_get_int(body, "slot", &slot) < 0 || slot < 0 || slot >= rl->n_slots ||
	    ring_sentinel_get(rl->ring, (uint32_t)slot, &e, NULL, 0) < 0)
		return;
	relay_feed_online(rl, e.id);
	relay_view_changed(rl);
	wss_msg_begin(&m, "server.sentinel.online", 1);
	mp_pack_str(&m.pk, "sentinel");
	relay_pack_sentinel(rl, &m.pk, (uint32_t)slot, &e);
	sess_broadcast(rl, &m);
}

static void
sess_bus_offline(struct relay *rl, const msgpack_object *body)
{
	char id[ID_STR_LEN], session[ID_STR_LEN], reason[64] = "disconnected";
	struct wss_msg m;

	if (mp_get_strbuf(body, "sentinelId", id, sizeof(id)) < 0 ||
	    mp_get_strbuf(body, "sessionId", session, sizeof(session)) < 0)
		return;
	mp_get_strbuf(body, "reason", reason, sizeof(reason));
	relay_view_changed(rl);
	wss_msg_begin(&m, "server.sentinel.offline", 3);
	mp_pack_kv_str(&m.pk, "sentinelId", id);
	mp_pack_kv_str(&m.pk, "sessionId", session);
	mp_pack_kv_str(&m.pk, "reason", reason);
	sess_broadcast(rl, &m);
}

/* Bus messages for relay: sentinel.online and sentinel.offline from ingest,
 * stage.state and shutdown.notice from vigild, token.revoke from the operator
 * console, revoked { digests } from vigild (the durable list, which stage.c
 * has taken), mark.added from archive (mark.c). */
void
relay_sess_bus(void *ctx, const struct bus_msg *msg)
{
	struct relay *rl = ctx;
	char stage[16], state[16];
	int64_t at;
	int which, worker;

	if (relay_mark_bus(rl, msg))
		return;
	if (strcmp(msg->type, "sentinel.online") == 0) {
		sess_bus_online(rl, msg->body);
	} else if (strcmp(msg->type, "sentinel.offline") == 0) {
		sess_bus_offline(rl, msg->body);
	} else if (strcmp(msg->type, "token.revoke") == 0) {
		wss_revoke(rl->wss, rl->tokens, msg->body);
	} else if (strcmp(msg->type, "revoked") == 0) {
		size_t n;
		const uint8_t *digests = stage_revoked(rl->st, &n);

		if (wss_revoke_list(rl->wss, rl->tokens, digests, n) < 0)
			log_error(-ENOMEM, "the revocation list was not applied");
	} else if (strcmp(msg->type, "shutdown.notice") == 0) {
		if (mp_get_int(msg->body, "at", &at) == 0)
			wss_shutdown_notice(rl->wss, at);
	} else if (strcmp(msg->type, "stage.state") == 0) {
		if (mp_get_strbuf(msg->body, "stage", stage, sizeof(stage)) < 0 ||
		    mp_get_strbuf(msg->body, "state", state, sizeof(state)) < 0)
			return;
		which = bus_name_parse(stage, &worker);
		if (which >= 0 && which != BUS_RELAY)
			snprintf(rl->stage_state[which], sizeof(rl->stage_state[which]), "%s",
				 bus_state_public(state));
		else if (which == BUS_RELAY && worker >= 0 && worker != stage_worker(rl->st))
			snprintf(rl->worker_state[worker], sizeof(rl->worker_state[worker]), "%s",
				 bus_state_public(state));
		if (which == BUS_ARCHIVE && strcmp(rl->stage_state[which], "running") == 0)
			relay_mark_archive_up(rl);
	}
}

/* A stage (or relay worker) not heard of since relay started is taken as
 * running: vigild starts them together and announces every change after. */
static const char *
sess_stage(struct relay *rl, enum bus_stage which)
{
	/* This worker runs; relay is as its other workers are (one not running
	 * makes the server degraded, as any stage would). */
	for (int i = 0; which == BUS_RELAY && i < BUS_WORKERS_MAX; i++) {
		if (rl->worker_state[i][0] != '\0' && strcmp(rl->worker_state[i], "running") != 0)
			return rl->worker_state[i];
	}
	if (which == BUS_RELAY)
		return "running";
	if (rl->stage_state[which][0] == '\0')
		return "running";
	return rl->stage_state[which];
}

static void
sess_status(struct relay *rl)
{
	struct ring_sentinel e;
	struct wss_msg m;
	unsigned online = 0;
	bool degraded = false;

	for (uint32_t slot = 0; slot < rl->n_slots; slot++) {
		if (ring_sentinel_get(rl->ring, slot, &e, NULL, 0) == 0 && !id_is_nil(e.id) &&
		    e.online)
			online++;
	}
	for (int i = 0; i < BUS_N_STAGES; i++)
		degraded |= strcmp(sess_stage(rl, (enum bus_stage)i), "running") != 0;
	wss_msg_begin(&m, "server.status", 4);
	mp_pack_kv_str(&m.pk, "state", degraded ? "degraded" : "running");
	mp_pack_kv_int(&m.pk, "sentinels", online);
	/* Every worker's proctors: each counts its own, vigild tells the others'. */
	mp_pack_kv_int(&m.pk, "proctors", (int64_t)rl->proctors + stage_peer_connections(rl->st));
	mp_pack_str(&m.pk, "stages");
	msgpack_pack_map(&m.pk, BUS_N_STAGES);
	for (int i = 0; i < BUS_N_STAGES; i++)
		mp_pack_kv_str(&m.pk, bus_stage_name((enum bus_stage)i),
			       sess_stage(rl, (enum bus_stage)i));
	sess_broadcast(rl, &m);
}

void
relay_sess_tick(struct relay *rl, int64_t now_ms)
{
	int64_t now = now_ms / 1000;

	if (now_ms - rl->last_status_ms >= 1000) {
		rl->last_status_ms = now_ms;
		if (rl->proctors > 0)
			sess_status(rl);
	}
	for (struct wss_conn *c = wss_first(rl->wss); c != NULL; c = wss_next(c)) {
		struct relay_sess *s = relay_conn_sess(c);
		struct wss_msg m;

		if (!s->registered || s->token_expires == 0 || wss_conn_closing(c))
			continue;
		if (now >= s->token_expires) {
			wss_conn_close(c, 3004, "Token expired");
		} else if (!s->expiry_warned && now >= s->token_expires - RELAY_EXPIRY_WARN_S) {
			s->expiry_warned = true;
			wss_msg_begin(&m, "server.token.expiring", 1);
			mp_pack_kv_int(&m.pk, "expiresAt", s->token_expires * 1000);
			wss_msg_send(c, &m);
		}
	}
}
