/* cfg_walk: a YAML map's keys against a table of keys (cfg_keys.c): each
 * value parsed (the scalar parsers are in cfg_value.c), bounded and stored
 * where the table says. The file (cfg.c) and a live update (cfg_over.c) are
 * walked alike; the first fault is the one line of cfg_msg.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "cfg.h"
#include "cfg_internal.h"

static const char *const cfg_levels[] = { "error", "warn", "info", "debug" };
static const char *const cfg_sentinel_modes[] = { "required", "none" };

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
cfg_apply_floor(struct cfg_ctx *ctx, yaml_node_t *node, const char *key, const struct cfg_key *k,
		struct cfg_floor *field)
{
	char found[CFG_FOUND_MAX], hi[32];
	struct cfg_floor v;
	int r;

	cfg_found(node, found, sizeof(found));
	cfg_fmt_size(hi, sizeof(hi), (uint64_t)k->max);
	r = cfg_parse_floor((const char *)node->data.scalar.value, &v);
	if (r == 0 && v.kind == CFG_FLOOR_BYTES && v.bytes > (uint64_t)k->max)
		r = -ERANGE;
	if (r == -ERANGE)
		return cfg_fail(ctx, node->start_mark, key,
				"expected a size in 0..%s or a percentage in 0..%d%%, found %s", hi,
				CFG_FLOOR_PERCENT_MAX, found);
	if (r < 0)
		return cfg_fail(ctx, node->start_mark, key,
				"expected auto, a size such as 20GiB or a percentage of the volume "
				"such as 5%%, found %s",
				found);
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
		[CFG_K_FLOOR] = "auto, a size or a percentage",
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
	case CFG_K_FLOOR:
		return cfg_apply_floor(ctx, node, key, k, field);
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
	char key[CFG_KEY_MAX], found[CFG_FOUND_MAX], list[160], hint[3 * CFG_KEY_MAX + 32];
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
			cfg_key_hint(prefix, name, keys, hint, sizeof(hint));
			return cfg_fail(ctx, k->start_mark, key, "unknown key (expected %s)%s",
					list, hint);
		}
		r = cfg_apply(ctx, yaml_document_get_node(ctx->doc, pair->value), key, e, base);
		if (r < 0)
			return r;
	}
	return 0;
}
