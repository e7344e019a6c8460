/* cfg: loads the YAML configuration (libyaml document API) over built-in defaults.
 *
 * A table of keys (cfg_keys.c) drives the walk: each entry says where a value lands, how
 * it is parsed (the scalar parsers are in cfg_value.c) and what bounds it has. The first
 * fault stops the load with one "FILE:LINE:COL: KEY: message" line; the caller never sees
 * a half-filled cfg.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yaml.h>

#include "cfg.h"
#include "cfg_internal.h"

#define CFG_FILE_MAX (1024 * 1024) /* a config file beyond this is a mistake */

static const char *const cfg_levels[] = { "error", "warn", "info", "debug" };
static const char *const cfg_sentinel_modes[] = { "required", "none" };

/* ---- the walk ---- */

static int
cfg_choice(struct cfg_ctx *ctx, yaml_node_t *node, const char *key, const char *const *names,
	   size_t n, size_t *ret_index)
{
	char list[96], found[CFG_FOUND_MAX];

	for (size_t i = 0; i < n; i++) {
		if (strcmp((const char *)node->data.scalar.value, names[i]) == 0) {
			*ret_index = i;
			return 0;
		}
	}
	cfg_fmt_choices(list, sizeof(list), names, n);
	return cfg_fail(ctx, node->start_mark, key, "expected %s, found %s", list,
			cfg_found(node, found, sizeof(found)));
}

static int
cfg_set_str(struct cfg_ctx *ctx, char **field, const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		return cfg_oom(ctx);
	free(*field);
	*field = copy;
	return 0;
}

static int
cfg_apply_size(struct cfg_ctx *ctx, yaml_node_t *node, const char *key, const struct cfg_key *k,
	       uint64_t *field)
{
	char found[CFG_FOUND_MAX], lo[32], hi[32];
	uint64_t v;
	int r;

	cfg_found(node, found, sizeof(found));
	r = cfg_parse_size((const char *)node->data.scalar.value, &v);
	if (r == -ERANGE)
		v = UINT64_MAX; /* above every bound: reported as out of range below */
	else if (r < 0)
		return cfg_fail(ctx, node->start_mark, key,
				"expected a size such as 512MiB (units B KiB MiB GiB TiB KB MB GB "
				"TB), found %s",
				found);
	cfg_fmt_size(lo, sizeof(lo), (uint64_t)k->min);
	cfg_fmt_size(hi, sizeof(hi), (uint64_t)k->max);
	if (k->zero_ok && v == 0) {
		*field = 0;
		return 0;
	}
	if (k->zero_ok && (v < (uint64_t)k->min || v > (uint64_t)k->max))
		return cfg_fail(ctx, node->start_mark, key,
				"expected 0 (unlimited) or a size in %s..%s, found %s", lo, hi,
				found);
	if (v < (uint64_t)k->min || v > (uint64_t)k->max)
		return cfg_fail(ctx, node->start_mark, key, "expected a size in %s..%s, found %s",
				lo, hi, found);
	*field = v;
	return 0;
}

static int
cfg_apply_number(struct cfg_ctx *ctx, yaml_node_t *node, const char *key, const struct cfg_key *k,
		 int64_t *field)
{
	const char *s = (const char *)node->data.scalar.value;
	char found[CFG_FOUND_MAX], lo[32], hi[32];
	int64_t v;
	int r;

	cfg_found(node, found, sizeof(found));
	if (k->kind == CFG_K_INT) {
		r = cfg_parse_int(s, &v);
		if (r < 0 || v < k->min || v > k->max)
			return cfg_fail(ctx, node->start_mark, key,
					"expected an integer in %" PRId64 "..%" PRId64 ", found %s",
					k->min, k->max, found);
		*field = v;
		return 0;
	}
	r = cfg_parse_duration(s, &v);
	if (r == -ERANGE)
		v = INT64_MAX;
	else if (r < 0)
		return cfg_fail(ctx, node->start_mark, key,
				"expected a duration such as 5s (plain seconds or units ms s m h "
				"d), found %s",
				found);
	cfg_fmt_ms(lo, sizeof(lo), k->min);
	cfg_fmt_ms(hi, sizeof(hi), k->max);
	if (v < k->min || v > k->max)
		return cfg_fail(ctx, node->start_mark, key,
				"expected a duration in %s..%s, found %s", lo, hi, found);
	*field = v;
	return 0;
}

