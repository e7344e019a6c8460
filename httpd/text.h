/* text: a growing text buffer that takes printf formats, for the bodies httpd
 * builds (playlists, the Prometheus text). Out of memory is remembered, not
 * returned at each call: the caller checks oom once at the end. */
#ifndef VIGIL_HTTPD_TEXT_H
#define VIGIL_HTTPD_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct text_buf {
	char *p; /* malloc'ed, NUL-terminated once anything was added; free() it */
	size_t len, cap;
	bool oom;
};

void text_printf(struct text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
