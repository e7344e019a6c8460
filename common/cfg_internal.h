/* cfg_internal: what the cfg*.c files share. Private to the cfg module:
 * not installed, and no other module includes it (they use cfg.h).
 */
#ifndef VIGIL_CFG_INTERNAL_H
#define VIGIL_CFG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "cfg.h"

#define CFG_KIB   1024ULL
#define CFG_MIB   (1024ULL * CFG_KIB)
#define CFG_GIB   (1024ULL * CFG_MIB)
#define CFG_TIB   (1024ULL * CFG_GIB)
#define CFG_ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

#define CFG_SEC_MS         1000LL
#define CFG_DAY_MS         (86400LL * CFG_SEC_MS)
#define CFG_TOKEN_FILE_MAX 4096
#define CFG_KEY_MAX        160 /* dotted key paths in messages */
#define CFG_FOUND_MAX      64  /* quoted values in messages */

/* How a key's value is parsed and stored. */
enum cfg_kind {
	CFG_K_MAP,      /* a nested map: sub[] */
	CFG_K_TOKENS,   /* auth.tokens: a list of maps */
	CFG_K_NETS,     /* trusted_proxies: a list of addresses (cfg_net.c) */
	CFG_K_NAME,     /* char *, [A-Za-z0-9_-]{1,32} */
	CFG_K_STR,      /* char *, non-empty */
	CFG_K_OPTSTR,   /* char *, non-empty or null (NULL) */
	CFG_K_LISTEN,   /* struct cfg_listen */
	CFG_K_INT,      /* int64_t in min..max */
	CFG_K_SIZE,     /* uint64_t bytes in min..max */
	CFG_K_DURATION, /* int64_t ms in min..max */
	CFG_K_TIME,     /* int64_t unix seconds */
	CFG_K_LEVEL,    /* char *, one of cfg_levels */
	CFG_K_SENTINEL, /* bool, required | none */
	CFG_K_ROLE,     /* enum cfg_role */
	CFG_K_FLOOR,    /* struct cfg_floor, sizes up to max */
};

/* Nodes kept for the checks that involve more than one key. */
enum cfg_slot {
	CFG_SLOT_NONE = 0,
	CFG_SLOT_RING,
	CFG_SLOT_MSG,
	CFG_SLOT_CERT,
	CFG_SLOT_KEY,
	CFG_SLOT_NAME,
	CFG_SLOT_TOKEN,
	CFG_SLOT_TOKEN_FILE,
	CFG_SLOT_COUNT,
};

struct cfg_key {
	const char *name;
	enum cfg_kind kind;
	size_t off; /* into struct cfg, or struct cfg_token below auth.tokens */
	int64_t min, max;
	bool zero_ok; /* sizes: 0 means unlimited */
	bool live;    /* may change while running (cfg_over.c); maps: see their keys */
	enum cfg_slot slot;
	const struct cfg_key *sub;
};

struct cfg_ctx {
	const char *file; /* "FILE" in messages; for an update, "config.update" */
	bool update;      /* keys over a loaded cfg: no line and column, tokens replaced */
	char *err;
	size_t errlen;
	yaml_document_t *doc;
	struct cfg *cfg;
	yaml_node_t *where[CFG_SLOT_COUNT];
};

/* cfg_keys.c: the file's keys from the top; cfg.c walks them, cfg_over.c too. */
extern const struct cfg_key cfg_keys_top[];

/* Indexed by enum cfg_role: cfg_role_name() and the "role" key both read it. */
extern const char *const cfg_role_names[CFG_ROLE_COUNT];

/* A decimal integer with an optional leading '-' and nothing after it. */
int cfg_parse_int(const char *s, int64_t *ret_value);

/* cfg_walk.c: a map's keys against a table. */
int cfg_walk_map(struct cfg_ctx *ctx, yaml_node_t *node, const char *prefix,
		 const struct cfg_key *keys, void *base);
/* cfg.c: a whole file of at most max bytes, NUL-terminated (-EFBIG, -errno;
 * *ret_opened tells which step failed). */
int cfg_slurp(const char *path, size_t max, char **ret_buf, size_t *ret_len, bool *ret_opened);
/* cfg.c: the rules between keys, once every key of a document is applied. */
int cfg_check(struct cfg_ctx *ctx);
/* cfg_syntax.c: a libyaml parser's error as the one line. */
int cfg_syntax(struct cfg_ctx *ctx, const yaml_parser_t *parser, const char *text, size_t len);

/* cfg_hint.c: for the unknown key name in the map prefix (whose keys are
 * keys), "; did you mean ring.size?" naming the key probably meant: the same
 * name one level up or down or in another map, or a name of this map spelt
 * nearly alike. "" when nothing is close. */
void cfg_key_hint(const char *prefix, const char *name, const struct cfg_key *keys, char *buf,
		  size_t size);

/* cfg_tokens.c: auth.tokens. */
int cfg_walk_tokens(struct cfg_ctx *ctx, yaml_node_t *node, const char *key);
/* cfg_tokens.c: frees auth.tokens (the secrets wiped) and leaves none. */
void cfg_tokens_free(struct cfg *cfg);

/* cfg_net.c: trusted_proxies. */
int cfg_walk_nets(struct cfg_ctx *ctx, yaml_node_t *node, const char *key);

/* cfg_msg.c: the error line and its pieces. cfg_fail writes
 * "FILE:LINE:COL: KEY: ..." ("config.update: KEY: ..." for an update) and
 * returns -EINVAL; cfg_oom returns -ENOMEM. node may be NULL for a value that
 * came from the file (cfg_mark gives a mark for it all the same). */
int cfg_fail(struct cfg_ctx *ctx, yaml_mark_t mark, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int cfg_oom(struct cfg_ctx *ctx);
yaml_mark_t cfg_mark(const yaml_node_t *node);
void cfg_fmt_size(char *buf, size_t size, uint64_t v);
void cfg_fmt_ms(char *buf, size_t size, int64_t v);
/* What a node is, for "found ...": a map, a list, or the quoted scalar. */
const char *cfg_found(const yaml_node_t *node, char *buf, size_t size);
void cfg_one_line(char *err);
void cfg_key_join(char *buf, size_t size, const char *prefix, const char *name);
void cfg_fmt_choices(char *buf, size_t size, const char *const *names, size_t n);
bool cfg_is_null(const yaml_node_t *node);

#endif
