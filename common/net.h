/* net: TCP listening sockets for the configured addresses, shared by vigild
 * (which opens them once and hands them down) and a stage started by hand. */
#ifndef VIGIL_NET_H
#define VIGIL_NET_H

#include <stddef.h>

#include "cfg.h"

/* Binds and listens (SO_REUSEADDR, backlog SOMAXCONN); close-on-exec and
 * non-blocking. -errno on failure, -EADDRNOTAVAIL for a host that does not resolve. */
int net_listen(const struct cfg_listen *addr);
/* "127.0.0.1:8082" or "[::1]:8082": where fd is bound (the real port when 0 was asked). */
int net_local_name(int fd, char *buf, size_t size, unsigned *ret_port);

#endif
