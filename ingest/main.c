/* vigil-ingest: sequencing only. The stage's own work lands with its issue; until
 * then it holds its place under vigild: hello, heartbeats, clean stop. */
#include <errno.h>

#include "log.h"
#include "stage.h"

int
main(int argc, char **argv)
{
	struct stage *st;
	int r;

	st = stage_new(BUS_INGEST, argc, argv);
	if (st == NULL)
		return 1;
	r = stage_run(st);
	stage_free(st);
	return r < 0 ? 1 : 0;
}
