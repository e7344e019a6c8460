/* relay: internal interfaces of vigil-relay, the proctors' WebSocket server
 * and a reader of the ring.
 *
 *   server.c   setup, ticks and figures around common/wss.h, which serves the
 *              WebSockets (listening socket from vigild, rx limits, a tx queue
 *              of shared buffers, close codes, register and idle timers)
 *   session.c  PROTOCOL.md section 5 for one proctor: register, list,
 *              subscribe, control requests, token refresh; bus events
 *   feed.c     the ring reader: a helper thread waits on the ring and wakes the
 *              loop; each new segment is read once into one buffer that every
 *              subscribed proctor's queue shares; join points, inits, skips
 *   queue.c    what each subscription has queued (media time and bytes) and
 *              the bound past which a slow proctor is skipped
 *   view.c     the audit records: a live.view per subscription and sentinel
 *              session (when each begins and ends), auth.failed for refused tokens
 *   viewlog.c  the views from their start until their record is durable, in a
 *              state file that a relay killed mid-view reads when it starts again
 *   mark.c     proctor.mark: checked, stored by archive over the bus, then
 *              server.mark to the maker and the sentinel's subscribers
 * Everything runs in the one lws service thread except feed.c's wait thread,
 * which only calls ring_wait and wss_wake.
 */
#ifndef VIGIL_RELAY_H
#define VIGIL_RELAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "cfg.h"
#include "env.h"
#include "id.h"
#include "lat.h"
#include "ring.h"
#include "stage.h"
#include "tok.h"
#include "viewlog.h"
#include "wss.h"

/* server.error codes (the same vocabulary as ingest, docs/protocol.md) */
enum relay_err {
	RELAY_ERR_BAD_REQUEST = 400,
	RELAY_ERR_UNAUTHORIZED = 401,
	RELAY_ERR_NOT_FOUND = 404,
	RELAY_ERR_CONFLICT = 409,
	RELAY_ERR_TOO_MANY = 429,
	RELAY_ERR_INTERNAL = 500,
	RELAY_ERR_UNAVAILABLE = 503,
};

/* A subscription of one proctor to one sentinel.
 *
 *   WAIT_KEY --keyframe segment of the sentinel's current session--> STREAM
 *   STREAM --queue over proctor_queue_seconds, ring overrun--> WAIT_KEY (skipping)
 *   STREAM --segment of a new session--> WAIT_KEY
 */
enum relay_sub_state {
	RELAY_SUB_WAIT_KEY,
	RELAY_SUB_STREAM,
};

struct relay_sub {
	struct relay_sub *next;
	uint8_t id[16];
	char id_str[ID_STR_LEN];
	enum relay_sub_state state;
	uint8_t session[16]; /* of the last init sent; zero: none */
	uint32_t init_gen;   /* of the last init sent; 0: none */
	int64_t last_seq;    /* last sequence queued, -1 none */
	int64_t skip_from;   /* -1: nothing skipped to report at the next keyframe */
	int64_t skip_to;
	int64_t queued_ms;     /* media queued and unsent, live part */
	uint64_t queued_bytes; /* the same in bytes: a bound for segments without durations */
	int64_t catchup_ms;    /* media queued and unsent from the join point at subscribe */
	/* view.c: the sentinel's ring slot as last found (-1: none), and the
	 * view of its session this subscription has open (NULL: none). */
	int64_t slot;
	struct relay_view *view;
	uint8_t view_session[16];
};

/* Per-proctor protocol state, owned by session.c. */
struct relay_sess {
	bool registered;
	char id_str[ID_STR_LEN];
	char name[128];
	int64_t token_expires; /* unix seconds, 0 never */
	bool expiry_warned;
	struct relay_sub *subs;
	/* The token's configured name and role, for the audit records (the token
	 * store may be replaced by a reload while the proctor stays). */
	char *actor;
	enum cfg_role role;
	unsigned marks_waiting; /* mark.c: its proctor.marks archive has not answered */
};

/* Per-ring-slot figures the feed keeps. */
struct relay_slot {
	int64_t bucket_bytes[5]; /* bytes of segments seen per second, for the bitrate */
	int64_t bucket_sec[5];
	int64_t last_kf_ms; /* last keyframe.request sent to ingest (which throttles them) */
	bool kf_pending;    /* one more asked for since: sent when the bus's interval is over */
	/* The newest server.segment built for this slot and its ring index: a grid
	 * of proctors joining at once shares it instead of each copying it. */
	struct wss_buf *msg;
	uint64_t msg_index;
	/* view.c: the slot's sentinel and session as the views know them. */
	uint8_t seen_id[16], seen_session[16];
	bool seen_online;
};

struct relay_stats {
	uint64_t registered_total, rejected_total;
	uint64_t segments, segment_bytes, skips, overruns;
};

struct relay {
	struct stage *st;
	const struct cfg *cfg;
	struct ring *ring;
	struct tok_store *tokens;
	struct wss *wss;
	unsigned proctors; /* registered */
	struct relay_stats stats;
	struct lat feed_latency; /* a segment's publication in the ring to the feed reading it */
	int64_t last_status_ms;
	/* stage states heard on the bus, index enum bus_stage; the other relay
	 * workers' by their index ("" for this one, and until heard of) */
	char stage_state[BUS_N_STAGES][16];
	char worker_state[BUS_WORKERS_MAX][16];
	/* view.c: the views' state file, and a slot changed since the views looked. */
	struct relay_viewlog *views;
	bool views_dirty;
	/* feed.c */
	uint32_t n_slots;
	struct relay_slot *slots;
	uint64_t next_index; /* the next ring index the feed reads */
	uint8_t *init_buf;   /* max_init_bytes, for ring_sentinel_get */
	uint32_t init_size;
	pthread_t feed_thread;
	bool feed_started;
	atomic_bool feed_stop;
	/* mark.c: proctor.marks waiting for archive's answer, and the last ref */
	struct relay_mark *marks;
	int64_t mark_ref;
};

