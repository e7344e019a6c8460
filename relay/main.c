/* vigil-relay: the proctors' WebSocket server, a reader of the ring.
 * main only sequences: stage runtime, the views' state file, server, loop,
 * teardown. */
#include "log.h"
#include "relay.h"

int
main(int argc, char **argv)
{
	struct relay_viewlog *views;
	struct stage *st;
	struct relay *rl;
	int r;

	st = stage_new(BUS_RELAY, argc, argv);
	if (st == NULL)
		return 1;
	/* Before the server: what a killed relay left is recorded first. */
	views = relay_view_open(st);
	rl = views != NULL ? relay_new(st, views) : NULL;
	if (rl == NULL) {
		stage_free(st);
		relay_viewlog_close(views);
		return 1;
	}
	r = relay_run(rl);
	relay_free(rl); /* the last proctors' views end */
	log_info("stopped");
	stage_free(st); /* waits (3 s at most) for their records to be durable */
	relay_viewlog_close(views);
	return r < 0 ? 1 : 0;
}
