/* cfg_tokens: auth.tokens, each a map of name, role and token or
 * token_file (read here), checked for unique names and secrets. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg_internal.h"

#define T(field) offsetof(struct cfg_token, field)

static const struct cfg_key cfg_keys_token[] = {
	{ .name = "name", .kind = CFG_K_STR, .off = T(name), .slot = CFG_SLOT_NAME },
	{ .name = "role", .kind = CFG_K_ROLE, .off = T(role) },
	{ .name = "token", .kind = CFG_K_STR, .off = T(token), .slot = CFG_SLOT_TOKEN },
	{ .name = "token_file",
	  .kind = CFG_K_STR,
	  .off = T(token_file),
	  .slot = CFG_SLOT_TOKEN_FILE },
	{ .name = "expires", .kind = CFG_K_TIME, .off = T(expires) },
	{ 0 },
};

#undef T

/* What a node of auth.tokens is, for "found ...": never a scalar's text, which
 * may be a secret written where a map was expected (an error message goes to
 * a log). */
static const char *
cfg_found_kind(const yaml_node_t *node)
{
	if (node->type == YAML_MAPPING_NODE)
		return "a map";
	if (node->type == YAML_SEQUENCE_NODE)
		return "a list";
	return "a scalar (not quoted: it may be a secret)";
}

/* Checks one token entry after its keys were applied; reads token_file. */
static int
cfg_check_token(struct cfg_ctx *ctx, yaml_node_t *node, const char *key, size_t i)
{
	struct cfg_token *t = &ctx->cfg->tokens[i];
	yaml_node_t *file_node = ctx->where[CFG_SLOT_TOKEN_FILE];
	yaml_node_t *name_node = ctx->where[CFG_SLOT_NAME], *secret_node;
	char file_key[CFG_KEY_MAX], sub_key[CFG_KEY_MAX], found[CFG_FOUND_MAX];
	size_t len;
	bool opened;
	int r;

	if (!t->name)
		return cfg_fail(ctx, node->start_mark, key, "expected a name, found none");
	if (t->role == CFG_ROLE_COUNT)
		return cfg_fail(ctx, node->start_mark, key, "expected a role, found none");
	if (!t->token == !t->token_file)
		return cfg_fail(ctx, node->start_mark, key,
				"expected exactly one of token or token_file, found %s",
				t->token ? "both" : "neither");
	/* What GET /api/config shows in place of a secret, sent back by a console form. */
	if (ctx->update && t->token && strcmp(t->token, "***") == 0) {
		cfg_key_join(sub_key, sizeof(sub_key), key, "token");
		return cfg_fail(ctx, ctx->where[CFG_SLOT_TOKEN]->start_mark, sub_key,
				"expected the secret itself, found the redacted \"***\"");
	}
	if (t->token_file) {
		cfg_key_join(file_key, sizeof(file_key), key, "token_file");
		r = cfg_slurp(t->token_file, CFG_TOKEN_FILE_MAX, &t->token, &len, &opened);
		if (r == -EFBIG)
			return cfg_fail(ctx, file_node->start_mark, file_key,
					"token file %s is larger than %d bytes", t->token_file,
					CFG_TOKEN_FILE_MAX);
		if (r == -ENOMEM)
			return cfg_oom(ctx);
		if (r < 0)
			return cfg_fail(ctx, file_node->start_mark, file_key,
					"cannot read token file %s: %s", t->token_file,
					strerror(-r));
		while (len > 0 && strchr(" \t\r\n\v\f", t->token[len - 1]))
			t->token[--len] = '\0';
		if (len == 0)
			return cfg_fail(ctx, file_node->start_mark, file_key,
					"expected a token in %s, found an empty file",
					t->token_file);
	}
	/* Names identify a credential in logs and revocations; a shared secret would make the
	 * role ambiguous. */
	for (size_t j = 0; j < i; j++) {
		if (strcmp(ctx->cfg->tokens[j].name, t->name) == 0) {
			cfg_key_join(sub_key, sizeof(sub_key), key, "name");
			return cfg_fail(ctx, name_node->start_mark, sub_key,
					"expected a unique name, found %s again (first at "
					"auth.tokens[%zu])",
					cfg_found(name_node, found, sizeof(found)), j);
		}
		if (strcmp(ctx->cfg->tokens[j].token, t->token) == 0) {
			secret_node = t->token_file ? file_node : ctx->where[CFG_SLOT_TOKEN];
			cfg_key_join(sub_key, sizeof(sub_key), key,
				     t->token_file ? "token_file" : "token");
			return cfg_fail(ctx, secret_node->start_mark, sub_key,
					"expected a secret of its own, found the one of "
					"auth.tokens[%zu]",
					j);
		}
	}
	return 0;
}

