/* server: vigil-ingest around common/wss.h: the ring as writer, the tokens,
 * the ticks (config reload, token expiry, heartbeats) and the figures the
 * heartbeats carry. Everything runs in the lws service thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gst/gst.h>

#include "ingest.h"
#include "log.h"
#include "mp.h"

/* Tokens, limits and timeouts from the new config apply to what comes next;
 * listen and ring take a vigild restart (vigild says so when it reloads). */
static void
ingest_reload(struct ingest *ing)
{
	struct tok_store *tokens;

	if (stage_reload(ing->st) < 0)
		return;
	ing->cfg = stage_cfg(ing->st);
	wss_set_cfg(ing->wss, ing->cfg);
	tokens = tok_store_new();
	if (tokens == NULL || tok_store_load(tokens, ing->cfg) < 0 ||
	    stage_set_revoked(ing->st, tokens) < 0) {
		log_error(0, "tokens of the reloaded config not loaded: keeping the old ones");
		tok_store_free(tokens);
		return;
	}
	tok_store_free(ing->tokens);
	ing->tokens = tokens;
}

static int
ingest_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The heartbeat's "stats": counters since start, and the latency from a
 * segment's last byte received to its being visible in the ring over the
 * segments since the previous heartbeat (microseconds). */
static void
ingest_pack_stats(void *ctx, msgpack_packer *pk)
{
	struct ingest *ing = ctx;
	struct ingest_stats *st = &ing->stats;
	const struct wss_stats *ws = wss_stats(ing->wss);
	uint32_t n = st->n_lat;

	qsort(st->lat_us, n, sizeof(st->lat_us[0]), ingest_cmp_u32);
	msgpack_pack_map(pk, 21);
	mp_pack_kv_int(pk, "sentinelsOnline", ing->online);
	wss_pack_listener(ing->wss, pk);
	mp_pack_kv_int(pk, "connectionsTotal", (int64_t)ws->connections_total);
	mp_pack_kv_int(pk, "registeredTotal", (int64_t)st->registered_total);
	mp_pack_kv_int(pk, "rejectedTotal", (int64_t)st->rejected_total);
	mp_pack_kv_int(pk, "replacedTotal", (int64_t)st->replaced_total);
	mp_pack_kv_int(pk, "segments", (int64_t)st->segments);
	mp_pack_kv_int(pk, "segmentBytes", (int64_t)st->segment_bytes);
	mp_pack_kv_int(pk, "inits", (int64_t)st->inits);
	mp_pack_kv_int(pk, "frames", (int64_t)st->frames);
	mp_pack_kv_int(pk, "jpegPauses", (int64_t)st->jpeg_pauses);
	mp_pack_kv_int(pk, "jpegDropped", (int64_t)st->jpeg_dropped);
	mp_pack_kv_int(pk, "errors", (int64_t)st->errors);
	mp_pack_kv_int(pk, "closes1009", (int64_t)ws->closes_1009);
	mp_pack_kv_int(pk, "closes3006", (int64_t)ws->closes_3006);
	mp_pack_kv_int(pk, "ringErrors", (int64_t)st->ring_errors);
	mp_pack_str(pk, "ringLatencyUs");
	msgpack_pack_map(pk, 4);
	mp_pack_kv_int(pk, "samples", n);
	mp_pack_kv_int(pk, "p50", n > 0 ? st->lat_us[n / 2] : 0);
	mp_pack_kv_int(pk, "p99", n > 0 ? st->lat_us[(uint64_t)n * 99 / 100] : 0);
	mp_pack_kv_int(pk, "max", n > 0 ? st->lat_us[n - 1] : 0);
	mp_pack_kv_int(pk, "idleCloses", (int64_t)ws->idle_closes);
	st->n_lat = 0;
}

static void
ingest_tick(void *ctx)
{
	struct ingest *ing = ctx;

	if (stage_take_reload(ing->st))
		ingest_reload(ing);
	ingest_reg_check_tokens(ing, time(NULL));
	ingest_kf_tick(ing);
	stage_metrics(ing->st)->connections = ing->online;
	stage_tick(ing->st);
}

static void
ingest_message(void *ctx, struct wss_conn *c, const void *buf, size_t len, bool binary,
	       int64_t rx_done_us)
{
	ingest_sess_message(ctx, c, buf, len, binary, rx_done_us);
}

static void
ingest_closed(void *ctx, struct wss_conn *c)
{
	ingest_sess_closed(ctx, c);
}

static void
ingest_wake(void *ctx)
{
	ingest_jpeg_drain(ctx);
}

static const struct wss_ops ingest_ops = {
	.protocol = "vigil-sentinel",
	.path = "/sentinel",
	.register_type = "sentinel.register",
	.restart_text = "Ingest is restarting",
	.conn_size = sizeof(struct ingest_sess),
	.message = ingest_message,
	.closed = ingest_closed,
	.wake = ingest_wake,
	.tick = ingest_tick,
};

struct ingest *
ingest_new(struct stage *st)
{
	struct ingest *ing = calloc(1, sizeof(*ing));
	char name[64];
	int r;

	if (ing == NULL)
		return NULL;
	ing->st = st;
	ing->cfg = stage_cfg(st);
	pthread_mutex_init(&ing->jpeg_lock, NULL);
	snprintf(name, sizeof(name), "/vigil-%s", ing->cfg->instance);
	r = ring_open(name, true, &ing->ring);
	if (r < 0) {
		log_error(r, "ring_open(%s) as writer failed", name);
		goto err_free;
	}
	ing->tokens = tok_store_new();
	if (ing->tokens == NULL || (r = tok_store_load(ing->tokens, ing->cfg)) < 0 ||
	    (r = stage_set_revoked(st, ing->tokens)) < 0) {
		log_error(r, "loading the tokens failed");
		goto err_free;
	}
	r = ingest_reg_init(ing);
	if (r == 0)
		r = ingest_kf_init(ing);
	if (r < 0)
		goto err_free;
	stage_on_message(st, ingest_reg_bus, ing);
	stage_on_stats(st, ingest_pack_stats, ing);
	ing->wss = wss_new(st, &ing->cfg->listen_ingest, &ingest_ops, ing);
	if (ing->wss == NULL)
		goto err_free;
	return ing;

err_free:
	ingest_free(ing);
	return NULL;
}

void
ingest_free(struct ingest *ing)
{
	if (ing == NULL)
		return;
	wss_free(ing->wss);
	ingest_kf_free(ing);
	ingest_reg_free(ing);
	tok_store_free(ing->tokens);
	ring_close(ing->ring);
	pthread_mutex_destroy(&ing->jpeg_lock);
	/* GStreamer's globals, if a JPEG sentinel made us start it. */
	if (gst_is_initialized())
		gst_deinit();
	free(ing);
}

int
ingest_run(struct ingest *ing)
{
	return wss_run(ing->wss);
}
