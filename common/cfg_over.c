/* cfg_over: live updates over the file. An update arrives as JSON (the bus's
 * config.update, vigilctl config set) and is turned into a libyaml document, so
 * that the file's key table, parsers, rules and error wording judge it; the
 * table's live flags say which keys the stages can take while running.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <yaml.h>

#include "cfg.h"
#include "cfg_internal.h"

#define CFG_OVER_DEPTH 16    /* maps and lists in an update; the file's deepest is 4 */
#define CFG_OVER_NODES 10000 /* nodes of a value; YAML aliases would multiply them */

/* ---- JSON to a YAML document ---- */

static int
cfg_over_scalar(yaml_document_t *doc, const char *s, size_t len, yaml_scalar_style_t style)
{
	if (len > INT32_MAX)
		return 0;
	return yaml_document_add_scalar(doc, NULL, (yaml_char_t *)s, (int)len, style);
}

/* The node id of v added to doc, 0 on failure. Strings are double-quoted so
 * that "null" stays text; everything else is plain, as the file would have it. */
static int
cfg_over_node(yaml_document_t *doc, const json_t *v, int depth)
{
	char num[48];
	const char *key;
	json_t *item;
	size_t i;
	int id, k, val;

	if (depth > CFG_OVER_DEPTH)
		return 0;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		id = yaml_document_add_mapping(doc, NULL, YAML_FLOW_MAPPING_STYLE);
		json_object_foreach((json_t *)v, key, item)
		{
			k = cfg_over_scalar(doc, key, strlen(key), YAML_PLAIN_SCALAR_STYLE);
			val = k ? cfg_over_node(doc, item, depth + 1) : 0;
			if (!id || !val || !yaml_document_append_mapping_pair(doc, id, k, val))
				return 0;
		}
		return id;
	case JSON_ARRAY:
		id = yaml_document_add_sequence(doc, NULL, YAML_FLOW_SEQUENCE_STYLE);
		json_array_foreach(v, i, item)
		{
			val = cfg_over_node(doc, item, depth + 1);
			if (!id || !val || !yaml_document_append_sequence_item(doc, id, val))
				return 0;
		}
		return id;
	case JSON_STRING:
		return cfg_over_scalar(doc, json_string_value(v), json_string_length(v),
				       YAML_DOUBLE_QUOTED_SCALAR_STYLE);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		/* 800.0 reads as 800; 1.5 is refused by the integer keys as "1.5". */
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		snprintf(num, sizeof(num), "%s", json_is_true(v) ? "true" : "false");
		break;
	default:
		snprintf(num, sizeof(num), "null");
		break;
	}
	return cfg_over_scalar(doc, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
}

int
cfg_load_over(const char *path, const void *over, struct cfg **ret_cfg, char *err, size_t errlen)
{
	struct cfg_ctx ctx = {
		.file = "config.update", .update = true, .err = err, .errlen = errlen
	};
	yaml_document_t doc;
	struct cfg *cfg;
	int r;

	r = cfg_load(path, &cfg, err, errlen);
	if (r < 0)
		return r;
	if (over == NULL)
		goto done;
	if (!json_is_object((const json_t *)over)) {
		r = cfg_fail(&ctx, cfg_mark(NULL), "-", "expected a map of keys as in the file");
		goto free_cfg;
	}
	if (!yaml_document_initialize(&doc, NULL, NULL, NULL, 1, 1)) {
		r = cfg_oom(&ctx);
		goto free_cfg;
	}
	if (!cfg_over_node(&doc, over, 1)) {
		r = cfg_fail(&ctx, cfg_mark(NULL), "-",
			     "expected at most %d levels of maps and lists (or out of memory)",
			     CFG_OVER_DEPTH);
		goto delete_doc;
	}
	ctx.doc = &doc;
	ctx.cfg = cfg;
	r = cfg_walk_map(&ctx, yaml_document_get_root_node(&doc), "", cfg_keys_top, cfg);
	if (r >= 0)
		r = cfg_check(&ctx);
	yaml_document_delete(&doc);
	if (r < 0)
		goto free_cfg;
done:
	*ret_cfg = cfg;
	return 0;

delete_doc:
	yaml_document_delete(&doc);
free_cfg:
	cfg_free(cfg);
	return r;
}

/* ---- which keys are live ---- */

static const struct cfg_key *
cfg_over_find(const struct cfg_key *keys, const char *name, size_t len)
{
	for (const struct cfg_key *k = keys; k->name; k++) {
		if (strlen(k->name) == len && memcmp(k->name, name, len) == 0)
			return k;
	}
	return NULL;
}

bool
cfg_key_live(const char *key)
{
	const struct cfg_key *keys = cfg_keys_top, *k = NULL;
	const char *dot;

	for (;;) {
		dot = strchr(key, '.');
		k = cfg_over_find(keys, key, dot ? (size_t)(dot - key) : strlen(key));
		if (k == NULL || !dot)
			break;
		if (k->kind != CFG_K_MAP)
			return false;
		keys = k->sub;
		key = dot + 1;
	}
	return k != NULL && k->kind != CFG_K_MAP && k->live;
}

