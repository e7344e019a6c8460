/* fixture: loads the fMP4 fixtures for test_fmp4 and test_mp4split. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "fixture.h"

struct blob
fixture_load(const char *name)
{
	const char *dir = getenv("VIGIL_SOURCE_DIR");
	char path[4096];
	struct blob b = { NULL, 0 };
	FILE *f;
	long n;

	ck_assert_msg(dir != NULL, "VIGIL_SOURCE_DIR is not set: run through meson test");
	snprintf(path, sizeof(path), "%s/tests/data/fmp4/%s", dir, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_gt(n, 0);
	rewind(f);
	b.len = (size_t)n;
	b.data = malloc(b.len);
	ck_assert_ptr_nonnull(b.data);
	ck_assert_uint_eq(fread(b.data, 1, b.len, f), b.len);
	fclose(f);
	return b;
}
