/* wd_cfg: live configuration in vigild. An update (the console's config.update
 * through httpd, or vigilctl config set) is checked over the file with the
 * file's parsers; its live keys join the overrides vigild keeps in memory,
 * which every stage gets as config.reload { overrides } and merges over its
 * file as a reload does. A reload from the file drops them. Runs in vigild only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "mp.h"
#include "proc.h"
#include "wd.h"

/* ---- the overrides ---- */

/* src over dst: a null takes the key out of dst (back to the file's value),
 * maps merge key by key, anything else replaces. No null is left in dst. */
static int
wd_cfg_merge(json_t *dst, json_t *src)
{
	json_t *v, *sub;
	const char *key;
	int r;

	json_object_foreach(src, key, v)
	{
		if (json_is_null(v)) {
			json_object_del(dst, key);
			continue;
		}
		if (!json_is_object(v)) {
			if (json_object_set_new(dst, key, json_deep_copy(v)) < 0)
				return -ENOMEM;
			continue;
		}
		sub = json_object_get(dst, key);
		sub = json_is_object(sub) ? json_incref(sub) : json_object();
		r = sub ? wd_cfg_merge(sub, v) : -ENOMEM;
		if (r == 0 && json_object_size(sub) == 0)
			json_object_del(dst, key);
		else if (r == 0 && json_object_set(dst, key, sub) < 0)
			r = -ENOMEM;
		json_decref(sub);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A copy of the overrides with src merged in; NULL without memory. */
static json_t *
wd_cfg_merged(const struct wd *wd, json_t *src)
{
	json_t *out = wd->overrides ? json_deep_copy(wd->overrides) : json_object();

	if (out != NULL && wd_cfg_merge(out, src) < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

/* For logs and ctl: every token's secret as "***". */
static json_t *
wd_cfg_redacted(const json_t *over)
{
	json_t *out = over ? json_deep_copy(over) : json_object();
	json_t *tokens = json_object_get(json_object_get(out, "auth"), "tokens"), *t;
	size_t i;

	json_array_foreach(tokens, i, t)
	{
		if (json_object_get(t, "token") != NULL)
			json_object_set_new(t, "token", json_string("***"));
	}
	return out;
}

/* config.reload { overrides? } packed; -E2BIG when it does not fit one bus message. */
static int
wd_cfg_pack(const json_t *over, const char *to, msgpack_sbuffer *sb)
{
	json_t *body = over ? json_pack("{s:O}", "overrides", over) : json_object();
	char err[160];
	int r;

	if (body == NULL)
		return -ENOMEM;
	r = wd_pack_msg(sb, "config.reload", to, body, err, sizeof(err));
	json_decref(body);
	/* Sized for the longest stage name in "to", so that any stage's copy fits. */
	if (r == 0 && sb->size + BUS_NAME_MAX > BUS_MSG_MAX) {
		msgpack_sbuffer_destroy(sb);
		r = -E2BIG;
	}
	return r;
}

void
wd_cfg_send(struct wd *wd, struct wd_child *c)
{
	for (unsigned i = 0; i < wd->n_child; i++) {
		struct wd_child *to = &wd->child[i];
		msgpack_sbuffer sb;
		int r;

		if ((c != NULL && c != to) || to->bus_fd < 0)
			continue;
		/* After a hello with nothing to add, the stage's file is all there is. */
		if (c != NULL && wd->overrides == NULL)
			continue;
		r = wd_cfg_pack(wd->overrides, to->name, &sb);
		if (r == 0) {
			r = wd_bus_send(wd, to, sb.data, sb.size);
			msgpack_sbuffer_destroy(&sb);
		}
		if (r < 0)
			log_error(r, "config.reload not sent to %s", to->name);
	}
}

void
wd_cfg_adopt(struct wd *wd, struct cfg *cfg)
{
	enum log_level level;

	cfg_free(wd->cfg);
	wd->cfg = cfg;
	if (log_level_parse(cfg->log_level, &level) == 0)
		log_set_level(level);
}

void
wd_cfg_warn_tokens(const struct cfg *cfg, json_t *notes)
{
	char note[256];

	for (size_t i = 0; i < cfg->n_tokens; i++) {
		if (!cfg_token_expiry_note(&cfg->tokens[i], proc_now_ms() / 1000, note,
					   sizeof(note)))
			continue;
		log_warn(0, "%s", note);
		if (notes != NULL)
			json_array_append_new(notes, json_string(note));
	}
}

void
wd_cfg_drop(struct wd *wd)
{
	json_decref(wd->overrides);
	wd->overrides = NULL;
}

/* ---- an update ---- */

static const char *
wd_cfg_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "a map";
	case JSON_ARRAY:
		return "a list";
	case JSON_STRING:
		return "a string";
	case JSON_NULL:
		return "null";
	default:
		return "a scalar";
	}
}

/* The value at a dotted key in cfg_to_json's object, or NULL. */
static json_t *
wd_cfg_at(json_t *root, const char *key)
{
	char part[64];
	const char *dot;

	while (root != NULL && (dot = strchr(key, '.')) != NULL) {
		snprintf(part, sizeof(part), "%.*s", (int)(dot - key), key);
		root = json_object_get(root, part);
		key = dot + 1;
	}
	return json_object_get(root, key);
}

/* The keys of others whose value in cand differs from the running one: a
 * restart-only key given with the value it has changes nothing. */
static json_t *
wd_cfg_changed(const struct wd *wd, const struct cfg *cand, json_t *others)
{
	json_t *then = cfg_to_json(cand, true);
	json_t *out = json_array(), *k;
	size_t i;

	json_array_foreach(others, i, k)
	{
		const char *key = json_string_value(k);

		if (out && !json_equal(wd_cfg_at(wd->boot, key), wd_cfg_at(then, key)))
			json_array_append(out, k);
	}
	json_decref(then);
	return out;
}

/* Appends to out the dotted keys, live or not as asked, whose values differ
 * between a and b (cfg_to_json objects of the same shape): maps are walked,
 * anything else (auth.tokens too) is compared whole. */
static void
wd_cfg_diff(json_t *a, json_t *b, const char *prefix, bool live, json_t *out)
{
	char key[CFG_ERR_MAX];
	const char *name;
	json_t *v, *w;

	json_object_foreach(b, name, v)
	{
		snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "." : "", name);
		w = json_object_get(a, name);
		if (json_is_object(v) && json_is_object(w))
			wd_cfg_diff(w, v, key, live, out);
		else if (!json_equal(v, w) && cfg_key_live(key) == live)
			json_array_append_new(out, json_string(key));
	}
}

static void
wd_cfg_log(const char *what, json_t *keys, char *buf, size_t size)
{
	size_t len = (size_t)snprintf(buf, size, "%s", what);
	json_t *k;
	size_t i;

	json_array_foreach(keys, i, k)
	{
		if (len < size)
			len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : " ",
						json_string_value(k));
	}
	if (json_array_size(keys) == 0 && len < size)
		snprintf(buf + len, size - len, " none");
}

