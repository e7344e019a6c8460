/* wd_rev: revoked tokens, kept by vigild so that they outlive a stage's
 * restart, a reload and vigild's own restart, until an operator lifts one or
 * the token leaves the config. Only SHA-256 digests are kept (tok.h), never a
 * token. Every change is on disk (temp file, fsync, rename, fsync of the
 * directory) before the stages hear of it. Runs in vigild only.
 *
 * data_dir/.revoked-tokens (0600), text, one revocation a line:
 *
 *   # vigil revoked tokens v1: SHA-256 of the token (hex), unix ms revoked
 *   3f9a...64 hex digits... 1767225600000
 *
 * Lines starting with '#' are comments. Any other line that is not 64 hex
 * digits, one space and a decimal number stops vigild from starting: a file
 * it cannot read must not silently lift revocations.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "layout.h"
#include "log.h"
#include "mp.h"
#include "proc.h"
#include "tok.h"
#include "wd.h"

#define WD_REV_MAX        512       /* a "revoked" of 512 digests is 34 KiB: one bus message */
#define WD_REV_FILE_MAX   (1 << 20) /* far beyond WD_REV_MAX lines */
#define WD_REV_PREFIX     12        /* hex digits of a digest that --list shows */
#define WD_REV_PREFIX_MIN 6         /* the shortest prefix --lift takes */
#define WD_REV_HEADER     "# vigil revoked tokens v1: SHA-256 of the token (hex), unix ms revoked\n"

struct wd_rev_entry {
	uint8_t digest[TOK_DIGEST_LEN];
	int64_t at_ms;
};

struct wd_rev {
	char *dir; /* data_dir as it was at vigild's start */
	struct wd_rev_entry *v;
	size_t n;
};

/* ---- the file ---- */

/* The whole list, atomically: a crash leaves the old file or the new one. */
static int
wd_rev_save(const struct wd_rev *rev)
{
	char hex[TOK_DIGEST_HEX + 1];
	size_t cap = strlen(WD_REV_HEADER) + rev->n * (TOK_DIGEST_HEX + 32), len;
	char *text = malloc(cap);
	int dfd, r;

	if (text == NULL)
		return -ENOMEM;
	len = (size_t)snprintf(text, cap, "%s", WD_REV_HEADER);
	for (size_t i = 0; i < rev->n && len < cap; i++) {
		tok_digest_hex(rev->v[i].digest, hex);
		len += (size_t)snprintf(text + len, cap - len, "%s %" PRId64 "\n", hex,
					rev->v[i].at_ms);
	}
	r = files_mkdirs(rev->dir, 0750);
	dfd = r == 0 ? open(rev->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (r == 0 && dfd < 0)
		r = -errno;
	/* 0600: a digest of a short token can be searched for. */
	if (r == 0)
		r = files_replace(dfd, LAYOUT_REVOKED, text, len, 0600, true);
	if (dfd >= 0)
		close(dfd);
	free(text);
	return r;
}

static int
wd_rev_parse(struct wd_rev *rev, char *text, const char *path, char *err, size_t errlen)
{
	size_t lineno = 0;
	char *line, *next, *end;
	long long at;

	for (line = text; *line != '\0'; line = next) {
		struct wd_rev_entry e;

		lineno++;
		next = strchr(line, '\n');
		if (next == NULL) {
			snprintf(err, errlen, "%s:%zu: expected a line that ends with a newline",
				 path, lineno);
			return -EINVAL;
		}
		*next++ = '\0';
		if (line[0] == '#')
			continue;
		errno = 0;
		if (strlen(line) < TOK_DIGEST_HEX + 2 || line[TOK_DIGEST_HEX] != ' ' ||
		    tok_digest_parse(line, TOK_DIGEST_HEX, e.digest) < 0 ||
		    (at = strtoll(line + TOK_DIGEST_HEX + 1, &end, 10)) < 0 || *end != '\0' ||
		    errno != 0 || end == line + TOK_DIGEST_HEX + 1) {
			snprintf(err, errlen,
				 "%s:%zu: expected a SHA-256 in hex, a space and unix ms; fix the "
				 "line or remove the file (which lifts every revocation)",
				 path, lineno);
			return -EINVAL;
		}
		if (rev->n == WD_REV_MAX) {
			snprintf(err, errlen, "%s:%zu: expected at most %d revocations", path,
				 lineno, WD_REV_MAX);
			return -EINVAL;
		}
		e.at_ms = at;
		rev->v[rev->n++] = e;
	}
	return 0;
}

static int
wd_rev_load(struct wd_rev *rev, char *err, size_t errlen)
{
	char path[4200], *text = NULL;
	size_t len = 0;
	ssize_t got;
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", rev->dir, LAYOUT_REVOKED);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return r;
	}
	text = malloc(WD_REV_FILE_MAX + 1);
	if (text == NULL) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto close_fd;
	}
	while (len <= WD_REV_FILE_MAX &&
	       (got = read(fd, text + len, WD_REV_FILE_MAX + 1 - len)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 || len + (size_t)got > WD_REV_FILE_MAX) {
			r = got < 0 ? -errno : -EFBIG;
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
			goto free_text;
		}
		len += (size_t)got;
	}
	text[len] = '\0';
	if (strlen(text) != len) {
		r = -EINVAL;
		snprintf(err, errlen, "%s: expected text, found a NUL byte", path);
		goto free_text;
	}
	r = wd_rev_parse(rev, text, path, err, errlen);
