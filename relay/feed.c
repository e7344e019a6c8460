/* feed: vigil-relay's reader of the ring. A helper thread sleeps in ring_wait
 * and wakes the lws loop (wss_wake); the loop then reads every new
 * segment once into one refcounted buffer that holds the packed server.segment
 * and queues that buffer to each subscribed proctor. Join points, fresh inits,
 * skips of slow proctors and ring overruns are decided here. Everything but
 * feed_main runs in the lws service thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mp.h"
#include "proc.h"
#include "relay.h"

#define FEED_WAIT_MS 1000 /* the helper thread looks at its stop flag this often */

/* One segment being fanned out: its message is built on first need. */
struct feed_seg {
	struct ring_seg meta;
	const void *data;
	struct wss_buf *msg;
	bool bad; /* overrun while copied */
	struct wss_buf *init;
	bool init_tried;
	uint32_t init_gen;
};

/* The helper thread: the only code here that runs outside the service thread. */
static void *
feed_main(void *arg)
{
	struct relay *rl = arg;
	uint64_t seen = ring_head(rl->ring), head;

	while (!atomic_load(&rl->feed_stop)) {
		ring_wait(rl->ring, seen, FEED_WAIT_MS);
		head = ring_head(rl->ring);
		if (head != seen) {
			seen = head;
			wss_wake(rl->wss);
		}
	}
	return NULL;
}

int
relay_feed_start(struct relay *rl)
{
	struct ring_stats rs;
	int r;

	ring_get_stats(rl->ring, &rs);
	rl->n_slots = ring_sentinel_slots(rl->ring);
	rl->slots = calloc(rl->n_slots, sizeof(*rl->slots));
	rl->init_size = rs.max_init_bytes;
	rl->init_buf = malloc(rl->init_size);
	if (rl->slots == NULL || rl->init_buf == NULL)
		return -ENOMEM;
	/* Proctors see what is published from now on, and what they join back to. */
	rl->next_index = ring_head(rl->ring);
	r = -pthread_create(&rl->feed_thread, NULL, feed_main, rl);
	if (r < 0)
		return r;
	rl->feed_started = true;
	return 0;
}

void
relay_feed_stop(struct relay *rl)
{
	if (rl->feed_started) {
		atomic_store(&rl->feed_stop, true);
		ring_wake_all(rl->ring);
		pthread_join(rl->feed_thread, NULL);
		rl->feed_started = false;
	}
	for (uint32_t i = 0; rl->slots != NULL && i < rl->n_slots; i++) {
		wss_buf_unref(rl->slots[i].msg);
		rl->slots[i].msg = NULL;
	}
	free(rl->init_buf);
	rl->init_buf = NULL;
}

int64_t
relay_feed_bitrate(struct relay *rl, uint32_t slot)
{
	int64_t now = proc_now_ms() / 1000, bytes = 0;
	struct relay_slot *s;

	if (slot >= rl->n_slots)
		return 0;
	s = &rl->slots[slot];
	for (int i = 0; i < 5; i++) {
		if (s->bucket_sec[i] > now - 5 && s->bucket_sec[i] <= now)
			bytes += s->bucket_bytes[i];
	}
	return bytes * 8 / 5;
}

static void
feed_count(struct relay *rl, uint32_t slot, const struct ring_seg *m)
{
	uint32_t len = m->len;
	int64_t now = proc_now_ms() / 1000;
	struct relay_slot *s;
	int i = (int)(now % 5);

	if (slot >= rl->n_slots)
		return;
	s = &rl->slots[slot];
	if (s->bucket_sec[i] != now) {
		s->bucket_sec[i] = now;
		s->bucket_bytes[i] = 0;
	}
	s->bucket_bytes[i] += len;
}

/* Ingest throttles keyframe requests (one a second per sentinel, where every
 * worker's requests meet, and asks again while no join point follows). Here
 * they are only merged so that a burst of proctors' requests does not flood
 * the bus: one per sentinel per FEED_KF_BUS_MS, the rest at its end. */
#define FEED_KF_BUS_MS 250

static void
feed_send_keyframe(struct relay *rl, uint32_t slot, int64_t now)
{
	struct relay_slot *s = &rl->slots[slot];
	struct ring_sentinel e;
	char id[ID_STR_LEN];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	s->last_kf_ms = now;
	s->kf_pending = false;
	if (ring_sentinel_get(rl->ring, slot, &e, NULL, 0) < 0 || !e.online)
		return;
	id_format(e.id, id);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_str(&pk, "sentinelId", id);
	r = stage_send(rl->st, "keyframe.request", "ingest", sb.data, sb.size);
	if (r < 0 && r != -ENOTCONN)
		log_warn(r, "keyframe.request for %s not sent", id);
	msgpack_sbuffer_destroy(&sb);
}

