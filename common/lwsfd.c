/* lwsfd: see lwsfd.h. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "log.h"
#include "lwsfd.h"

int
lwsfd_adopt(struct lws_vhost *vh, int fd, intptr_t kind)
{
	lws_sock_file_fd_type u;
	struct lws *wsi;
	int dupfd;

	dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dupfd < 0)
		return -errno;
	u.filefd = (lws_filefd_type)dupfd;
	wsi = lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, u, "vigil-fd", NULL);
	if (wsi == NULL) {
		close(dupfd);
		return -EIO;
	}
	lws_set_opaque_user_data(wsi, (void *)kind);
	return 0;
}

void
lwsfd_accept(struct lws_vhost *vh, int lfd, int sndbuf)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn(-errno, "accept4() failed");
			if (errno != EINTR)
				return;
			continue;
		}
		if (sndbuf > 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
			log_warn(-errno, "setsockopt(SO_SNDBUF) failed");
		if (lws_adopt_socket_vhost(vh, fd) == NULL) {
			log_warn(0, "lws_adopt_socket_vhost() failed: connection dropped");
			close(fd);
		}
	}
}
