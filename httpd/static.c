/* static: GET / and the web app's files from the web root (VIGIL_WEB_ROOT at
 * build time, or the environment's VIGIL_WEB_ROOT). Only regular files under
 * the root are served (route.c has refused dot segments, odd characters and
 * hidden names already; realpath catches symlinks that lead out); no
 * directory listing. Without a built web app, / says so. Loop thread. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "httpd.h"
#include "server.h"
#include "static.h"

static const char static_missing[] =
	"<!doctype html><html><head><meta charset=\"utf-8\"><title>vigil</title></head>"
	"<body><h1>vigil</h1><p>The web app is not built. Build it in httpd/web "
	"(<code>npm ci &amp;&amp; npm run build</code>) or point VIGIL_WEB_ROOT at a "
	"built one.</p><p>The HTTP API is available: see PROTOCOL.md section 6.</p>"
	"</body></html>\n";

static const struct {
	const char *ext, *type;
} static_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".mjs", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json" },
	{ ".map", "application/json" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".jpg", "image/jpeg" },
	{ ".ico", "image/x-icon" },
	{ ".webmanifest", "application/manifest+json" },
	{ ".woff2", "font/woff2" },
	{ ".txt", "text/plain; charset=utf-8" },
	{ ".wasm", "application/wasm" },
};

static const char *
static_type(const char *file)
{
	const char *dot = strrchr(file, '.');

	for (size_t i = 0; dot != NULL && i < sizeof(static_types) / sizeof(static_types[0]); i++) {
		if (strcmp(dot, static_types[i].ext) == 0)
			return static_types[i].type;
	}
	return "application/octet-stream";
}

/* listen.relay's port; when the config asks for any port (0: tests), the one
 * vigild's last status names, if httpd has one; 0 when not known. */
static int
static_relay_port(struct httpd *h)
{
	const char *listen, *colon;
	json_t *st;
	size_t i;

	if (h->cfg->listen_relay.port != 0 || h->status == NULL)
		return h->cfg->listen_relay.port;
	json_array_foreach(json_object_get(h->status, "stages"), i, st)
	{
		listen = json_string_value(json_object_get(st, "listen"));
		if (listen != NULL && (colon = strrchr(listen, ':')) != NULL &&
		    json_is_string(json_object_get(st, "name")) &&
		    strcmp(json_string_value(json_object_get(st, "name")), "relay") == 0)
			return atoi(colon + 1);
	}
	return 0;
}

void
static_relay(struct httpd *h, struct hreq *r)
{
	int port = static_relay_port(h);

	if (srv_conn_proxied(r->sc))
		hs_json(r, 200, json_pack("{s:b, s:s}", "sameOrigin", 1, "path", "/proctor"));
	else if (port == 0)
		hs_json(r, 200, json_pack("{s:b, s:s}", "sameOrigin", 0, "path", "/proctor"));
	else
		hs_json(r, 200,
			json_pack("{s:b, s:i, s:s}", "sameOrigin", 0, "port", port, "path",
				  "/proctor"));
}

void
static_get(struct httpd *h, struct hreq *r)
{
	const char *file = hs_route(r)->file;
	char path[PATH_MAX], real[PATH_MAX], root[PATH_MAX], etag[HTTPD_ETAG_MAX];
	struct hbody b = { 0 };
	struct stat sb;
	size_t rl;

	if (file[0] == '\0')
		file = "index.html";
	if (realpath(h->web_root, root) == NULL) {
		if (strcmp(file, "index.html") == 0)
			hs_text(r, 200, "text/html; charset=utf-8", static_missing,
				sizeof(static_missing) - 1);
		else
			hs_error(r, 404, "no such resource");
		return;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, file) >= sizeof(path) ||
	    realpath(path, real) == NULL) {
		hs_error(r, 404, "no such resource");
		return;
	}
	rl = strlen(root);
	if (strncmp(real, root, rl) != 0 || real[rl] != '/' || stat(real, &sb) < 0 ||
	    !S_ISREG(sb.st_mode)) {
		hs_error(r, 404, "no such resource");
		return;
	}
	snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)sb.st_size,
		 (unsigned long long)sb.st_mtim.tv_sec * 1000000000ull +
			 (unsigned long long)sb.st_mtim.tv_nsec);
	if (body_add_file(&b, AT_FDCWD, real, 0, (uint64_t)sb.st_size) < 0) {
		hs_error(r, 500, "out of memory");
		return;
	}
	hs_bytes(r, static_type(real), &b, etag, NULL,
		 strcmp(file, "index.html") == 0 ? "no-cache" : "public, max-age=300");
	body_free(&b);
}