void
relay_feed_keyframe(struct relay *rl, uint32_t slot)
{
	int64_t now = proc_mono_ms();

	if (slot >= rl->n_slots)
		return;
	if (now - rl->slots[slot].last_kf_ms >= FEED_KF_BUS_MS || rl->slots[slot].last_kf_ms == 0)
		feed_send_keyframe(rl, slot, now);
	else
		rl->slots[slot].kf_pending = true;
}

void
relay_feed_tick(struct relay *rl, int64_t now_ms)
{
	int64_t now = proc_mono_ms();

	(void)now_ms;
	for (uint32_t slot = 0; slot < rl->n_slots; slot++) {
		struct relay_slot *s = &rl->slots[slot];

		if (s->kf_pending && now - s->last_kf_ms >= FEED_KF_BUS_MS)
			feed_send_keyframe(rl, slot, now);
	}
}

/* The packed server.segment: the envelope, then the bytes as the bin "data",
 * copied from the ring once and checked after the copy. NULL when overrun. */
static struct wss_buf *
feed_seg_msg(struct relay *rl, struct feed_seg *fs, const char *id_str)
{
	struct ring_seg *m = &fs->meta;
	struct relay_slot *slot;
	char session[ID_STR_LEN];
	struct wss_buf *b;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (fs->msg != NULL || fs->bad)
		return fs->msg;
	slot = &rl->slots[m->sentinel];
	if (slot->msg != NULL && slot->msg_index == m->index) {
		wss_buf_ref(slot->msg);
		fs->msg = slot->msg;
		return fs->msg;
	}
	id_format(m->session, session);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	env_pack_header(&pk, "server.segment", time(NULL));
	msgpack_pack_map(&pk, 7);
	mp_pack_kv_str(&pk, "sentinelId", id_str);
	mp_pack_kv_str(&pk, "sessionId", session);
	mp_pack_kv_int(&pk, "sequence", m->sequence);
	mp_pack_kv_int(&pk, "startTime", m->start_ms);
	mp_pack_kv_int(&pk, "duration", m->duration_ms);
	mp_pack_kv_bool(&pk, "keyframe", (m->flags & RING_SEG_KEYFRAME) != 0);
	mp_pack_str(&pk, "data");
	msgpack_pack_bin(&pk, m->len);
	b = wss_buf_new(sb.size + m->len, true);
	if (b != NULL) {
		memcpy(wss_buf_data(b), sb.data, sb.size);
		memcpy(wss_buf_data(b) + sb.size, fs->data, m->len);
		if (ring_check(rl->ring, m) < 0) {
			wss_buf_unref(b);
			b = NULL;
			rl->stats.overruns++;
		}
	}
	msgpack_sbuffer_destroy(&sb);
	fs->msg = b;
	fs->bad = b == NULL;
	if (b != NULL) {
		rl->stats.segments++;
		rl->stats.segment_bytes += m->len;
		wss_buf_unref(slot->msg);
		wss_buf_ref(b);
		slot->msg = b;
		slot->msg_index = m->index;
	}
	return b;
}