static int
cfg_apply(struct cfg_ctx *ctx, yaml_node_t *node, const char *key, const struct cfg_key *k,
	  void *base)
{
	static const char *const what[] = {
		[CFG_K_NAME] = "an instance name",
		[CFG_K_STR] = "a string",
		[CFG_K_OPTSTR] = "a file path or null",
		[CFG_K_LISTEN] = "HOST:PORT",
		[CFG_K_INT] = "an integer",
		[CFG_K_SIZE] = "a size",
		[CFG_K_DURATION] = "a duration",
		[CFG_K_TIME] = "a time",
		[CFG_K_LEVEL] = "a log level",
		[CFG_K_SENTINEL] = "required or none",
		[CFG_K_ROLE] = "a role",
	};
	void *field = (char *)base + k->off;
	char buf[CFG_FOUND_MAX];
	const char *s, *found;
	size_t idx = 0;
	int r;

	if (k->slot != CFG_SLOT_NONE)
		ctx->where[k->slot] = node;
	if (k->kind == CFG_K_MAP)
		return cfg_walk_map(ctx, node, key, k->sub, base);
	if (k->kind == CFG_K_TOKENS)
		return cfg_walk_tokens(ctx, node, key);
	if (k->kind == CFG_K_NETS)
		return cfg_walk_nets(ctx, node, key);
	found = cfg_found(node, buf, sizeof(buf));
	if (node->type != YAML_SCALAR_NODE)
		return cfg_fail(ctx, node->start_mark, key, "expected %s, found %s", what[k->kind],
				found);
	s = (const char *)node->data.scalar.value;
	if (strlen(s) != node->data.scalar.length)
		return cfg_fail(ctx, node->start_mark, key, "expected text without NUL bytes");
	if (cfg_is_null(node)) {
		/* null keeps the default; for the TLS paths the default is "off". */
		if (k->kind == CFG_K_OPTSTR) {
			free(*(char **)field);
			*(char **)field = NULL;
		}
		return 0;
	}

	switch (k->kind) {
	case CFG_K_NAME:
		if (s[0] == '\0' || strlen(s) > 32 || strspn(s, CFG_ALNUM "_-") != strlen(s))
			return cfg_fail(ctx, node->start_mark, key,
					"expected 1..32 characters from [A-Za-z0-9_-], found %s",
					found);
		return cfg_set_str(ctx, field, s);
	case CFG_K_STR:
	case CFG_K_OPTSTR:
		if (s[0] == '\0')
			return cfg_fail(ctx, node->start_mark, key,
					"expected a non-empty string, found \"\"");
		return cfg_set_str(ctx, field, s);
	case CFG_K_LISTEN:
		r = cfg_parse_listen(s, field);
		if (r == -ERANGE)
			return cfg_fail(ctx, node->start_mark, key,
					"expected a port in 0..65535, found %s", found);
		if (r < 0)
			return cfg_fail(ctx, node->start_mark, key,
					"expected HOST:PORT such as 0.0.0.0:8080 (IPv6 as "
					"[::1]:8080), found %s",
					found);
		return 0;
	case CFG_K_INT:
	case CFG_K_DURATION:
		return cfg_apply_number(ctx, node, key, k, field);
	case CFG_K_SIZE:
		return cfg_apply_size(ctx, node, key, k, field);
	case CFG_K_TIME:
		if (cfg_parse_time(s, field) < 0)
			return cfg_fail(ctx, node->start_mark, key,
					"expected an ISO-8601 time such as 2026-12-01T00:00:00Z "
					"(Z or +HH:MM offset), found %s",
					found);
		return 0;
	case CFG_K_LEVEL:
		r = cfg_choice(ctx, node, key, cfg_levels, 4, &idx);
		return r < 0 ? r : cfg_set_str(ctx, field, cfg_levels[idx]);
	case CFG_K_SENTINEL:
		r = cfg_choice(ctx, node, key, cfg_sentinel_modes, 2, &idx);
		if (r == 0)
			*(bool *)field = idx == 0;
		return r;
	case CFG_K_ROLE:
		r = cfg_choice(ctx, node, key, cfg_role_names, CFG_ROLE_COUNT, &idx);
		if (r == 0)
			*(enum cfg_role *)field = (enum cfg_role)idx;
		return r;
	default:
		break;
	}
	return -EINVAL;
}

