/* server: vigil-relay around common/wss.h: the ring as reader, the tokens, the
 * ticks and the figures the heartbeats carry. Everything runs in the loop
 * thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp.h"
#include "proc.h"
#include "relay.h"

/* A media message left the queue (sent, dropped, or the proctor went). */
static void
relay_tx_done(void *ctx, struct wss_conn *c, const struct wss_tx_info *tx)
{
	relay_queue_done(tx->owner, tx);
}

/* Tokens, limits and timeouts from the new config apply to what comes next. */
static void
relay_reload(struct relay *rl)
{
	struct tok_store *tokens;

	if (stage_reload(rl->st) < 0)
		return;
	rl->cfg = stage_cfg(rl->st);
	wss_set_cfg(rl->wss, rl->cfg);
	tokens = tok_store_new();
	if (tokens == NULL || tok_store_load(tokens, rl->cfg) < 0 ||
	    stage_set_revoked(rl->st, tokens) < 0) {
		log_error(0, "tokens of the reloaded config not loaded: keeping the old ones");
		tok_store_free(tokens);
		return;
	}
	tok_store_free(rl->tokens);
	rl->tokens = tokens;
}

/* The heartbeat's "stats": counters since start. */
static void
relay_pack_stats(void *ctx, msgpack_packer *pk)
{
	struct relay *rl = ctx;
	struct relay_stats *s = &rl->stats;
	const struct wss_stats *ws = wss_stats(rl->wss);
	struct relay_viewlog_figures vf = { 0 };

	if (rl->views != NULL)
		relay_viewlog_figures(rl->views, &vf);
	msgpack_pack_map(pk, 21);
	mp_pack_kv_int(pk, "proctors", rl->proctors);
	wss_pack_listener(rl->wss, pk);
	mp_pack_kv_int(pk, "connectionsTotal", (int64_t)ws->connections_total);
	mp_pack_kv_int(pk, "registeredTotal", (int64_t)s->registered_total);
	mp_pack_kv_int(pk, "rejectedTotal", (int64_t)s->rejected_total);
	mp_pack_kv_int(pk, "segments", (int64_t)s->segments);
	mp_pack_kv_int(pk, "segmentBytes", (int64_t)s->segment_bytes);
	mp_pack_kv_int(pk, "sentMessages", (int64_t)ws->sent_messages);
	mp_pack_kv_int(pk, "partialWrites", (int64_t)ws->partial_writes);
	mp_pack_kv_int(pk, "skips", (int64_t)s->skips);
	mp_pack_kv_int(pk, "overruns", (int64_t)s->overruns);
	mp_pack_kv_int(pk, "idleCloses", (int64_t)ws->idle_closes);
	mp_pack_kv_int(pk, "closes3006", (int64_t)ws->closes_3006);
	/* Since start, in us: publication in the ring to the feed's read, and to
	 * the last byte of each proctor's copy handed to its socket. The histograms
	 * let a reader take the distribution between two heartbeats. */
	mp_pack_kv_int(pk, "fanoutP50Us", lat_pct(&ws->tx_latency, 0.50));
	mp_pack_kv_int(pk, "fanoutP99Us", lat_pct(&ws->tx_latency, 0.99));
	lat_pack(&ws->tx_latency, pk, "fanoutHist");
	lat_pack(&rl->feed_latency, pk, "feedHist");
	/* The audit records (view.c): the views and their state file since start. */
	mp_pack_str(pk, "views");
	msgpack_pack_map(pk, 8);
	mp_pack_kv_int(pk, "open", (int64_t)vf.open);
	mp_pack_kv_int(pk, "waiting", (int64_t)vf.waiting);
	mp_pack_kv_int(pk, "recovered", (int64_t)vf.recovered);
	mp_pack_kv_int(pk, "fileWrites", (int64_t)vf.writes);
	mp_pack_kv_int(pk, "fileBytes", (int64_t)vf.bytes);
	mp_pack_kv_int(pk, "compactions", (int64_t)vf.compactions);
	mp_pack_kv_int(pk, "compactUs", (int64_t)vf.compact_us);
	mp_pack_kv_int(pk, "fileErrors", (int64_t)vf.errors);
}