static int
cfg_over_sort(const struct cfg_key *keys, const json_t *map, const char *prefix, json_t *live,
	      json_t *live_keys, json_t *other_keys)
{
	char dotted[CFG_KEY_MAX];
	const struct cfg_key *k;
	json_t *v, *sub, *keys_out;
	const char *name;
	int r;

	json_object_foreach((json_t *)map, name, v)
	{
		k = cfg_over_find(keys, name, strlen(name));
		if (k == NULL)
			return -EINVAL;
		cfg_key_join(dotted, sizeof(dotted), prefix, name);
		if (k->kind == CFG_K_MAP) {
			json_t *nulls = NULL;

			if (json_is_null(v)) {
				/* null for a map: null for each of its keys */
				nulls = json_object();
				for (const struct cfg_key *s = k->sub; nulls && s->name; s++)
					json_object_set_new(nulls, s->name, json_null());
				v = nulls;
			}
			if (!json_is_object(v))
				return -EINVAL;
			sub = json_object();
			r = sub ? cfg_over_sort(k->sub, v, dotted, sub, live_keys, other_keys)
				: -ENOMEM;
			json_decref(nulls);
			if (r == 0 && json_object_size(sub) > 0)
				r = json_object_set(live, name, sub) < 0 ? -ENOMEM : 0;
			json_decref(sub);
			if (r < 0)
				return r;
			continue;
		}
		keys_out = k->live ? live_keys : other_keys;
		if (json_array_append_new(keys_out, json_string(dotted)) < 0)
			return -ENOMEM;
		if (k->live && json_object_set(live, name, v) < 0)
			return -ENOMEM;
	}
	return 0;
}

int
cfg_over_split(const void *update, void **ret_live, void *live_keys, void *other_keys)
{
	json_t *live;
	int r;

	if (!json_is_object((const json_t *)update))
		return -EINVAL;
	live = json_object();
	if (live == NULL)
		return -ENOMEM;
	r = cfg_over_sort(cfg_keys_top, update, "", live, live_keys, other_keys);
	if (r < 0) {
		json_decref(live);
		return r;
	}
	*ret_live = live;
	return 0;
}

/* ---- a value written as YAML ---- */

static json_t *
cfg_yaml_json(yaml_document_t *doc, yaml_node_t *node, int depth, size_t *budget)
{
	const char *s = (const char *)node->data.scalar.value;
	yaml_node_item_t *item;
	yaml_node_pair_t *pair;
	yaml_node_t *k;
	json_t *out, *v;
	int64_t n;

	if (depth > CFG_OVER_DEPTH || *budget == 0)
		return NULL;
	(*budget)--;
	switch (node->type) {
	case YAML_SCALAR_NODE:
		if (cfg_is_null(node))
			return json_null();
		if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && cfg_parse_int(s, &n) == 0)
			return json_integer(n);
		return json_stringn(s, node->data.scalar.length);
	case YAML_SEQUENCE_NODE:
		out = json_array();
		for (item = node->data.sequence.items.start;
		     out && item < node->data.sequence.items.top; item++) {
			v = cfg_yaml_json(doc, yaml_document_get_node(doc, *item), depth + 1,
					  budget);
			if (json_array_append_new(out, v) < 0) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	case YAML_MAPPING_NODE:
		out = json_object();
		for (pair = node->data.mapping.pairs.start;
		     out && pair < node->data.mapping.pairs.top; pair++) {
			k = yaml_document_get_node(doc, pair->key);
			v = k->type == YAML_SCALAR_NODE
				    ? cfg_yaml_json(doc, yaml_document_get_node(doc, pair->value),
						    depth + 1, budget)
				    : NULL;
			/* A key twice would lose one of them: the file refuses it too. */
			if (v == NULL || json_object_get(out, (const char *)k->data.scalar.value) ||
			    json_object_set_new(out, (const char *)k->data.scalar.value, v) < 0) {
				json_decref(v);
				json_decref(out);
				return NULL;
			}
		}
		return out;
	default:
		return NULL;
	}
}

void *
cfg_yaml_value(const char *text, char *err, size_t errlen)
{
	struct cfg_ctx ctx = { .file = "value", .err = err, .errlen = errlen };
	size_t len = strlen(text), budget = CFG_OVER_NODES;
	yaml_document_t doc, extra;
	yaml_parser_t parser;
	yaml_node_t *root, *next;
	json_t *out = NULL;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!yaml_parser_initialize(&parser)) {
		cfg_oom(&ctx);
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		cfg_syntax(&ctx, &parser, text, len);
		goto delete_parser;
	}
	root = yaml_document_get_root_node(&doc);
	if (!yaml_parser_load(&parser, &extra)) {
		cfg_syntax(&ctx, &parser, text, len);
		goto delete_doc;
	}
	next = yaml_document_get_root_node(&extra);
	if (next)
		cfg_fail(&ctx, next->start_mark, "-",
			 "expected one value, found a second document");
	yaml_document_delete(&extra);
	if (next)
		goto delete_doc;
	out = root ? cfg_yaml_json(&doc, root, 1, &budget) : json_null();
	if (out == NULL)
		cfg_fail(&ctx, root->start_mark, "-",
			 "expected a value of at most %d levels and %d nodes, without a key twice",
			 CFG_OVER_DEPTH, CFG_OVER_NODES);

delete_doc:
	yaml_document_delete(&doc);
delete_parser:
	yaml_parser_delete(&parser);
	return out;
}