/* queue.c */
/* Queues a shared media buffer for sub (takes a reference) and counts its
 * duration and bytes against the proctor's queue bound until it is sent or
 * dropped. stamp_us: its publication in the ring, for the fan-out latency; 0
 * not timed. catchup: from the join point at subscribe, not counted against
 * the bound (the proctor asked for that much at once). */
int relay_conn_queue(struct wss_conn *c, struct wss_buf *b, struct relay_sub *sub, int64_t seq,
		     uint32_t dur_ms, bool catchup, int64_t stamp_us);
/* One queued by relay_conn_queue left the queue (wss's tx_done). */
void relay_queue_done(struct relay_sub *sub, const struct wss_tx_info *tx);
/* sub's live queue is past limits.proctor_queue_seconds (or its bytes). */
bool relay_queue_over(const struct relay *rl, const struct relay_sub *sub);

/* server.c */
/* views: the state file of the proctors' views (relay_view_open); NULL to run
 * without. It outlives the relay: the records of the views relay_free ends
 * are confirmed while stage_free waits, and only then is it closed. */
struct relay *relay_new(struct stage *st, struct relay_viewlog *views);
void relay_free(struct relay *rl);
int relay_run(struct relay *rl);

/* The protocol state of a proctor connection (wss's per-connection data). */
static inline struct relay_sess *
relay_conn_sess(struct wss_conn *c)
{
	return wss_conn_data(c);
}

/* session.c */
void relay_sess_message(struct relay *rl, struct wss_conn *c, const void *buf, size_t len,
			bool binary);
void relay_sess_closed(struct relay *rl, struct wss_conn *c);
void relay_sess_bus(void *ctx, const struct bus_msg *msg);
void relay_sess_tick(struct relay *rl, int64_t now_ms);
/* Packs the Sentinel object of a ring slot (PROTOCOL.md section 5). */
void relay_pack_sentinel(struct relay *rl, msgpack_packer *pk, uint32_t slot,
			 const struct ring_sentinel *e);

/* feed.c */
int relay_feed_start(struct relay *rl);
void relay_feed_stop(struct relay *rl);
/* In the service thread: fans out every segment published since the last call. */
void relay_feed_drain(struct relay *rl);
/* Starts a subscription: init and join point, or wait for one. */
/* slot: the sentinel's ring slot as the subscriber looked it up, -1 when the
 * ring has no such sentinel (yet). */
void relay_feed_subscribe(struct relay *rl, struct wss_conn *c, struct relay_sub *sub, bool oldest,
			  int64_t slot);
void relay_feed_keyframe(struct relay *rl, uint32_t slot);
void relay_feed_tick(struct relay *rl, int64_t now_ms);
int64_t relay_feed_bitrate(struct relay *rl, uint32_t slot);
/* A sentinel came online: its subscriptions wait for the new session's keyframe. */
void relay_feed_online(struct relay *rl, const uint8_t id[16]);

/* mark.c */
/* proctor.mark { sentinelId, at?, kind?, note }: refused with server.error, or
 * sent to archive; the answer comes with relay_mark_bus. */
void relay_mark_request(struct relay *rl, struct wss_conn *c, const msgpack_object *p);
/* mark.added from archive (true when msg was one): server.mark, or the error. */
bool relay_mark_bus(struct relay *rl, const struct bus_msg *msg);
/* Every tick: marks asked again, or given up (503). */
void relay_mark_tick(struct relay *rl);
/* Archive runs (again): every waiting mark is asked again now. */
void relay_mark_archive_up(struct relay *rl);
/* The proctor has gone: its waiting marks are answered to nobody. */
void relay_mark_closed(struct relay *rl, struct wss_conn *c);
void relay_mark_free(struct relay *rl);

/* view.c */
/* The state file of this relay process, data_dir/audit/relay-<worker>.views,
 * with what a killed predecessor left in it recorded. When it cannot be used
 * (logged), a viewlog without a file: views are then recorded when they end,
 * and lost if relay is killed first. NULL only when memory ran out. */
struct relay_viewlog *relay_view_open(struct stage *st);
/* sub's view follows its sentinel: open while it is online, one per session.
 * Called when sub is made (sub->slot: the ring slot found, or -1). */
void relay_view_sub(struct relay *rl, struct wss_conn *c, struct relay_sub *sub);
/* The subscription ends (unsubscribe, close): so does its view. */
void relay_view_end(struct relay *rl, struct relay_sub *sub);
/* A sentinel came online or went offline (the bus): views follow now. */
void relay_view_changed(struct relay *rl);
/* Every tick: sessions that began or ended since, the state file's tick. */
void relay_view_tick(struct relay *rl);
/* A proctor's token was refused (register or refresh): auth.failed, at most
 * AUDIT_REFUSALS_PER_S a second (common/audit.h). who: the token's entry when
 * the store knows it. */
void relay_view_refused(struct relay *rl, struct wss_conn *c, const struct tok_info *who,
			const char *reason);

#endif
