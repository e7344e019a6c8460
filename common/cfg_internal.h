/* cfg_internal: what cfg.c and cfg_value.c share. Private to the cfg module:
 * not installed, and no other module includes it (they use cfg.h).
 */
#ifndef VIGIL_CFG_INTERNAL_H
#define VIGIL_CFG_INTERNAL_H

#include <stdint.h>

#include "cfg.h"

#define CFG_KIB   1024ULL
#define CFG_MIB   (1024ULL * CFG_KIB)
#define CFG_GIB   (1024ULL * CFG_MIB)
#define CFG_TIB   (1024ULL * CFG_GIB)
#define CFG_ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/* Indexed by enum cfg_role: cfg_role_name() and the "role" key both read it. */
extern const char *const cfg_role_names[CFG_ROLE_COUNT];

/* A decimal integer with an optional leading '-' and nothing after it. */
int cfg_parse_int(const char *s, int64_t *ret_value);

#endif
