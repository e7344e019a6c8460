/* lwsfd: a descriptor of the stage's own (the listening socket, the bus, the
 * signalfd) in a libwebsockets poll loop, for the stages built on lws. */
#ifndef VIGIL_LWSFD_H
#define VIGIL_LWSFD_H

#include <stdint.h>

struct lws_vhost;

/* Adopts a duplicate of fd into vh's loop as a raw file of the vhost's
 * "vigil-fd" protocol, tagged with kind (lws_get_opaque_user_data): lws closes
 * what it adopts, and the stage keeps fd. 0, or -errno. */
int lwsfd_adopt(struct lws_vhost *vh, int fd, intptr_t kind);

/* Accepts every pending connection of the listening socket lfd into vh, with
 * SO_SNDBUF sndbuf when it is above 0 (else the kernel's autotuning). */
void lwsfd_accept(struct lws_vhost *vh, int lfd, int sndbuf);

#endif