static void
relay_tick(void *ctx)
{
	struct relay *rl = ctx;
	int64_t now = proc_now_ms();

	if (stage_take_reload(rl->st))
		relay_reload(rl);
	relay_feed_drain(rl);
	relay_feed_tick(rl, now);
	relay_sess_tick(rl, now);
	relay_mark_tick(rl);
	relay_view_tick(rl);
	stage_load(rl->st, rl->proctors);
	stage_tick(rl->st);
}

static void
relay_message(void *ctx, struct wss_conn *c, const void *buf, size_t len, bool binary,
	      int64_t rx_done_us)
{
	relay_sess_message(ctx, c, buf, len, binary);
}

static void
relay_closed(void *ctx, struct wss_conn *c)
{
	relay_sess_closed(ctx, c);
}

/* The feed thread saw new segments in the ring. */
static void
relay_wake(void *ctx)
{
	struct relay *rl = ctx;

	if (rl->slots != NULL)
		relay_feed_drain(rl);
}

static const struct wss_ops relay_ops = {
	.protocol = "vigil-proctor",
	.path = "/proctor",
	.register_type = "proctor.register",
	.restart_text = "Relay is restarting",
	.conn_size = sizeof(struct relay_sess),
	/* A segment (about 125 KB at 1 Mbit/s) fits the socket whole, so fanning it
	 * out is one send(2) per proctor rather than a partial write that lws copies
	 * and finishes a poll round later. The kernel doubles the value and caps it
	 * at net.core.wmem_max x 2 (416 KiB by default), which also bounds what a
	 * slow proctor's socket holds beyond the relay's own queue bound. */
	.sndbuf = 512 << 10,
	.message = relay_message,
	.closed = relay_closed,
	.tx_done = relay_tx_done,
	.wake = relay_wake,
	.tick = relay_tick,
};

struct relay *
relay_new(struct stage *st, struct relay_viewlog *views)
{
	struct relay *rl = calloc(1, sizeof(*rl));
	char name[64];
	int r;

	if (rl == NULL)
		return NULL;
	rl->st = st;
	rl->cfg = stage_cfg(st);
	rl->views = views;
	snprintf(name, sizeof(name), "/vigil-%s", rl->cfg->instance);
	r = ring_open(name, false, &rl->ring);
	if (r < 0) {
		log_error(r, "ring_open(%s) as reader failed", name);
		goto err_free;
	}
	rl->tokens = tok_store_new();
	if (rl->tokens == NULL || (r = tok_store_load(rl->tokens, rl->cfg)) < 0 ||
	    (r = stage_set_revoked(st, rl->tokens)) < 0) {
		log_error(r, "loading the tokens failed");
		goto err_free;
	}
	stage_on_message(st, relay_sess_bus, rl);
	stage_on_stats(st, relay_pack_stats, rl);
	rl->wss = wss_new(st, &rl->cfg->listen_relay, &relay_ops, rl);
	if (rl->wss == NULL)
		goto err_free;
	r = relay_feed_start(rl);
	if (r < 0) {
		log_error(r, "starting the ring feed failed");
		goto err_free;
	}
	return rl;

err_free:
	relay_free(rl);
	return NULL;
}

void
relay_free(struct relay *rl)
{
	if (rl == NULL)
		return;
	relay_feed_stop(rl);
	/* The proctors still connected go here: their views end (view.c). */
	wss_free(rl->wss);
	relay_mark_free(rl);
	free(rl->slots);
	tok_store_free(rl->tokens);
	ring_close(rl->ring);
	free(rl);
}

int
relay_run(struct relay *rl)
{
	return wss_run(rl->wss);
}