void
cfg_tokens_free(struct cfg *cfg)
{
	for (size_t i = 0; i < cfg->n_tokens; i++) {
		if (cfg->tokens[i].token)
			explicit_bzero(cfg->tokens[i].token, strlen(cfg->tokens[i].token));
		free(cfg->tokens[i].token);
		free(cfg->tokens[i].name);
		free(cfg->tokens[i].token_file);
	}
	free(cfg->tokens);
	cfg->tokens = NULL;
	cfg->n_tokens = 0;
}

int
cfg_walk_tokens(struct cfg_ctx *ctx, yaml_node_t *node, const char *key)
{
	char item_key[CFG_KEY_MAX];
	struct cfg *cfg = ctx->cfg;
	yaml_node_item_t *item;
	yaml_node_t *entry;
	size_t n;
	int r;

	if (cfg_is_null(node))
		return 0;
	if (node->type != YAML_SEQUENCE_NODE)
		return cfg_fail(ctx, node->start_mark, key, "expected a list of tokens, found %s",
				cfg_found_kind(node));
	/* An update's list replaces the file's whole: tokens are not merged by name, so that
	 * an operator can remove one ([] removes them all). */
	cfg_tokens_free(cfg);
	n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	if (n == 0)
		return 0;
	cfg->tokens = calloc(n, sizeof(*cfg->tokens));
	if (!cfg->tokens)
		return cfg_oom(ctx);
	item = node->data.sequence.items.start;
	for (size_t i = 0; i < n; i++, item++) {
		entry = yaml_document_get_node(ctx->doc, *item);
		if (snprintf(item_key, sizeof(item_key), "%s[%zu]", key, i) >= CFG_KEY_MAX)
			item_key[CFG_KEY_MAX - 1] = '\0'; /* cannot happen: key is auth.tokens */
		cfg->n_tokens = i + 1; /* so cfg_free() sees what is half-filled */
		cfg->tokens[i].role = CFG_ROLE_COUNT;
		if (entry->type != YAML_MAPPING_NODE)
			return cfg_fail(ctx, entry->start_mark, item_key,
					"expected a map with name, role and token or token_file, "
					"found %s",
					cfg_found_kind(entry));
		ctx->where[CFG_SLOT_NAME] = NULL;
		ctx->where[CFG_SLOT_TOKEN] = ctx->where[CFG_SLOT_TOKEN_FILE] = NULL;
		r = cfg_walk_map(ctx, entry, item_key, cfg_keys_token, &cfg->tokens[i]);
		if (r < 0)
			return r;
		r = cfg_check_token(ctx, entry, item_key, i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* "5 days", "3 hours", "40 minutes": rounded down, never "0 minutes". */
static void
cfg_fmt_span(char *buf, size_t size, int64_t s)
{
	if (s >= 2 * 86400)
		snprintf(buf, size, "%lld days", (long long)(s / 86400));
	else if (s >= 2 * 3600)
		snprintf(buf, size, "%lld hours", (long long)(s / 3600));
	else if (s >= 120)
		snprintf(buf, size, "%lld minutes", (long long)(s / 60));
	else
		snprintf(buf, size, "a minute");
}

bool
cfg_token_expiry_note(const struct cfg_token *t, int64_t now, char *buf, size_t size)
{
	char when[32] = "?", span[32];
	time_t at = (time_t)t->expires;
	struct tm tm;

	if (t->expires == 0 || t->expires - now > CFG_EXPIRY_WARN_S)
		return false;
	if (gmtime_r(&at, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* The name and role only: a note goes to logs and terminals. */
	if (t->expires <= now) {
		cfg_fmt_span(span, sizeof(span), now - t->expires);
		snprintf(buf, size, "token '%s' (%s) expired %s ago (%s): it is refused", t->name,
			 cfg_role_name(t->role), span, when);
	} else {
		cfg_fmt_span(span, sizeof(span), t->expires - now);
		snprintf(buf, size, "token '%s' (%s) expires in %s (%s)", t->name,
			 cfg_role_name(t->role), span, when);
	}
	cfg_one_line(buf);
	return true;
}