/* The packed server.init of the segment's sentinel as the table has it now. */
static struct wss_buf *
feed_init_msg(struct relay *rl, struct feed_seg *fs, const char *id_str)
{
	struct ring_sentinel e;
	char session[ID_STR_LEN];
	struct wss_buf *b;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (fs->init_tried)
		return fs->init;
	fs->init_tried = true;
	if (ring_sentinel_get(rl->ring, fs->meta.sentinel, &e, rl->init_buf, rl->init_size) < 0 ||
	    e.init_len == 0 || memcmp(e.session, fs->meta.session, 16) != 0)
		return NULL;
	/* A segment made with an init the table no longer holds cannot be decoded. */
	if (fs->meta.init_gen != 0 && e.init_gen != fs->meta.init_gen)
		return NULL;
	id_format(e.session, session);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	env_pack_header(&pk, "server.init", time(NULL));
	msgpack_pack_map(&pk, 6);
	mp_pack_kv_str(&pk, "sentinelId", id_str);
	mp_pack_kv_str(&pk, "sessionId", session);
	mp_pack_kv_str(&pk, "codec", e.codec);
	mp_pack_kv_int(&pk, "width", e.width);
	mp_pack_kv_int(&pk, "height", e.height);
	mp_pack_kv_bin(&pk, "data", rl->init_buf, e.init_len);
	b = wss_buf_new(sb.size, true);
	if (b != NULL)
		memcpy(wss_buf_data(b), sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	fs->init = b;
	fs->init_gen = e.init_gen;
	return b;
}

static void
feed_send_skip(struct wss_conn *c, struct relay_sub *sub, int64_t from, int64_t to)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	env_pack_header(&pk, "server.skip", time(NULL));
	msgpack_pack_map(&pk, 3);
	mp_pack_kv_str(&pk, "sentinelId", sub->id_str);
	mp_pack_kv_int(&pk, "fromSequence", from);
	mp_pack_kv_int(&pk, "toSequence", to);
	wss_conn_send(c, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* A segment of this sub's sentinel was lost to an overrun: report it when the
 * stream resumes at the next keyframe. */
static void
feed_lost(struct relay_sub *sub, int64_t seq)
{
	if (sub->state != RELAY_SUB_STREAM && sub->skip_from < 0)
		return;
	sub->state = RELAY_SUB_WAIT_KEY;
	if (sub->skip_from < 0)
		sub->skip_from = sub->last_seq >= 0 ? sub->last_seq + 1 : seq;
}

/* Offers one segment of the sub's sentinel to one proctor. */
static void
feed_offer(struct relay *rl, struct wss_conn *c, struct relay_sub *sub, struct feed_seg *fs,
	   bool catchup)
{
	const struct ring_seg *m = &fs->meta;
	int64_t from, to;
	struct wss_buf *msg, *init;

	if (sub->state == RELAY_SUB_STREAM && memcmp(sub->session, m->session, 16) != 0)
		sub->state = RELAY_SUB_WAIT_KEY; /* a new session starts at its keyframe */
	if (sub->state == RELAY_SUB_WAIT_KEY && !(m->flags & RING_SEG_KEYFRAME))
		return;
	msg = feed_seg_msg(rl, fs, sub->id_str);
	if (msg == NULL) {
		feed_lost(sub, m->sequence);
		return;
	}
	if (sub->state == RELAY_SUB_WAIT_KEY && sub->skip_from >= 0) {
		if (sub->skip_from <= m->sequence - 1)
			feed_send_skip(c, sub, sub->skip_from, m->sequence - 1);
		sub->skip_from = -1;
		rl->stats.skips++;
	}
	if (sub->init_gen != m->init_gen || memcmp(sub->session, m->session, 16) != 0) {
		init = feed_init_msg(rl, fs, sub->id_str);
		if (init == NULL)
			return; /* no init for it: nothing could decode it */
		if (relay_conn_queue(c, init, sub, -1, 0, catchup, 0) < 0)
			return;
		sub->init_gen = fs->init_gen;
		memcpy(sub->session, m->session, 16);
	}
	if (relay_conn_queue(c, msg, sub, m->sequence, m->duration_ms, catchup,
			     catchup ? 0 : m->publish_us) < 0)
		return;
	sub->state = RELAY_SUB_STREAM;
	sub->last_seq = m->sequence;
	if (catchup || !relay_queue_over(rl, sub))
		return;
	/* Too slow: what is queued goes, the stream resumes at the next keyframe. */
	wss_conn_drop(c, sub, &from, &to);
	if (from >= 0)
		feed_send_skip(c, sub, from, to);
	rl->stats.skips++;
	sub->state = RELAY_SUB_WAIT_KEY;
	sub->skip_from = to + 1;
	sub->init_gen = 0; /* the queued init may have gone with them */
	log_debug("proctor %s: sentinel %s skipped %lld..%lld", relay_conn_sess(c)->id_str,
		  sub->id_str, (long long)from, (long long)to);
}

static struct relay_sub *
feed_sub_of(struct wss_conn *c, const uint8_t id[16])
{
	for (struct relay_sub *sub = relay_conn_sess(c)->subs; sub != NULL; sub = sub->next) {
		if (memcmp(sub->id, id, 16) == 0)
			return sub;
	}
	return NULL;
}

static void
feed_seg_done(struct feed_seg *fs)
{
	wss_buf_unref(fs->msg);
	wss_buf_unref(fs->init);
}

/* Overrun of an index whose owner is unknown: every stream may have lost one. */
static void
feed_lost_all(struct relay *rl)
{
	rl->stats.overruns++;
	for (struct wss_conn *c = wss_first(rl->wss); c != NULL; c = wss_next(c)) {
		for (struct relay_sub *sub = relay_conn_sess(c)->subs; sub != NULL; sub = sub->next)
			feed_lost(sub, sub->last_seq + 1);
	}
}

static void
feed_one(struct relay *rl, uint64_t index)
{
	struct feed_seg fs = { 0 };
	struct ring_sentinel e;
	int r;

	r = ring_peek(rl->ring, index, &fs.meta, &fs.data);
	if (r == -ESTALE) {
		feed_lost_all(rl);
		return;
	}
	if (r < 0)
		return;
	lat_add(&rl->feed_latency, proc_unix_us() - fs.meta.publish_us);
	feed_count(rl, fs.meta.sentinel, &fs.meta);
	/* The table names the slot's sentinel; a segment of an older session, or
	 * of a slot given to another sentinel since, goes to nobody. */
	if (ring_sentinel_get(rl->ring, fs.meta.sentinel, &e, NULL, 0) < 0 ||
	    memcmp(e.session, fs.meta.session, 16) != 0)
		return;
	for (struct wss_conn *c = wss_first(rl->wss); c != NULL; c = wss_next(c)) {
		struct relay_sub *sub;

		if (!relay_conn_sess(c)->registered || wss_conn_closing(c))
			continue;
		sub = feed_sub_of(c, e.id);
		if (sub != NULL)
			feed_offer(rl, c, sub, &fs, false);
	}
	feed_seg_done(&fs);
}

void
relay_feed_drain(struct relay *rl)
{
	uint64_t head = ring_head(rl->ring), tail;

	if (rl->next_index >= head)
		return;
	tail = ring_tail(rl->ring);
	if (rl->next_index < tail) {
		feed_lost_all(rl);
		rl->next_index = tail;
	}
	for (; rl->next_index < head; rl->next_index++)
		feed_one(rl, rl->next_index);
}

void
relay_feed_subscribe(struct relay *rl, struct wss_conn *c, struct relay_sub *sub, bool oldest,
		     int64_t slot_hint)
{
	struct ring_sentinel e;
	struct feed_seg fs;
	uint64_t join;
	uint32_t slot = (uint32_t)slot_hint;
	int r;

	sub->state = RELAY_SUB_WAIT_KEY;
	if (slot_hint < 0 || ring_sentinel_get(rl->ring, slot, &e, NULL, 0) < 0 ||
	    memcmp(e.id, sub->id, 16) != 0 || !e.online)
		return; /* the stream starts with its session's first keyframe */
	/* "oldest" is buffer_seconds back from the live edge, whatever more the
	 * ring holds (a large ring keeps many minutes of a sentinel). */
	r = oldest ? ring_find_join_within(rl->ring, slot, e.session,
					   rl->cfg->buffer_seconds * 1000, &join)
		   : ring_find_join(rl->ring, slot, e.session, true, &join);
	if (r < 0) {
		/* The init now, the segments from the next join point on. */
		memset(&fs, 0, sizeof(fs));
		fs.meta.sentinel = slot;
		memcpy(fs.meta.session, e.session, 16);
		if (feed_init_msg(rl, &fs, sub->id_str) != NULL &&
		    relay_conn_queue(c, fs.init, sub, -1, 0, true, 0) == 0) {
			sub->init_gen = fs.init_gen;
			memcpy(sub->session, e.session, 16);
		}
		feed_seg_done(&fs);
		relay_feed_keyframe(rl, slot);
		return;
	}
	/* The catch-up: what the feed has passed already, from the join point. */
	for (uint64_t i = join; i < rl->next_index; i++) {
		memset(&fs, 0, sizeof(fs));
		if (ring_peek(rl->ring, i, &fs.meta, &fs.data) < 0) {
			feed_lost(sub, sub->last_seq + 1);
			continue;
		}
		if (fs.meta.sentinel == slot && memcmp(fs.meta.session, e.session, 16) == 0)
			feed_offer(rl, c, sub, &fs, true);
		feed_seg_done(&fs);
	}
}

void
relay_feed_online(struct relay *rl, const uint8_t id[16])
{
	uint32_t slot;

	if (ring_sentinel_find(rl->ring, id, &slot) < 0)
		return;
	for (struct wss_conn *c = wss_first(rl->wss); c != NULL; c = wss_next(c)) {
		struct relay_sub *sub = feed_sub_of(c, id);

		if (sub != NULL && sub->state == RELAY_SUB_WAIT_KEY) {
			relay_feed_keyframe(rl, slot);
			return;
		}
	}
}
