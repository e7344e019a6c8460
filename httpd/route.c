/* route: the strict path parser for vigil-httpd (PROTOCOL.md section 6).
 * Everything it accepts is an exact route with well-formed ids; the rest is
 * refused before any file is looked at. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "id.h"
#include "route.h"

#define ROUTE_MAX_PARTS 8

int
route_parse_int(const char *s, int64_t *ret)
{
	int64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 18 || (n > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

int
route_parse_milli(const char *s, int64_t *ret)
{
	int64_t v = 0;
	size_t i = 0, frac = 0;

	for (; s[i] >= '0' && s[i] <= '9'; i++)
		v = v * 10 + (s[i] - '0');
	if (i == 0 || i > 3)
		return -EINVAL;
	if (s[i] == '.') {
		for (i++; s[i] >= '0' && s[i] <= '9' && frac < 4; i++, frac++)
			v = v * 10 + (s[i] - '0');
		if (frac == 0 || frac > 3)
			return -EINVAL;
	}
	if (s[i] != '\0')
		return -EINVAL;
	for (; frac < 3; frac++)
		v *= 10;
	*ret = v;
	return 0;
}

/* Checks the whole path once: what is refused here can never reach a route or
 * a file name. The path was percent-decoded (http1_path), so a '%' that is
 * still there was double-encoded; an encoded '/' has become a '/' and must
 * fit a route's shape. */
static const char *
route_path_problem(const char *path)
{
	size_t n = strlen(path);

	if (n == 0 || path[0] != '/')
		return "the path must start with /";
	if (n > ROUTE_PATH_MAX)
		return "the path is too long";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];

		if (c < 0x20 || c >= 0x7f)
			return "the path holds a control or non-ASCII byte";
		if (c == '%')
			return "the path holds a '%' after decoding (double encoding)";
		if (c == '\\')
			return "the path holds a backslash";
		if (c == '/' && path[i + 1] == '/')
			return "the path holds an empty segment";
		if (c == '/' && path[i + 1] == '.' &&
		    (path[i + 2] == '/' || path[i + 2] == '\0' ||
		     (path[i + 2] == '.' && (path[i + 3] == '/' || path[i + 3] == '\0'))))
			return "the path holds a . or .. segment";
	}
	return NULL;
}

/* Splits "/a/b/c" into parts; a trailing '/' (other than the root) is refused
 * by the "empty segment" rule above only when doubled, so it is refused here. */
static int
route_split(char *buf, char **parts, int max)
{
	int n = 0;
	char *p = buf + 1;

	if (*p == '\0')
		return 0;
	for (;;) {
		char *slash = strchr(p, '/');

		if (n == max)
			return -1;
		parts[n++] = p;
		if (slash == NULL)
			break;
		*slash = '\0';
		p = slash + 1;
		if (*p == '\0')
			return -1; /* trailing slash */
	}
	return n;
}

