/* cfg: loads the YAML configuration (libyaml document API) over built-in defaults.
 *
 * A table of keys (cfg_keys.c) drives the walk (cfg_walk.c): each entry says where a value
 * lands, how it is parsed (the scalar parsers are in cfg_value.c) and what bounds it has.
 * The first fault stops the load with one "FILE:LINE:COL: KEY: message" line (cfg_msg.c;
 * syntax errors: cfg_syntax.c); the caller never sees a half-filled cfg. Here: reading the
 * file, the defaults, the rules between keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "cfg.h"
#include "cfg_internal.h"

#define CFG_FILE_MAX (1024 * 1024) /* a config file beyond this is a mistake */

/* Reads a whole file of at most max bytes, NUL-terminated. */
int
cfg_slurp(const char *path, size_t max, char **ret_buf, size_t *ret_len, bool *ret_opened)
{
	size_t len = 0;
	ssize_t n;
	char *buf;
	int fd, r;

	*ret_opened = false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_opened = true;
	buf = malloc(max + 2);
	if (!buf) {
		r = -ENOMEM;
		goto close_fd;
	}
	while (len <= max) {
		n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto free_buf;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		r = -EFBIG;
		goto free_buf;
	}
	buf[len] = '\0';
	close(fd);
	*ret_buf = buf;
	*ret_len = len;
	return 0;

free_buf:
	free(buf);
close_fd:
	close(fd);
	return r;
}

/* Rules between keys, checked once the whole document is applied. In an
 * update, the key the update named is blamed; a value that came from the file
 * has no node here (the file passed these rules on its own). */
int
cfg_check(struct cfg_ctx *ctx)
{
	struct cfg *cfg = ctx->cfg;
	yaml_node_t *ring = ctx->where[CFG_SLOT_RING], *msg = ctx->where[CFG_SLOT_MSG];
	char found[CFG_FOUND_MAX], limit[32];

	/* A message must fit the ring several times over, or one sentinel starves the rest. */
	if (cfg->max_message_bytes > cfg->ring_size / 4) {
		if ((msg && !cfg_is_null(msg)) || !ring) {
			cfg_fmt_size(limit, sizeof(limit), cfg->ring_size / 4);
			if (msg)
				cfg_found(msg, found, sizeof(found));
			else
				cfg_fmt_size(found, sizeof(found), cfg->max_message_bytes);
			return cfg_fail(ctx, cfg_mark(msg), "limits.max_message_bytes",
					"expected at most ring.size/4 = %s, found %s", limit,
					found);
		}
		cfg_fmt_size(limit, sizeof(limit), cfg->max_message_bytes * 4);
		return cfg_fail(ctx, ring->start_mark, "ring.size",
				"expected at least 4 x limits.max_message_bytes = %s, found %s",
				limit, cfg_found(ring, found, sizeof(found)));
	}
	if (cfg->tls_cert && !cfg->tls_key)
		return cfg_fail(ctx, cfg_mark(ctx->where[CFG_SLOT_CERT]), "tls.cert",
				"expected tls.key as well (TLS needs both), found only tls.cert");
	if (cfg->tls_key && !cfg->tls_cert)
		return cfg_fail(ctx, cfg_mark(ctx->where[CFG_SLOT_KEY]), "tls.key",
				"expected tls.cert as well (TLS needs both), found only tls.key");
	return 0;
}

