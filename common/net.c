/* net: listening sockets and their printable local addresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

int
net_listen(const struct cfg_listen *addr)
{
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons(addr->port) };
	struct sockaddr_in sa4 = { .sin_family = AF_INET, .sin_port = htons(addr->port) };
	struct sockaddr *sa;
	socklen_t len;
	int fd, one = 1, r;

	if (inet_pton(AF_INET, addr->host, &sa4.sin_addr) == 1) {
		sa = (struct sockaddr *)&sa4;
		len = sizeof(sa4);
	} else if (inet_pton(AF_INET6, addr->host, &sa6.sin6_addr) == 1) {
		sa = (struct sockaddr *)&sa6;
		len = sizeof(sa6);
	} else {
		return -EINVAL;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, sa, len) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		goto err_close;
	}
	return fd;

err_close:
	close(fd);
	return r;
}

int
net_local_name(int fd, char *buf, size_t size, unsigned *ret_port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	unsigned port;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sa = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sa->sin_addr, host, sizeof(host));
		port = ntohs(sa->sin_port);
		snprintf(buf, size, "%s:%u", host, port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sa->sin6_addr, host, sizeof(host));
		port = ntohs(sa->sin6_port);
		snprintf(buf, size, "[%s]:%u", host, port);
	} else {
		return -EAFNOSUPPORT;
	}
	if (ret_port != NULL)
		*ret_port = port;
	return 0;
}
