/* cfg_msg: the one line a refused configuration gets (FILE:LINE:COL: KEY:
 * what was expected, found what), and the formatting it is made of. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cfg_internal.h"

#define CFG_FOUND_CHARS 40

void
cfg_fmt_size(char *buf, size_t size, uint64_t v)
{
	static const char *const units[] = { "TiB", "GiB", "MiB", "KiB" };
	static const uint64_t mults[] = { CFG_TIB, CFG_GIB, CFG_MIB, CFG_KIB };

	for (size_t i = 0; i < 4; i++) {
		if (v != 0 && v % mults[i] == 0) {
			snprintf(buf, size, "%" PRIu64 "%s", v / mults[i], units[i]);
			return;
		}
	}
	snprintf(buf, size, "%" PRIu64 "B", v);
}

void
cfg_fmt_ms(char *buf, size_t size, int64_t v)
{
	static const char *const units[] = { "d", "h", "m", "s" };
	static const int64_t mults[] = { CFG_DAY_MS, 3600000, 60000, 1000 };

	for (size_t i = 0; i < 4; i++) {
		if (v != 0 && v % mults[i] == 0) {
			snprintf(buf, size, "%" PRId64 "%s", v / mults[i], units[i]);
			return;
		}
	}
	snprintf(buf, size, "%" PRId64 "ms", v);
}

/* What a node is, for "found ...": a map, a list, or the quoted scalar on one line. */
const char *
cfg_found(const yaml_node_t *node, char *buf, size_t size)
{
	const char *s;
	size_t n = 0, i;

	if (node->type == YAML_MAPPING_NODE)
		return "a map";
	if (node->type == YAML_SEQUENCE_NODE)
		return "a list";
	s = (const char *)node->data.scalar.value;
	buf[n++] = '"';
	for (i = 0; s[i] && i < CFG_FOUND_CHARS && n + 8 < size; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf[n++] = '\\';
		if (s[i] == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
		} else {
			buf[n++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
		}
	}
	if (s[i]) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

/* Keeps the message on one line whatever names and paths the file held. */
void
cfg_one_line(char *err)
{
	for (; *err; err++) {
		if ((unsigned char)*err < 0x20)
			*err = '?';
	}
}

int
cfg_fail(struct cfg_ctx *ctx, yaml_mark_t mark, const char *key, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!ctx->err || ctx->errlen == 0)
		return -EINVAL;
	/* An update has no lines: its keys are all there is to point at. */
	if (ctx->update)
		n = snprintf(ctx->err, ctx->errlen, "%s: %s: ", ctx->file, key);
	else
		n = snprintf(ctx->err, ctx->errlen, "%s:%zu:%zu: %s: ", ctx->file, mark.line + 1,
			     mark.column + 1, key);
	if (n >= 0 && (size_t)n < ctx->errlen) {
		va_start(ap, fmt);
		vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	cfg_one_line(ctx->err);
	return -EINVAL;
}

yaml_mark_t
cfg_mark(const yaml_node_t *node)
{
	yaml_mark_t none = { 0 };

	return node ? node->start_mark : none;
}

int
cfg_oom(struct cfg_ctx *ctx)
{
	if (ctx->err && ctx->errlen > 0)
		snprintf(ctx->err, ctx->errlen, "%s: out of memory", ctx->file);
	return -ENOMEM;
}

/* "prefix.name" with control characters from the file made visible. */
void
cfg_key_join(char *buf, size_t size, const char *prefix, const char *name)
{
	int n = snprintf(buf, size, "%s%s%s", prefix, prefix[0] ? "." : "", name);

	for (int i = 0; i < n && (size_t)i < size - 1; i++) {
		if ((unsigned char)buf[i] < 0x20)
			buf[i] = '?';
	}
}

/* "a, b or c" */
void
cfg_fmt_choices(char *buf, size_t size, const char *const *names, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && len < size; i++) {
		len += (size_t)snprintf(buf + len, size - len, "%s%s",
					i == 0       ? ""
					: i + 1 == n ? " or "
						     : ", ",
					names[i]);
	}
}

bool
cfg_is_null(const yaml_node_t *node)
{
	const char *s;

	if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	s = (const char *)node->data.scalar.value;
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}