free_text:
	free(text);
close_fd:
	close(fd);
	return r;
}

/* ---- the list against the config ---- */

/* The configured token whose secret has this digest, or NULL. */
static const struct cfg_token *
wd_rev_token(const struct cfg *cfg, const uint8_t digest[TOK_DIGEST_LEN])
{
	uint8_t d[TOK_DIGEST_LEN];

	for (size_t i = 0; i < cfg->n_tokens; i++) {
		const struct cfg_token *t = &cfg->tokens[i];

		if (tok_digest(t->token, strlen(t->token), d) == 0 &&
		    memcmp(d, digest, TOK_DIGEST_LEN) == 0)
			return t;
	}
	return NULL;
}

static ssize_t
wd_rev_index(const struct wd_rev *rev, const uint8_t digest[TOK_DIGEST_LEN])
{
	for (size_t i = 0; i < rev->n; i++) {
		if (memcmp(rev->v[i].digest, digest, TOK_DIGEST_LEN) == 0)
			return (ssize_t)i;
	}
	return -1;
}

/* Drops the revocations of tokens cfg does not have: a token taken out of the
 * config is refused anyway, and one put back later is a new decision. */
static size_t
wd_rev_drop_unknown(struct wd_rev *rev, const struct cfg *cfg)
{
	size_t kept = 0, n = rev->n;

	for (size_t i = 0; i < rev->n; i++) {
		if (wd_rev_token(cfg, rev->v[i].digest) != NULL)
			rev->v[kept++] = rev->v[i];
	}
	rev->n = kept;
	return n - kept;
}

void
wd_rev_prune(struct wd *wd)
{
	size_t dropped = wd_rev_drop_unknown(wd->rev, wd->cfg);
	int r;

	if (dropped > 0) {
		r = wd_rev_save(wd->rev);
		if (r < 0)
			log_error(r, "%s/%s not rewritten", wd->rev->dir, LAYOUT_REVOKED);
		log_info("%zu revocation%s of tokens no longer in the config dropped", dropped,
			 dropped == 1 ? "" : "s");
	}
	wd_rev_send(wd, NULL);
}

int
wd_rev_open(struct wd *wd, char *err, size_t errlen)
{
	struct wd_rev *rev = calloc(1, sizeof(*rev));
	int r;

	if (rev == NULL || (rev->v = calloc(WD_REV_MAX, sizeof(*rev->v))) == NULL ||
	    (rev->dir = strdup(wd->cfg->data_dir)) == NULL) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	r = wd_rev_load(rev, err, errlen);
	if (r < 0)
		goto fail;
	wd->rev = rev;
	if (wd_rev_drop_unknown(rev, wd->cfg) > 0 && (r = wd_rev_save(rev)) < 0)
		log_error(r, "%s/%s not rewritten", rev->dir, LAYOUT_REVOKED);
	if (rev->n > 0)
		log_info("%zu token%s revoked (%s/%s)", rev->n, rev->n == 1 ? "" : "s", rev->dir,
			 LAYOUT_REVOKED);
	return 0;

fail:
	if (rev != NULL) {
		free(rev->v);
		free(rev->dir);
	}
	free(rev);
	return r;
}

void
wd_rev_free(struct wd *wd)
{
	if (wd->rev == NULL)
		return;
	free(wd->rev->v);
	free(wd->rev->dir);
	free(wd->rev);
	wd->rev = NULL;
}

