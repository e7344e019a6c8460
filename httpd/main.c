/* vigil-httpd: history, export, HLS, snapshots, health and metrics over HTTP
 * (PROTOCOL.md section 6). main only sequences: stage runtime, the
 * live.mjpeg views' journal, server, loop, teardown. */
#include "httpd.h"
#include "log.h"
#include "viewlog.h"

int
main(int argc, char **argv)
{
	struct relay_viewlog *views;
	struct stage *st;
	struct httpd *h;
	int r;

	st = stage_new(BUS_HTTPD, argc, argv);
	if (st == NULL)
		return 1;
	/* Before the server: the views a killed httpd left are recorded first
	 * (docs/audit.md), like relay's. */
	views = relay_viewlog_for(st, "httpd.views", "live.mjpeg");
	h = views != NULL ? httpd_new(st, views) : NULL;
	if (h == NULL) {
		stage_free(st);
		relay_viewlog_close(views);
		return 1;
	}
	r = httpd_run(h);
	httpd_free(h); /* the last streams' views end */
	log_info("stopped");
	stage_free(st); /* waits (3 s at most) for their records to be durable */
	relay_viewlog_close(views);
	return r < 0 ? 1 : 0;
}
