/* registry: which sentinel holds which ring table slot, who is online, the
 * replacement of an older connection, the bus announcements, and the control
 * messages relay sends through the bus. Runs in the lws service thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest.h"
#include "log.h"
#include "mp.h"
#include "proc.h"

static void
reg_announce(struct ingest *ing, const char *type, const struct ring_sentinel *e, uint32_t slot,
	     const char *reason, int64_t ended_ms)
{
	char id[ID_STR_LEN], session[ID_STR_LEN];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	id_format(e->id, id);
	id_format(e->session, session);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, reason != NULL ? 8 : 5);
	mp_pack_kv_str(&pk, "sentinelId", id);
	mp_pack_kv_str(&pk, "sessionId", session);
	mp_pack_kv_str(&pk, "name", e->name);
	mp_pack_kv_int(&pk, "slot", slot);
	mp_pack_kv_int(&pk, "startedAt", e->session_start_ms);
	if (reason != NULL) {
		mp_pack_kv_str(&pk, "reason", reason);
		mp_pack_kv_int(&pk, "endedAt", ended_ms);
		mp_pack_kv_int(&pk, "lastSequence", e->last_sequence);
	}
	r = stage_send(ing->st, type, "*", sb.data, sb.size);
	if (r < 0 && r != -ENOTCONN)
		log_warn(r, "%s for %s not sent on the bus", type, id);
	msgpack_sbuffer_destroy(&sb);
}

int
ingest_reg_init(struct ingest *ing)
{
	struct ring_sentinel e;
	int64_t now = proc_now_ms();

	ing->n_slots = ring_sentinel_slots(ing->ring);
	ing->by_slot = calloc(ing->n_slots, sizeof(*ing->by_slot));
	ing->last_seen_ms = calloc(ing->n_slots, sizeof(*ing->last_seen_ms));
	if (ing->by_slot == NULL || ing->last_seen_ms == NULL)
		return -ENOMEM;
	/* Sentinels marked online belonged to a previous ingest: their connections
	 * died with it. Their sessions end now; the sentinels reconnect. */
	for (uint32_t slot = 0; slot < ing->n_slots; slot++) {
		if (ring_sentinel_get(ing->ring, slot, &e, NULL, 0) < 0)
			continue;
		ing->last_seen_ms[slot] = e.session_start_ms;
		if (!e.online)
			continue;
		e.online = false;
		ring_sentinel_put(ing->ring, slot, &e, NULL, 0);
		reg_announce(ing, "sentinel.offline", &e, slot, "ingest restarted", now);
		ing->last_seen_ms[slot] = now;
	}
	return 0;
}

void
ingest_reg_free(struct ingest *ing)
{
	free(ing->by_slot);
	free(ing->last_seen_ms);
	ing->by_slot = NULL;
	ing->last_seen_ms = NULL;
}

unsigned
ingest_reg_count(const struct ingest *ing)
{
	return ing->online;
}

/* The slot an unknown sentinel gets: a free one, else the one offline longest. */
static int
reg_new_slot(struct ingest *ing, uint32_t *ret_slot)
{
	static const uint8_t zero[16];
	int64_t oldest = INT64_MAX;
	uint32_t best = UINT32_MAX;

	if (ring_sentinel_find(ing->ring, zero, ret_slot) == 0)
		return 0;
	for (uint32_t slot = 0; slot < ing->n_slots; slot++) {
		if (ing->by_slot[slot] == NULL && ing->last_seen_ms[slot] < oldest) {
			oldest = ing->last_seen_ms[slot];
			best = slot;
		}
	}
	if (best == UINT32_MAX)
		return -EBUSY;
	*ret_slot = best;
	return 0;
}

int
ingest_reg_online(struct ingest *ing, struct wss_conn *c)
{
	struct ingest_sess *s = ingest_conn_sess(c);
	struct wss_conn *old = NULL;
	uint32_t slot;
	int r;

	if (ring_sentinel_find(ing->ring, s->id, &slot) == 0)
		old = ing->by_slot[slot];
	else if ((r = reg_new_slot(ing, &slot)) < 0)
		return r;
	/* A replacement takes the place of the connection it replaces. */
	if (old == NULL && ing->online >= (unsigned)ing->cfg->max_sentinels)
		return -EBUSY;
	if (old != NULL) {
		ing->stats.replaced_total++;
		log_info("sentinel %s: a newer connection replaces session %s", s->id_str,
			 ingest_conn_sess(old)->session_str);
		ingest_reg_offline(ing, old, "replaced");
		wss_conn_close(old, 3008, "Replaced by a newer connection");
	}
	memcpy(s->entry.id, s->id, sizeof(s->id));
	memcpy(s->entry.session, s->session, sizeof(s->session));
	s->entry.codec[0] = '\0';
	s->entry.width = s->entry.height = s->entry.timescale = 0;
	s->entry.online = true;
	s->entry.last_sequence = -1;
	s->entry.init_gen = 0;
	s->entry.session_start_ms = s->started_ms;
	/* An empty init: the previous session's init does not describe this one. */
	r = ring_sentinel_put(ing->ring, slot, &s->entry, "", 0);
	if (r < 0)
		return r;
	s->slot = slot;
	s->registered = true;
	ing->by_slot[slot] = c;
	ing->online++;
	ing->last_seen_ms[slot] = proc_now_ms();
	reg_announce(ing, "sentinel.online", &s->entry, slot, NULL, 0);
	return 0;
}

