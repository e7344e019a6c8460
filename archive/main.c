/* vigil-archive: copies every segment of the ring to disk, crash-safe, with an
 * index, retention and deletion (docs/archive.md). main only sequences: stage
 * runtime, archive (its writer thread starts inside), loop, teardown. */
#include "archive.h"
#include "log.h"

int
main(int argc, char **argv)
{
	struct archive *ar;
	struct stage *st;
	int r;

	st = stage_new(BUS_ARCHIVE, argc, argv);
	if (st == NULL)
		return 1;
	ar = archive_new(st);
	if (ar == NULL) {
		stage_free(st);
		return 1;
	}
	r = archive_run(ar);
	archive_free(ar);
	log_info("stopped");
	stage_free(st);
	return r < 0 ? 1 : 0;
}