/* The one implementation behind the bus's config.update and ctl's
 * config.update and config.set. Nothing changes unless every key passes:
 * the update is merged over the overrides and the file and checked whole,
 * restart-only keys included; then only its live keys join the overrides.
 * On success *ret_result is { applied, restartRequired }. */
static int
wd_cfg_update(struct wd *wd, json_t *update, json_t **ret_result, char *err, size_t errlen)
{
	json_t *all = NULL, *live = NULL, *next = NULL, *live_keys, *other_keys, *restart = NULL;
	json_t *given, *result = NULL;
	struct cfg *cand = NULL, *eff = NULL;
	char line[1024], line2[1024];
	msgpack_sbuffer sb;
	int r;

	if (!json_is_object(update)) {
		snprintf(err, errlen,
			 "config.update: config: expected a map of keys as in the file, "
			 "found %s",
			 update ? wd_cfg_kind(update) : "none");
		return -EINVAL;
	}
	live_keys = json_array();
	other_keys = json_array();
	all = wd_cfg_merged(wd, update);
	r = live_keys && other_keys && all ? 0 : -ENOMEM;
	if (r == 0)
		r = cfg_load_over(wd->config_path, all, &cand, err, errlen);
	if (r < 0)
		goto out;
	/* The ring has as many sentinel slots as the limit said when vigild made it. */
	given = wd_cfg_at(update, "limits.max_sentinels");
	if (given != NULL && !json_is_null(given) && cand->max_sentinels > wd->ring_sentinels) {
		snprintf(err, errlen,
			 "config.update: limits.max_sentinels: expected at most %lld (the ring's "
			 "sentinel slots; more takes a vigild restart), found %lld",
			 (long long)wd->ring_sentinels, (long long)cand->max_sentinels);
		r = -EINVAL;
		goto out;
	}
	r = cfg_over_split(update, (void **)&live, live_keys, other_keys);
	if (r < 0)
		goto out;
	next = wd_cfg_merged(wd, live);
	restart = wd_cfg_changed(wd, cand, other_keys);
	if (next == NULL || restart == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (json_object_size(next) == 0) {
		json_decref(next);
		next = NULL;
	}
	r = cfg_load_over(wd->config_path, next, &eff, err, errlen);
	if (r < 0)
		goto out;
	r = wd_cfg_pack(next, "*", &sb);
	if (r == -E2BIG)
		snprintf(err, errlen,
			 "config.update: -: expected overrides that fit one bus message (%d bytes)",
			 BUS_MSG_MAX);
	if (r < 0)
		goto out;
	msgpack_sbuffer_destroy(&sb);
	result = json_pack("{s:O, s:O}", "applied", live_keys, "restartRequired", restart);
	if (result == NULL) {
		r = -ENOMEM;
		goto out;
	}

	/* Checked: from here on it applies. */
	json_decref(wd->overrides);
	wd->overrides = next;
	next = NULL;
	wd_cfg_adopt(wd, eff);
	eff = NULL;
	wd_cfg_send(wd, NULL);
	wd_cfg_log("config.update: applied", live_keys, line, sizeof(line));
	wd_cfg_log("; not live, not applied:", restart, line2, sizeof(line2));
	log_info("%s%s", line, line2);
	*ret_result = result;

out:
	if (r == -ENOMEM)
		snprintf(err, errlen, "config.update: out of memory");
	cfg_free(eff);
	cfg_free(cand);
	json_decref(restart);
	json_decref(next);
	json_decref(live);
	json_decref(all);
	json_decref(live_keys);
	json_decref(other_keys);
	return r;
}

/* ---- a reload from the file ---- */

static bool
wd_cfg_same_str(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether two configs' tokens differ, secrets included (the JSON shows them
 * as "***": a new secret is a change all the same). */
static bool
wd_cfg_tokens_differ(const struct cfg *a, const struct cfg *b)
{
	if (a->n_tokens != b->n_tokens)
		return true;
	for (size_t i = 0; i < a->n_tokens; i++) {
		const struct cfg_token *x = &a->tokens[i], *y = &b->tokens[i];

		if (x->role != y->role || x->expires != y->expires ||
		    !wd_cfg_same_str(x->name, y->name) || !wd_cfg_same_str(x->token, y->token) ||
		    !wd_cfg_same_str(x->token_file, y->token_file))
			return true;
	}
	return false;
}

int
wd_cfg_reload(struct wd *wd, json_t **ret_result, char *err, size_t errlen)
{
	json_t *was = NULL, *now = NULL, *applied, *restart, *warnings, *k;
	char line[1024], line2[1024];
	bool tokens_listed = false;
	struct cfg *cfg;
	size_t i;
	int r;

	r = cfg_load(wd->config_path, &cfg, err, errlen);
	if (r < 0) {
		log_error(0, "reload refused, keeping the running config: %s", err);
		return r;
	}
	was = cfg_to_json(wd->cfg, true);
	now = cfg_to_json(cfg, true);
	applied = json_array();
	restart = json_array();
	warnings = json_array();
	if (was == NULL || now == NULL || applied == NULL || restart == NULL || warnings == NULL) {
		snprintf(err, errlen, "reload: out of memory");
		cfg_free(cfg);
		r = -ENOMEM;
		goto out;
	}
	/* Against the effective config: dropping an override is a change too. */
	wd_cfg_diff(was, now, "", true, applied);
	json_array_foreach(applied, i, k) tokens_listed |=
		strcmp(json_string_value(k), "auth.tokens") == 0;
	if (!tokens_listed && wd_cfg_tokens_differ(wd->cfg, cfg))
		json_array_append_new(applied, json_string("auth.tokens"));
	/* Against what vigild started with: still waiting until a restart. */
	wd_cfg_diff(wd->boot, now, "", false, restart);
	/* The file is the truth again: the console's live keys go (docs/operations.md). */
	if (wd->overrides != NULL)
		log_info("the live overrides are dropped: back to the file");
	wd_cfg_drop(wd);
	wd_cfg_adopt(wd, cfg);
	wd_cfg_send(wd, NULL);
	wd_rev_prune(wd);
	wd_cfg_warn_tokens(cfg, warnings);
	wd_cfg_log("applied:", applied, line, sizeof(line));
	wd_cfg_log("; not applied until vigild restarts:", restart, line2, sizeof(line2));
	log_info("configuration reloaded from %s: %s%s", wd->config_path, line, line2);
	*ret_result = json_pack("{s:s, s:O, s:O, s:O}", "config", wd->config_path, "applied",
				applied, "restartRequired", restart, "warnings", warnings);
out:
	json_decref(was);
	json_decref(now);
	json_decref(applied);
	json_decref(restart);
	json_decref(warnings);
	return r;
}

/* ---- the bus and ctl.sock ---- */

void
wd_cfg_on_bus(struct wd *wd, struct wd_child *from, const struct bus_msg *msg)
{
	const msgpack_object *ref = mp_map_get(msg->body, "ref");
	const msgpack_object *config = mp_map_get(msg->body, "config");
	json_t *update = config ? mp_to_json(config) : NULL, *result = NULL, *ans;
	char err[CFG_ERR_MAX + 64];
	msgpack_sbuffer sb;
	int r;

	r = wd_cfg_update(wd, update, &result, err, sizeof(err));
	json_decref(update);
	if (r < 0) {
		log_warn(0, "%s refused: %s", msg->type, err);
		ans = json_pack("{s:s}", "error", err);
	} else {
		ans = result;
		result = NULL;
	}
	if (ans != NULL && ref != NULL)
		json_object_set_new(ans, "ref", mp_to_json(ref));
	r = ans ? wd_pack_msg(&sb, "config.result", from->name, ans, err, sizeof(err)) : -ENOMEM;
	json_decref(ans);
	if (r == 0) {
		r = wd_bus_send(wd, from, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
	if (r < 0)
		log_error(r, "config.result not sent to %s", from->name);
}

/* "limits.max_proctors" and a value: { "limits": { "max_proctors": value } }.
 * NULL without memory. */
static json_t *
wd_cfg_nest(const char *key, json_t *value)
{
	const char *end = key + strlen(key), *start;
	json_t *out = json_incref(value), *outer;
	char part[CFG_ERR_MAX];

	while (end > key) {
		for (start = end; start > key && start[-1] != '.'; start--)
			;
		snprintf(part, sizeof(part), "%.*s", (int)(end - start), start);
		outer = json_object();
		/* json_object_set_new takes out even when it fails. */
		if (json_object_set_new(outer, part, out) < 0) {
			json_decref(outer);
			return NULL;
		}
		out = outer;
		end = start > key ? start - 1 : key;
	}
	return out;
}

json_t *
wd_cfg_ctl(struct wd *wd, const char *cmd, json_t *req)
{
	const char *key = json_string_value(json_object_get(req, "key"));
	const char *text = json_string_value(json_object_get(req, "value"));
	json_t *update = NULL, *value, *result = NULL;
	char err[CFG_ERR_MAX + 64];
	int r;

	if (strcmp(cmd, "config") == 0)
		return json_pack("{s:b, s:o, s:o}", "ok", 1, "config", cfg_to_json(wd->cfg, true),
				 "overrides", wd_cfg_redacted(wd->overrides));
	if (strcmp(cmd, "config.update") == 0) {
		update = json_incref(json_object_get(req, "config"));
	} else {
		if (key == NULL || text == NULL)
			return json_pack("{s:b, s:s}", "ok", 0, "error",
					 "config.set needs \"key\" and \"value\"");
		if (key[0] == '\0' || key[0] == '.' || key[strlen(key) - 1] == '.' ||
		    strstr(key, "..") != NULL || strlen(key) >= 160) {
			snprintf(err, sizeof(err),
				 "config.update: %.160s: expected a dotted key such as "
				 "limits.max_proctors",
				 key);
			return json_pack("{s:b, s:s}", "ok", 0, "error", err);
		}
		value = cfg_yaml_value(text, err, sizeof(err));
		if (value == NULL)
			return json_pack("{s:b, s:s}", "ok", 0, "error", err);
		update = wd_cfg_nest(key, value);
		json_decref(value);
	}
	r = wd_cfg_update(wd, update, &result, err, sizeof(err));
	json_decref(update);
	if (r < 0)
		return json_pack("{s:b, s:s}", "ok", 0, "error", err);
	json_object_set_new(result, "ok", json_true());
	return result;
}
