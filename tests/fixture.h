/* fixture: the real-encoder fMP4 files of tests/data/fmp4 for the unit tests. */
#ifndef VIGIL_TEST_FIXTURE_H
#define VIGIL_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

struct blob {
	uint8_t *data;
	size_t len;
};

/* Reads $VIGIL_SOURCE_DIR/tests/data/fmp4/NAME (meson test sets the variable);
 * a Check assertion fails the test when it cannot. free() the data. */
struct blob fixture_load(const char *name);

#endif
