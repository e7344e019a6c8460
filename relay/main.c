/* vigil-relay: the proctors' WebSocket server, a reader of the ring.
 * main only sequences: stage runtime, server, loop, teardown. */
#include "log.h"
#include "relay.h"

int
main(int argc, char **argv)
{
	struct stage *st;
	struct relay *rl;
	int r;

	st = stage_new(BUS_RELAY, argc, argv);
	if (st == NULL)
		return 1;
	rl = relay_new(st);
	if (rl == NULL) {
		stage_free(st);
		return 1;
	}
	r = relay_run(rl);
	relay_free(rl);
	log_info("stopped");
	stage_free(st);
	return r < 0 ? 1 : 0;
}