int
cfg_walk_map(struct cfg_ctx *ctx, yaml_node_t *node, const char *prefix, const struct cfg_key *keys,
	     void *base)
{
	char key[CFG_KEY_MAX], found[CFG_FOUND_MAX], list[160];
	const char *names[16];
	const struct cfg_key *e;
	yaml_node_pair_t *pair, *other;
	yaml_node_t *k, *prev;
	const char *name;
	size_t n;
	int r;

	if (cfg_is_null(node)) /* "auth:" with everything commented out */
		return 0;
	if (node->type != YAML_MAPPING_NODE)
		return cfg_fail(ctx, node->start_mark, prefix, "expected a map, found %s",
				cfg_found(node, found, sizeof(found)));
	for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
		k = yaml_document_get_node(ctx->doc, pair->key);
		if (k->type != YAML_SCALAR_NODE)
			return cfg_fail(ctx, k->start_mark, prefix[0] ? prefix : "-",
					"expected a plain key, found %s",
					cfg_found(k, found, sizeof(found)));
		name = (const char *)k->data.scalar.value;
		cfg_key_join(key, sizeof(key), prefix, name);
		for (other = node->data.mapping.pairs.start; other < pair; other++) {
			prev = yaml_document_get_node(ctx->doc, other->key);
			if (prev->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)prev->data.scalar.value, name) == 0)
				return cfg_fail(ctx, k->start_mark, key,
						"duplicate key (first at line %zu)",
						prev->start_mark.line + 1);
		}
		for (e = keys; e->name && strcmp(e->name, name) != 0; e++)
			;
		if (!e->name) {
			for (n = 0; keys[n].name && n < 16; n++)
				names[n] = keys[n].name;
			cfg_fmt_choices(list, sizeof(list), names, n);
			return cfg_fail(ctx, k->start_mark, key, "unknown key (expected %s)", list);
		}
		r = cfg_apply(ctx, yaml_document_get_node(ctx->doc, pair->value), key, e, base);
		if (r < 0)
			return r;
	}
	return 0;
}

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

/* Reader errors carry a byte offset instead of a mark. */
static yaml_mark_t
cfg_mark_at(const char *text, size_t len, size_t offset)
{
	yaml_mark_t mark = { 0 };

	for (size_t i = 0; i < offset && i < len; i++) {
		if (text[i] == '\n') {
			mark.line++;
			mark.column = 0;
		} else {
			mark.column++;
		}
	}
	return mark;
}

int
cfg_syntax(struct cfg_ctx *ctx, const yaml_parser_t *parser, const char *text, size_t len)
{
	const char *problem = parser->problem ? parser->problem : "unknown problem";

	if (parser->error == YAML_MEMORY_ERROR)
		return cfg_oom(ctx);
	if (parser->error == YAML_READER_ERROR) {
		if (parser->problem_value < 0)
			return cfg_fail(ctx, cfg_mark_at(text, len, parser->problem_offset), "-",
					"syntax error: %s", problem);
		return cfg_fail(ctx, cfg_mark_at(text, len, parser->problem_offset), "-",
				"syntax error: %s (byte 0x%02X)", problem,
				(unsigned)parser->problem_value);
	}
	/* The commonest YAML mistake gets named. */
	if (parser->problem_mark.index < len && text[parser->problem_mark.index] == '\t')
		return cfg_fail(ctx, parser->problem_mark, "-",
				"syntax error: %s (a tab; indent with spaces)", problem);
	if (parser->context)
		return cfg_fail(ctx, parser->problem_mark, "-", "syntax error: %s %s at line %zu",
				problem, parser->context, parser->context_mark.line + 1);
	return cfg_fail(ctx, parser->problem_mark, "-", "syntax error: %s", problem);
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
