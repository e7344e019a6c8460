/* lwsfd: see lwsfd.h. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <libwebsockets.h>

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
