/* net: listening sockets and their printable local addresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

int
net_listen(const struct cfg_listen *addr)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	char port[8];
	int fd, one = 1, r;

	/* Names such as "localhost" are resolved once, to their first address. */
	snprintf(port, sizeof(port), "%u", addr->port);
	r = getaddrinfo(addr->host, port, &hints, &ai);
	if (r != 0)
		return r == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		goto out_free;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		close(fd);
		goto out_free;
	}
	r = fd;
out_free:
	freeaddrinfo(ai);
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
