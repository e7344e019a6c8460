/* cfg_keys: the file's keys, as the table every walk follows (cfg.c for the
 * file, cfg_over.c for a live update): where each value lands in struct cfg,
 * how it is parsed, its bounds, and whether the stages take it while running
 * (live). docs/operations.md lists the live keys; test_cfg_over.c pins them.
 * Also what relay.workers: 0 stands for.
 */
#include <stddef.h>
#include <unistd.h>

#include "cfg_internal.h"

#define C(field) offsetof(struct cfg, field)

static const struct cfg_key cfg_keys_listen[] = {
	{ .name = "ingest", .kind = CFG_K_LISTEN, .off = C(listen_ingest) },
	{ .name = "relay", .kind = CFG_K_LISTEN, .off = C(listen_relay) },
	{ .name = "http", .kind = CFG_K_LISTEN, .off = C(listen_http) },
	{ 0 },
};
static const struct cfg_key cfg_keys_tls[] = {
	{ .name = "cert", .kind = CFG_K_OPTSTR, .off = C(tls_cert), .slot = CFG_SLOT_CERT },
	{ .name = "key", .kind = CFG_K_OPTSTR, .off = C(tls_key), .slot = CFG_SLOT_KEY },
	{ 0 },
};
static const struct cfg_key cfg_keys_ring[] = {
	{ .name = "size",
	  .kind = CFG_K_SIZE,
	  .off = C(ring_size),
	  .min = (int64_t)CFG_MIB,
	  .max = (int64_t)(64 * CFG_GIB),
	  .slot = CFG_SLOT_RING },
	{ 0 },
};
static const struct cfg_key cfg_keys_limits[] = {
	/* Live up to the ring's slots, which vigild sized at its start. */
	{ .name = "max_sentinels",
	  .kind = CFG_K_INT,
	  .off = C(max_sentinels),
	  .min = 1,
	  .max = 10000,
	  .live = true },
	{ .name = "max_proctors",
	  .kind = CFG_K_INT,
	  .off = C(max_proctors),
	  .min = 1,
	  .max = 100000,
	  .live = true },
	{ .name = "max_message_bytes",
	  .kind = CFG_K_SIZE,
	  .off = C(max_message_bytes),
	  .min = (int64_t)CFG_KIB,
	  .max = (int64_t)(256 * CFG_MIB),
	  .slot = CFG_SLOT_MSG },
	{ .name = "proctor_queue_seconds",
	  .kind = CFG_K_INT,
	  .off = C(proctor_queue_seconds),
	  .min = 1,
	  .max = 600,
	  .live = true },
	{ .name = "max_connections_per_ip",
	  .kind = CFG_K_INT,
	  .off = C(max_connections_per_ip),
	  .min = 0,
	  .max = 1000000,
	  .live = true },
	{ .name = "max_handshakes",
	  .kind = CFG_K_INT,
	  .off = C(max_handshakes),
	  .min = 1,
	  .max = 1000000,
	  .live = true },
	{ 0 },
};
static const struct cfg_key cfg_keys_timeouts[] = {
	{ .name = "register",
	  .kind = CFG_K_DURATION,
	  .off = C(timeout_register_ms),
	  .min = 1,
	  .max = CFG_DAY_MS,
	  .live = true },
	{ .name = "idle",
	  .kind = CFG_K_DURATION,
	  .off = C(timeout_idle_ms),
	  .min = 1,
	  .max = CFG_DAY_MS,
	  .live = true },
	/* The watchdog ticks in seconds: a shorter heartbeat would only add noise. */
	{ .name = "stage_heartbeat",
	  .kind = CFG_K_DURATION,
	  .off = C(timeout_heartbeat_ms),
	  .min = CFG_SEC_MS,
	  .max = CFG_DAY_MS,
	  .live = true },
	{ 0 },
};
static const struct cfg_key cfg_keys_auth[] = {
	{ .name = "sentinel", .kind = CFG_K_SENTINEL, .off = C(sentinel_auth), .live = true },
	{ .name = "tokens", .kind = CFG_K_TOKENS, .live = true },
	{ 0 },
};
static const struct cfg_key cfg_keys_archive[] = {
	{ .name = "retention_days",
	  .kind = CFG_K_INT,
	  .off = C(retention_days),
	  .min = 0,
	  .max = 36500,
	  .live = true },
	{ .name = "max_bytes",
	  .kind = CFG_K_SIZE,
	  .off = C(archive_max_bytes),
	  .min = (int64_t)CFG_MIB,
	  .max = (int64_t)(1024 * 1024 * CFG_TIB),
	  .zero_ok = true,
	  .live = true },
	/* Checked every few seconds by archive, which takes a new value at once. */
	{ .name = "min_free",
	  .kind = CFG_K_FLOOR,
	  .off = C(archive_min_free),
	  .max = (int64_t)(1024 * 1024 * CFG_TIB),
	  .live = true },
	{ 0 },
};
static const struct cfg_key cfg_keys_audit[] = {
	/* 0 keeps the audit log for ever; it never follows the sessions' retention. */
	{ .name = "retention_days",
	  .kind = CFG_K_INT,
	  .off = C(audit_retention_days),
	  .min = 0,
	  .max = 36500,
	  .live = true },
	{ 0 },
};
/* How many relay processes vigild starts: read at its start only. */
static const struct cfg_key cfg_keys_relay[] = {
	{ .name = "workers",
	  .kind = CFG_K_INT,
	  .off = C(relay_workers),
	  .min = 0,
	  .max = CFG_RELAY_WORKERS_MAX },
	{ 0 },
};
const struct cfg_key cfg_keys_top[] = {
	{ .name = "instance", .kind = CFG_K_NAME, .off = C(instance) },
	{ .name = "run_dir", .kind = CFG_K_STR, .off = C(run_dir) },
	{ .name = "data_dir", .kind = CFG_K_STR, .off = C(data_dir) },
	{ .name = "log_level", .kind = CFG_K_LEVEL, .off = C(log_level), .live = true },
	{ .name = "listen", .kind = CFG_K_MAP, .sub = cfg_keys_listen },
	{ .name = "tls", .kind = CFG_K_MAP, .sub = cfg_keys_tls },
	/* Live: srv_set_proxies() at each stage's reload. */
	{ .name = "trusted_proxies", .kind = CFG_K_NETS, .live = true },
	{ .name = "buffer_seconds",
	  .kind = CFG_K_INT,
	  .off = C(buffer_seconds),
	  .min = 1,
	  .max = 3600 },
	{ .name = "ring", .kind = CFG_K_MAP, .sub = cfg_keys_ring },
	{ .name = "limits", .kind = CFG_K_MAP, .sub = cfg_keys_limits },
	{ .name = "timeouts", .kind = CFG_K_MAP, .sub = cfg_keys_timeouts },
	{ .name = "auth", .kind = CFG_K_MAP, .sub = cfg_keys_auth },
	{ .name = "archive", .kind = CFG_K_MAP, .sub = cfg_keys_archive },
	{ .name = "audit", .kind = CFG_K_MAP, .sub = cfg_keys_audit },
	{ .name = "relay", .kind = CFG_K_MAP, .sub = cfg_keys_relay },
	{ 0 },
};

#undef C

unsigned
cfg_relay_workers(const struct cfg *cfg)
{
	long cores;

	if (cfg->relay_workers > 0)
		return (unsigned)cfg->relay_workers;
	cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (cores < 1)
		return 1;
	return cores > CFG_RELAY_WORKERS_MAX ? CFG_RELAY_WORKERS_MAX : (unsigned)cores;
}