/* ---- telling the stages ---- */

void
wd_rev_send(struct wd *wd, struct wd_child *c)
{
	char hex[TOK_DIGEST_HEX + 1];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	for (unsigned i = 0; i < wd->n_child; i++) {
		struct wd_child *to = &wd->child[i];

		if ((c != NULL && c != to) || to->bus_fd < 0)
			continue;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		bus_pack_begin(&pk, "revoked", "vigild", to->name);
		msgpack_pack_map(&pk, 1);
		mp_pack_str(&pk, "digests");
		msgpack_pack_array(&pk, (uint32_t)wd->rev->n);
		for (size_t j = 0; j < wd->rev->n; j++) {
			tok_digest_hex(wd->rev->v[j].digest, hex);
			mp_pack_str(&pk, hex);
		}
		r = wd_bus_send(wd, to, sb.data, sb.size);
		if (r < 0)
			log_error(r, "revoked not sent to %s", to->name);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* ---- revoking and lifting ---- */

/* Persists the revocation of secret, then tells every stage. -ENOENT for a
 * token the running config does not have, -ENOSPC past WD_REV_MAX, -errno
 * when the file was not written (nothing changed then). */
static int
wd_rev_add(struct wd *wd, const char *secret, size_t len, const struct cfg_token **ret_token)
{
	struct wd_rev *rev = wd->rev;
	uint8_t digest[TOK_DIGEST_LEN];
	const struct cfg_token *t;
	int r;

	r = tok_digest(secret, len, digest);
	if (r < 0)
		return r;
	t = wd_rev_token(wd->cfg, digest);
	if (t == NULL)
		return -ENOENT;
	*ret_token = t;
	if (wd_rev_index(rev, digest) >= 0)
		return 0;
	if (rev->n == WD_REV_MAX)
		return -ENOSPC;
	memcpy(rev->v[rev->n].digest, digest, TOK_DIGEST_LEN);
	rev->v[rev->n].at_ms = proc_now_ms();
	rev->n++;
	r = wd_rev_save(rev);
	if (r < 0) {
		rev->n--;
		return r;
	}
	log_info("token '%s' (%s) revoked", t->name, cfg_role_name(t->role));
	wd_rev_send(wd, NULL);
	return 0;
}

/* token.revoke { token } on its way to every stage: on disk first. The
 * message goes on even when that fails, so that it takes effect now. */
void
wd_rev_from_bus(struct wd *wd, const struct bus_msg *msg)
{
	const struct cfg_token *t;
	const char *secret;
	size_t len;
	int r;

	if (mp_get_str(msg->body, "token", &secret, &len) < 0 || len == 0)
		return;
	r = wd_rev_add(wd, secret, len, &t);
	if (r == -ENOENT)
		log_warn(0, "token.revoke from %s: not a token of the config", msg->from);
	else if (r < 0)
		log_error(r, "token.revoke from %s: not kept in %s/%s", msg->from, wd->rev->dir,
			  LAYOUT_REVOKED);
}

static json_t *
wd_rev_entry_json(const struct wd *wd, const struct wd_rev_entry *e)
{
	const struct cfg_token *t = wd_rev_token(wd->cfg, e->digest);
	char hex[TOK_DIGEST_HEX + 1];

	tok_digest_hex(e->digest, hex);
	hex[WD_REV_PREFIX] = '\0';
	return json_pack("{s:s?, s:s?, s:s, s:I}", "name", t ? t->name : NULL, "role",
			 t ? cfg_role_name(t->role) : NULL, "digest", hex, "revokedAt",
			 (json_int_t)e->at_ms);
}

/* The revocation a name or a digest prefix designates: its index, or -1
 * with err filled. */
static ssize_t
wd_rev_find(const struct wd *wd, const char *what, char *err, size_t errlen)
{
	const struct wd_rev *rev = wd->rev;
	char hex[TOK_DIGEST_HEX + 1];
	size_t len = strlen(what);
	ssize_t found = -1;
	int matches = 0;

	for (size_t i = 0; i < rev->n; i++) {
		const struct cfg_token *t = wd_rev_token(wd->cfg, rev->v[i].digest);

		if (t != NULL && strcmp(t->name, what) == 0)
			return (ssize_t)i;
	}
	if (len >= WD_REV_PREFIX_MIN && len <= TOK_DIGEST_HEX) {
		for (size_t i = 0; i < rev->n; i++) {
			tok_digest_hex(rev->v[i].digest, hex);
			if (strncasecmp(hex, what, len) == 0) {
				found = (ssize_t)i;
				matches++;
			}
		}
	}
	if (matches == 1)
		return found;
	if (matches > 1)
		snprintf(err, errlen, "'%.80s' begins %d revoked digests: give more of it", what,
			 matches);
	else
		snprintf(err, errlen,
			 "'%.80s' is neither the name of a revoked token nor the beginning (%d hex "
			 "digits or more) of a revoked digest",
			 what, WD_REV_PREFIX_MIN);
	return -1;
}

static json_t *
wd_rev_lift(struct wd *wd, const char *what)
{
	struct wd_rev *rev = wd->rev;
	struct wd_rev_entry e;
	char err[256];
	json_t *lifted;
	ssize_t i;
	int r;

	i = wd_rev_find(wd, what, err, sizeof(err));
	if (i < 0)
		return json_pack("{s:b, s:s}", "ok", 0, "error", err);
	e = rev->v[i];
	memmove(&rev->v[i], &rev->v[i + 1], (rev->n - (size_t)i - 1) * sizeof(rev->v[0]));
	rev->n--;
	r = wd_rev_save(rev);
	if (r < 0) {
		memmove(&rev->v[i + 1], &rev->v[i], (rev->n - (size_t)i) * sizeof(rev->v[0]));
		rev->v[i] = e;
		rev->n++;
		snprintf(err, sizeof(err), "%s/%s not written: %s", rev->dir, LAYOUT_REVOKED,
			 strerror(-r));
		return json_pack("{s:b, s:s}", "ok", 0, "error", err);
	}
	lifted = wd_rev_entry_json(wd, &e);
	log_info("a revocation lifted (%s)", json_string_value(json_object_get(lifted, "digest")));
	wd_rev_send(wd, NULL);
	return json_pack("{s:b, s:o}", "ok", 1, "lifted", lifted);
}

/* token.revoke { token } from vigild to every stage, after the file has it. */
static void
wd_rev_forward(struct wd *wd, const char *secret)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "token.revoke", "vigild", "*");
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_str(&pk, "token", secret);
	for (unsigned i = 0; i < wd->n_child; i++) {
		if (wd->child[i].bus_fd >= 0)
			wd_bus_send(wd, &wd->child[i], sb.data, sb.size);
	}
	msgpack_sbuffer_destroy(&sb);
}

