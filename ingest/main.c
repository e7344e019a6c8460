/* vigil-ingest: the sentinels' WebSocket server and the ring's only writer.
 * main only sequences: stage runtime, server, loop, teardown. */
#include "ingest.h"
#include "log.h"

int
main(int argc, char **argv)
{
	struct stage *st;
	struct ingest *ing;
	int r;

	st = stage_new(BUS_INGEST, argc, argv);
	if (st == NULL)
		return 1;
	ing = ingest_new(st);
	if (ing == NULL) {
		stage_free(st);
		return 1;
	}
	r = ingest_run(ing);
	ingest_free(ing);
	log_info("stopped");
	stage_free(st);
	return r < 0 ? 1 : 0;
}
