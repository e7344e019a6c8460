/* cfg_json: the effective configuration as JSON (GET /api/config,
 * vigilctl), secrets redacted on request. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cfg.h"

static void
cfg_fmt_listen(char *buf, size_t size, const struct cfg_listen *l)
{
	snprintf(buf, size, strchr(l->host, ':') ? "[%s]:%u" : "%s:%u", l->host, l->port);
}

void *
cfg_to_json(const struct cfg *cfg, bool redact)
{
	char ingest[80], relay[80], http[80], when[32] = "", min_free[32], net[64];
	json_t *tokens, *entry, *proxies, *root = NULL;
	const struct cfg_token *t;
	struct tm tm;
	time_t at;

	if (!cfg) {
		errno = EINVAL;
		return NULL;
	}
	tokens = json_array();
	if (!tokens)
		goto fail;
	for (size_t i = 0; i < cfg->n_tokens; i++) {
		t = &cfg->tokens[i];
		at = (time_t)t->expires;
		if (t->expires != 0 && gmtime_r(&at, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		entry = json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "name", t->name, "role",
				  cfg_role_name(t->role), "token", redact ? "***" : t->token,
				  "token_file", t->token_file, "expires",
				  t->expires != 0 ? when : NULL);
		if (!entry || json_array_append_new(tokens, entry) < 0)
			goto decref_tokens;
	}
	cfg_fmt_listen(ingest, sizeof(ingest), &cfg->listen_ingest);
	cfg_fmt_listen(relay, sizeof(relay), &cfg->listen_relay);
	cfg_fmt_listen(http, sizeof(http), &cfg->listen_http);
	cfg_fmt_floor(min_free, sizeof(min_free), &cfg->archive_min_free);
	root = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s?, s:s?}, s:I, s:{s:I},"
			 " s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}, s:{s:s, s:O},"
			 " s:{s:I, s:I, s:o}, s:{s:I}, s:{s:I}}",
			 "instance", cfg->instance, "run_dir", cfg->run_dir, "data_dir",
			 cfg->data_dir, "log_level", cfg->log_level, "listen", "ingest", ingest,
			 "relay", relay, "http", http, "tls", "cert", cfg->tls_cert, "key",
			 cfg->tls_key, "buffer_seconds", (json_int_t)cfg->buffer_seconds, "ring",
			 "size", (json_int_t)cfg->ring_size, "limits", "max_sentinels",
			 (json_int_t)cfg->max_sentinels, "max_proctors",
			 (json_int_t)cfg->max_proctors, "max_message_bytes",
			 (json_int_t)cfg->max_message_bytes, "proctor_queue_seconds",
			 (json_int_t)cfg->proctor_queue_seconds, "max_connections_per_ip",
			 (json_int_t)cfg->max_connections_per_ip, "max_handshakes",
			 (json_int_t)cfg->max_handshakes, "timeouts", "register",
			 (json_int_t)cfg->timeout_register_ms, "idle",
			 (json_int_t)cfg->timeout_idle_ms, "stage_heartbeat",
			 (json_int_t)cfg->timeout_heartbeat_ms, "auth", "sentinel",
			 cfg->sentinel_auth ? "required" : "none", "tokens", tokens, "archive",
			 "retention_days", (json_int_t)cfg->retention_days, "max_bytes",
			 (json_int_t)cfg->archive_max_bytes, "min_free",
			 /* a size as a number, as the other sizes; auto and shares as text */
			 cfg->archive_min_free.kind == CFG_FLOOR_BYTES
				 ? json_integer((json_int_t)cfg->archive_min_free.bytes)
				 : json_string(min_free),
			 "audit", "retention_days", (json_int_t)cfg->audit_retention_days, "relay",
			 "workers", (json_int_t)cfg->relay_workers);
	proxies = root ? json_array() : NULL;
	for (size_t i = 0; proxies && i < cfg->n_trusted_proxies; i++) {
		cfg_fmt_net(net, sizeof(net), &cfg->trusted_proxies[i]);
		if (json_array_append_new(proxies, json_string(net)) < 0) {
			json_decref(proxies);
			proxies = NULL;
		}
	}
	if (root && (!proxies || json_object_set_new(root, "trusted_proxies", proxies) < 0)) {
		json_decref(root);
		root = NULL;
	}

decref_tokens:
	json_decref(tokens);
fail:
	if (!root)
		errno = ENOMEM;
	return root;
}