static int
cfg_parse_text(struct cfg_ctx *ctx, const char *text, size_t len)
{
	char found[CFG_FOUND_MAX];
	yaml_document_t doc, extra;
	yaml_parser_t parser;
	yaml_node_t *root, *next;
	int r;

	if (!yaml_parser_initialize(&parser))
		return cfg_oom(ctx);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = cfg_syntax(ctx, &parser, text, len);
		goto delete_parser;
	}
	ctx->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	r = 0;
	if (!root || cfg_is_null(root)) /* empty, or only comments */
		goto delete_doc;
	if (!yaml_parser_load(&parser, &extra)) {
		r = cfg_syntax(ctx, &parser, text, len);
		goto delete_doc;
	}
	next = yaml_document_get_root_node(&extra);
	if (next)
		r = cfg_fail(ctx, next->start_mark, "-",
			     "expected one YAML document, found a second one");
	yaml_document_delete(&extra);
	if (r < 0)
		goto delete_doc;
	if (root->type != YAML_MAPPING_NODE) {
		r = cfg_fail(ctx, root->start_mark, "-",
			     "expected a map at the top level, found %s",
			     cfg_found(root, found, sizeof(found)));
		goto delete_doc;
	}
	r = cfg_walk_map(ctx, root, "", cfg_keys_top, ctx->cfg);
	if (r >= 0)
		r = cfg_check(ctx);

delete_doc:
	ctx->doc = NULL;
	yaml_document_delete(&doc);
delete_parser:
	yaml_parser_delete(&parser);
	return r;
}

static int
cfg_defaults(struct cfg *cfg, const char *path)
{
	static const struct cfg_listen ingest = { "0.0.0.0", 8082 }, relay = { "0.0.0.0", 8081 },
				       http = { "0.0.0.0", 8080 };

	cfg->path = strdup(path);
	cfg->instance = strdup("default");
	cfg->run_dir = strdup("/run/vigil");
	cfg->data_dir = strdup("/var/lib/vigil");
	cfg->log_level = strdup("info");
	if (!cfg->path || !cfg->instance || !cfg->run_dir || !cfg->data_dir || !cfg->log_level)
		return -ENOMEM;
	cfg->listen_ingest = ingest;
	cfg->listen_relay = relay;
	cfg->listen_http = http;
	cfg->buffer_seconds = 20;
	cfg->ring_size = 512 * CFG_MIB;
	cfg->max_sentinels = 200;
	cfg->max_proctors = 500;
	cfg->max_message_bytes = 8 * CFG_MIB;
	cfg->proctor_queue_seconds = 5;
	cfg->max_connections_per_ip = 64;
	cfg->max_handshakes = 512;
	cfg->timeout_register_ms = 5 * CFG_SEC_MS;
	cfg->timeout_idle_ms = 30 * CFG_SEC_MS;
	cfg->timeout_heartbeat_ms = 5 * CFG_SEC_MS;
	cfg->sentinel_auth = true;
	cfg->retention_days = 30;
	cfg->audit_retention_days = 365;
	cfg->archive_max_bytes = 200 * CFG_GIB;
	return 0;
}

int
cfg_load(const char *path, struct cfg **ret_cfg, char *err, size_t errlen)
{
	struct cfg_ctx ctx = { .file = path ? path : "", .err = err, .errlen = errlen };
	struct cfg *cfg;
	char *text;
	size_t len;
	bool opened;
	int r;

	if (err && errlen > 0)
		err[0] = '\0';
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return cfg_oom(&ctx);
	ctx.cfg = cfg;
	r = cfg_defaults(cfg, ctx.file);
	if (r < 0) {
		r = cfg_oom(&ctx);
		goto free_cfg;
	}
	if (ctx.file[0] != '\0') {
		r = cfg_slurp(ctx.file, CFG_FILE_MAX, &text, &len, &opened);
		if (r < 0) {
			if (err && errlen > 0)
				snprintf(err, errlen, "%s: cannot %s: %s", ctx.file,
					 opened ? "read" : "open", strerror(-r));
			if (err && errlen > 0)
				cfg_one_line(err);
			goto free_cfg;
		}
		r = cfg_parse_text(&ctx, text, len);
		free(text);
		if (r < 0)
			goto free_cfg;
	}
	*ret_cfg = cfg;
	return 0;

free_cfg:
	cfg_free(cfg);
	return r;
}

void
cfg_free(struct cfg *cfg)
{
	if (!cfg)
		return;
	cfg_tokens_free(cfg);
	free(cfg->path);
	free(cfg->instance);
	free(cfg->run_dir);
	free(cfg->data_dir);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->log_level);
	free(cfg);
}
