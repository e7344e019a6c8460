/* vigil-httpd: history, export, HLS, snapshots, health and metrics over HTTP
 * (PROTOCOL.md section 6). main only sequences: stage runtime, server, loop,
 * teardown. */
#include "httpd.h"
#include "log.h"

int
main(int argc, char **argv)
{
	struct stage *st;
	struct httpd *h;
	int r;

	st = stage_new(BUS_HTTPD, argc, argv);
	if (st == NULL)
		return 1;
	h = httpd_new(st);
	if (h == NULL) {
		stage_free(st);
		return 1;
	}
	r = httpd_run(h);
	httpd_free(h);
	log_info("stopped");
	stage_free(st);
	return r < 0 ? 1 : 0;
}