static int
route_uuid(const char *s, char out[37], const char *what, struct route *ret)
{
	if (!id_valid(s)) {
		ret->reason = what;
		return -EINVAL;
	}
	for (int i = 0; i < 36; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[36] = '\0';
	return 0;
}

/* "N.ext" with N a canonical decimal: ret->sequence = N; why is the 400's text. */
static int
route_numbered(const char *part, const char *ext, enum route_kind kind, const char *why,
	       struct route *ret)
{
	size_t len = strlen(part), elen = strlen(ext);
	char num[32];

	if (len < elen + 1 || strcmp(part + len - elen, ext) != 0)
		return -ENOENT;
	if (len - elen >= sizeof(num))
		goto bad;
	memcpy(num, part, len - elen);
	num[len - elen] = '\0';
	if (route_parse_int(num, &ret->sequence) < 0)
		goto bad;
	ret->kind = kind;
	return 0;
bad:
	ret->reason = why;
	return -EINVAL;
}

static int
route_session_tail(char **parts, int n, struct route *ret)
{
	/* parts: sessionId [segments [N.m4s] | thumbs [N.jpg] | init.mp4 | export.mp4 |
	 * playlist.m3u8 | manifest.json | marks] */
	if (route_uuid(parts[0], ret->session, "sessionId is not a UUID", ret) < 0)
		return -EINVAL;
	if (n == 1) {
		ret->kind = ROUTE_SESSION;
		return 0;
	}
	if (n == 2) {
		if (strcmp(parts[1], "segments") == 0)
			ret->kind = ROUTE_SEGMENTS;
		else if (strcmp(parts[1], "init.mp4") == 0)
			ret->kind = ROUTE_INIT;
		else if (strcmp(parts[1], "export.mp4") == 0)
			ret->kind = ROUTE_EXPORT;
		else if (strcmp(parts[1], "playlist.m3u8") == 0)
			ret->kind = ROUTE_PLAYLIST;
		else if (strcmp(parts[1], "manifest.json") == 0)
			ret->kind = ROUTE_MANIFEST;
		else if (strcmp(parts[1], "thumbs") == 0)
			ret->kind = ROUTE_THUMBS;
		else if (strcmp(parts[1], "marks") == 0)
			ret->kind = ROUTE_MARKS;
		else
			return -ENOENT;
		return 0;
	}
	if (n == 3 && strcmp(parts[1], "segments") == 0)
		return route_numbered(parts[2], ".m4s", ROUTE_SEGMENT,
				      "the sequence is not a canonical decimal integer", ret);
	if (n == 3 && strcmp(parts[1], "thumbs") == 0)
		return route_numbered(parts[2], ".jpg", ROUTE_THUMB,
				      "the thumbnail's number is not a canonical decimal integer",
				      ret);
	return -ENOENT;
}

static int
route_api(char **parts, int n, struct route *ret)
{
	/* parts[0] is "api". */
	if (n == 2) {
		static const struct {
			const char *name;
			enum route_kind kind;
		} flat[] = {
			/* clang-format off */
			{ "status", ROUTE_API_STATUS },
			{ "metrics", ROUTE_API_METRICS },
			{ "config", ROUTE_API_CONFIG },
			{ "sentinels", ROUTE_SENTINELS },
			{ "sessions", ROUTE_ALL_SESSIONS },
			{ "audit", ROUTE_AUDIT },
			{ "relay", ROUTE_API_RELAY },
			/* clang-format on */
		};

		for (size_t i = 0; i < sizeof(flat) / sizeof(flat[0]); i++) {
			if (strcmp(parts[1], flat[i].name) == 0) {
				ret->kind = flat[i].kind;
				return 0;
			}
		}
		return -ENOENT;
	}
	if (n == 3 && strcmp(parts[1], "audit") == 0 && strcmp(parts[2], "verify") == 0) {
		ret->kind = ROUTE_AUDIT_VERIFY;
		return 0;
	}
	if (strcmp(parts[1], "sentinels") != 0 || n < 4)
		return -ENOENT;
	if (route_uuid(parts[2], ret->sentinel, "sentinelId is not a UUID", ret) < 0)
		return -EINVAL;
	if (n == 4 && strcmp(parts[3], "snapshot.jpg") == 0) {
		ret->kind = ROUTE_SNAPSHOT;
		return 0;
	}
	if (n == 4 && strcmp(parts[3], "live.mjpeg") == 0) {
		ret->kind = ROUTE_LIVE_MJPEG;
		return 0;
	}
	if (strcmp(parts[3], "sessions") != 0)
		return -ENOENT;
	if (n == 4) {
		ret->kind = ROUTE_SESSIONS;
		return 0;
	}
	return route_session_tail(parts + 4, n - 4, ret);
}

/* A static file name: letters, digits, '-', '_', '.', '/' only, no segment
 * starting with '.' (no hidden files, no "..", whatever the client sent). */
static bool
route_static_ok(const char *file)
{
	bool seg_start = true;

	for (const char *p = file; *p != '\0'; p++) {
		if (seg_start && *p == '.')
			return false;
		seg_start = *p == '/';
		if (!isalnum((unsigned char)*p) && strchr("-_./", *p) == NULL)
			return false;
	}
	return true;
}

int
route_parse(const char *path, struct route *ret)
{
	char buf[ROUTE_PATH_MAX + 1];
	char *parts[ROUTE_MAX_PARTS];
	struct route r = { .sequence = -1 };
	const char *why = route_path_problem(path);
	int n, err;

	if (why != NULL) {
		ret->reason = why;
		return -EINVAL;
	}
	strcpy(buf, path); /* fits: checked above */
	n = route_split(buf, parts, ROUTE_MAX_PARTS);
	if (n < 0) {
		/* More segments than any route has, or a trailing slash: no such route. */
		return -ENOENT;
	}
	if (n == 1 && strcmp(parts[0], "health") == 0) {
		r.kind = ROUTE_HEALTH;
	} else if (n == 1 && strcmp(parts[0], "metrics") == 0) {
		r.kind = ROUTE_METRICS;
	} else if (n >= 1 && strcmp(parts[0], "api") == 0) {
		if (n < 2)
			return -ENOENT;
		err = route_api(parts, n, &r);
		if (err < 0) {
			ret->reason = r.reason;
			return err;
		}
	} else {
		if (!route_static_ok(path + 1))
			return -ENOENT;
		r.kind = ROUTE_STATIC;
		r.file = path + 1;
	}
	*ret = r;
	return 0;
}

unsigned
route_methods(enum route_kind kind)
{
	if (kind == ROUTE_SESSION)
		return ROUTE_DELETE;
	if (kind == ROUTE_MARKS)
		return ROUTE_GET | ROUTE_HEAD | ROUTE_POST;
	return ROUTE_GET | ROUTE_HEAD;
}

const char *
route_allow(enum route_kind kind)
{
	if (kind == ROUTE_SESSION)
		return "DELETE";
	if (kind == ROUTE_MARKS)
		return "GET, HEAD, POST";
	return "GET, HEAD";
}
