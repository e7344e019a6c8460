/* id: UUIDs for sentinels and sessions (libuuid), in their canonical text
 * form "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". Produced in lower case,
 * accepted in either case. */
#ifndef VIGIL_ID_H
#define VIGIL_ID_H

#include <stdbool.h>
#include <stdint.h>

/* 36 characters and the NUL. */
#define ID_STR_LEN 37

/* A random (version 4) UUID in lower case. */
void id_new(char out[ID_STR_LEN]);
/* Exactly 36 characters, dashes at 8, 13, 18 and 23, hex digits elsewhere.
 * No version check: the nil UUID is valid. */
bool id_valid(const char *s);
/* -EINVAL unless id_valid(s); out untouched then. */
int id_parse(const char *s, uint8_t out[16]);
void id_format(const uint8_t in[16], char out[ID_STR_LEN]);
bool id_is_nil(const uint8_t id[16]);

#endif
