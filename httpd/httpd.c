/* httpd: vigil-httpd's state: config, tokens, the ring (as a reader), the web
 * root, and the server on the stage's socket. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive_read.h"
#include "aread.h"
#include "catalog.h"
#include "console.h"
#include "forget.h"
#include "hlscap.h"
#include "httpd.h"
#include "log.h"
#include "mjpeg.h"
#include "record.h"
#include "snap.h"
#include "thumb.h"
#include "xplan.h"

#ifndef VIGIL_WEB_ROOT
#define VIGIL_WEB_ROOT "/usr/share/vigil/web"
#endif

static int
httpd_load_tokens(struct httpd *h)
{
	struct tok_store *tok = tok_store_new();
	int r;

	if (tok == NULL)
		return -ENOMEM;
	r = tok_store_load(tok, h->cfg);
	/* vigild's revocations outlive a reload and a restart (common/stage.h). */
	if (r == 0)
		r = stage_set_revoked(h->st, tok);
	if (r < 0) {
		tok_store_free(tok);
		return r;
	}
	tok_store_free(h->tok);
	h->tok = tok;
	return 0;
}

/* The key of playlist tokens, kept in data_dir so that the links of a
 * playlist a player holds still work after a restart of httpd. Without it
 * (no data_dir yet when run by hand, a file refused) a key of this process
 * alone does: its tokens end with it. */
static int
httpd_open_hlscap(struct httpd *h)
{
	int dfd = ar_data_fd(h);
	int r = dfd >= 0 ? hlscap_open(dfd, &h->hlscap) : -errno;

	if (r == 0)
		return 0;
	log_error(r, "%s/%s not usable: playlist tokens will not outlive this httpd",
		  h->cfg->data_dir, HLSCAP_KEY_FILE);
	h->hlscap = hlscap_new_random();
	return h->hlscap != NULL ? 0 : -errno;
}

void
httpd_reload(struct httpd *h)
{
	if (stage_reload(h->st) < 0)
		return;
	h->cfg = stage_cfg(h->st);
	/* The old config is freed: the console's WebSocket server held it too. */
	console_set_cfg(h);
	if (httpd_load_tokens(h) < 0)
		log_error(0, "tokens of the new config not loaded; the old ones stay");
}

struct httpd *
httpd_new(struct stage *st, struct relay_viewlog *views)
{
	struct httpd *h = calloc(1, sizeof(*h));
	const char *root = getenv("VIGIL_WEB_ROOT");
	int r;

	if (h == NULL)
		return NULL;
	h->st = st;
	h->views = views;
	h->cfg = stage_cfg(st);
	h->data_fd = -1;
	snprintf(h->web_root, sizeof(h->web_root), "%s",
		 root != NULL && root[0] != '\0' ? root : VIGIL_WEB_ROOT);
	r = httpd_load_tokens(h);
	if (r < 0) {
		log_error(r, "tokens not loaded");
		goto fail;
	}
	r = httpd_open_hlscap(h);
	if (r < 0) {
		log_error(r, "no key for playlist tokens");
		goto fail;
	}
	snprintf(h->ring_name, sizeof(h->ring_name), "/vigil-%s", h->cfg->instance);
	r = ring_open(h->ring_name, false, &h->ring);
	if (r < 0) {
		/* Standalone (no vigild): the archive on disk is still served. */
		log_warn(r, "ring_open(%s) as reader failed: serving the archive only",
			 h->ring_name);
		h->ring = NULL;
	}
	r = rec_init(h);
	if (r < 0)
		goto fail;
	snap_init(h);
	xplan_init(h);
	aread_init(h);
	thumb_init(h);
	r = hs_open(h);
	if (r < 0) {
		log_error(r, "the HTTP server did not start");
		goto fail;
	}
	log_info("web app from %s", h->web_root);
	return h;
fail:
	httpd_free(h);
	errno = r < 0 ? -r : EIO;
	return NULL;
}

int
httpd_run(struct httpd *h)
{
	return hs_run(h);
}

void
httpd_free(struct httpd *h)
{
	if (h == NULL)
		return;
	/* Whoever waits for a record hears now, while what it points at is
	 * still there: the outbox outlives h (stage_free drains it). The views'
	 * journal is not h's: its waits go on. */
	rec_release(h);
	console_release(h);
	/* The worker threads (decoders, snapshots, export plans, the audit
	 * log's check) wake the loop:
	 * they stop before it goes. */
	mjpeg_stop(h);
	rec_free(h);
	snap_free(h);
	xplan_free(h);
	aread_free(h);
	thumb_free(h);
	hs_close(h);
	mjpeg_free(h);
	if (h->ring != NULL)
		ring_close(h->ring);
	if (h->data_fd >= 0)
		close(h->data_fd);
	tok_store_free(h->tok);
	hlscap_free(h->hlscap);
	ar_forget_free(h);
	catalog_free(h);
	json_decref(h->status);
	json_decref(h->deleted);
	json_decref(h->marked);
	ar_cache_free();
	free(h);
}
