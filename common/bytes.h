/* bytes: a growing byte buffer (what a connection collects: a request head,
 * a WebSocket message, pipelined requests waiting their turn). */
#ifndef VIGIL_BYTES_H
#define VIGIL_BYTES_H

#include <stddef.h>
#include <stdint.h>

struct bytes {
	uint8_t *p;
	size_t len, cap;
};

/* Appends n bytes, doubling the room from 512 bytes as needed; -ENOMEM
 * leaves b as it was. */
int bytes_append(struct bytes *b, const void *p, size_t n);
/* Frees the buffer when it holds more than keep bytes of room (else keeps it
 * for the next use) and empties it. */
void bytes_reset(struct bytes *b, size_t keep);
void bytes_free(struct bytes *b);

#endif