json_t *
wd_rev_ctl(struct wd *wd, const char *cmd, json_t *req)
{
	const char *secret = json_string_value(json_object_get(req, "token"));
	const struct cfg_token *t;
	json_t *list;
	char err[256];
	int r;

	if (strcmp(cmd, "revoked") == 0) {
		list = json_array();
		for (size_t i = 0; list != NULL && i < wd->rev->n; i++)
			json_array_append_new(list, wd_rev_entry_json(wd, &wd->rev->v[i]));
		return json_pack("{s:b, s:o}", "ok", 1, "revoked", list);
	}
	if (strcmp(cmd, "lift") == 0) {
		const char *what = json_string_value(json_object_get(req, "name"));

		if (what == NULL || what[0] == '\0')
			return json_pack("{s:b, s:s}", "ok", 0, "error",
					 "lift needs \"name\": a token's name or a digest prefix");
		return wd_rev_lift(wd, what);
	}
	if (secret == NULL || secret[0] == '\0')
		return json_pack("{s:b, s:s}", "ok", 0, "error", "missing \"token\"");
	r = wd_rev_add(wd, secret, strlen(secret), &t);
	if (r == -ENOENT)
		snprintf(err, sizeof(err), "not a token of the running config");
	else if (r == -ENOSPC)
		snprintf(err, sizeof(err),
			 "%d tokens are revoked already: take some out of the config instead",
			 WD_REV_MAX);
	else if (r < 0)
		snprintf(err, sizeof(err), "%s/%s not written: %s", wd->rev->dir, LAYOUT_REVOKED,
			 strerror(-r));
	if (r < 0)
		return json_pack("{s:b, s:s}", "ok", 0, "error", err);
	/* As the console's revocation does: the stages act on the token at once too. */
	wd_rev_forward(wd, secret);
	return json_pack("{s:b, s:s, s:s}", "ok", 1, "name", t->name, "role",
			 cfg_role_name(t->role));
}