void
ingest_reg_offline(struct ingest *ing, struct wss_conn *c, const char *reason)
{
	struct ingest_sess *s = ingest_conn_sess(c);
	int64_t now = proc_now_ms();

	if (!s->registered)
		return;
	s->registered = false;
	s->entry.online = false;
	ring_sentinel_put(ing->ring, s->slot, &s->entry, NULL, 0);
	if (ing->by_slot[s->slot] == c) {
		ing->by_slot[s->slot] = NULL;
		ing->online--;
		ingest_kf_offline(ing, s->slot);
	}
	ing->last_seen_ms[s->slot] = now;
	reg_announce(ing, "sentinel.offline", &s->entry, s->slot, reason, now);
}

static struct wss_conn *
reg_lookup(struct ingest *ing, const msgpack_object *body)
{
	char idbuf[ID_STR_LEN];
	uint8_t id[16];
	uint32_t slot;

	if (mp_get_strbuf(body, "sentinelId", idbuf, sizeof(idbuf)) < 0 ||
	    id_parse(idbuf, id) < 0 || ring_sentinel_find(ing->ring, id, &slot) < 0)
		return NULL;
	return ing->by_slot[slot];
}

static void
reg_forward(struct wss_conn *c, const char *type, double framerate)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	env_pack_header(&pk, type, time(NULL));
	if (framerate > 0) {
		msgpack_pack_map(&pk, 1);
		mp_pack_kv_double(&pk, "framerate", framerate);
	} else {
		msgpack_pack_map(&pk, 0);
	}
	wss_conn_send(c, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

void
ingest_reg_keyframe(struct ingest *ing, struct wss_conn *c)
{
	if (ingest_conn_sess(c)->jpeg != NULL)
		ingest_jpeg_force_key(ingest_conn_sess(c)->jpeg);
	else
		reg_forward(c, "server.keyframe.request", 0);
	(void)ing;
}

/* Bus messages for ingest: keyframe.request { sentinelId } and
 * fps.change { sentinelId, framerate } from relay; token.revoke { token }
 * from the operator console; revoked { digests } from vigild (the durable
 * list, which stage.c has already taken); shutdown.notice { at } from vigild. */
void
ingest_reg_bus(void *ctx, const struct bus_msg *msg)
{
	struct ingest *ing = ctx;
	struct wss_conn *c;
	double fps;
	int64_t at;

	if (strcmp(msg->type, "keyframe.request") == 0) {
		/* Throttled here, where every relay worker's requests meet. */
		c = reg_lookup(ing, msg->body);
		if (c != NULL)
			ingest_kf_request(ing, ingest_conn_sess(c)->slot);
	} else if (strcmp(msg->type, "fps.change") == 0) {
		c = reg_lookup(ing, msg->body);
		if (c != NULL && mp_get_double(msg->body, "framerate", &fps) == 0 && fps > 0)
			reg_forward(c, "server.fps.change", fps);
	} else if (strcmp(msg->type, "token.revoke") == 0) {
		wss_revoke(ing->wss, ing->tokens, msg->body);
	} else if (strcmp(msg->type, "revoked") == 0) {
		size_t n;
		const uint8_t *digests = stage_revoked(ing->st, &n);

		if (wss_revoke_list(ing->wss, ing->tokens, digests, n) < 0)
			log_error(-ENOMEM, "the revocation list was not applied");
	} else if (strcmp(msg->type, "shutdown.notice") == 0) {
		if (mp_get_int(msg->body, "at", &at) == 0)
			wss_shutdown_notice(ing->wss, at);
	}
}

void
ingest_reg_check_tokens(struct ingest *ing, int64_t now)
{
	for (uint32_t slot = 0; slot < ing->n_slots; slot++) {
		struct wss_conn *c = ing->by_slot[slot];
		struct ingest_sess *s;

		if (c == NULL)
			continue;
		s = ingest_conn_sess(c);
		if (s->token_expires != 0 && now >= s->token_expires && !wss_conn_closing(c))
			wss_conn_close(c, 3004, "Token expired");
	}
}
