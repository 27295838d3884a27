// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP servers on libmicrohttpd (see http.h). We make the listening socket
 * ourselves (dual-stack wildcard, clear bind errors) and hand it to MHD,
 * which runs one epoll thread per server with the limits below.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <microhttpd.h>

#include "http.h"
#include "log.h"

/* Pending connections the kernel holds while the server is at its
 * connection limit (a burst of probes waits, it is not refused). */
#define HTTP_BACKLOG 4096

struct sp_http {
	struct MHD_Daemon *mhd;
	char what[64];
	uint16_t port;
	sp_http_handler_fn handler;
	void *arg;
};

void sp_http_add_header(struct sp_http_reply *r, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (r->n_hdr >= SP_HTTP_MAX_HEADERS)
		return;
	r->hdr[r->n_hdr].name = name;
	va_start(ap, fmt);
	vsnprintf(r->hdr[r->n_hdr].value, sizeof(r->hdr[r->n_hdr].value), fmt, ap);
	va_end(ap);
	r->n_hdr++;
}

int sp_http_printf(struct sp_http_reply *r, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	free(r->body);
	r->body = s;
	r->len = n;
	return 0;
}

int sp_http_parse_addr(const char *s, struct sockaddr_storage *sa, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
	const char *colon = strrchr(s, ':'), *port_s;
	char host[INET6_ADDRSTRLEN + 2], *end;
	size_t hlen;
	unsigned long port;

	memset(sa, 0, sizeof(*sa));
	if (!strcmp(s, "off"))
		return 1;
	if (!colon)
		return -EINVAL;
	port_s = colon + 1;
	hlen = colon - s;
	if (hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno || *end || end == port_s || port > 65535 || *port_s == '-' || *port_s == '+')
		return -EINVAL;
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return -EINVAL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
		return 0;
	}
	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		return -EINVAL;
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	*len = sizeof(*s4);
	return 0;
}

static bool is_wildcard(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

static uint16_t sa_port(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

/* socket + bind + listen. Returns the fd or -errno. */
static int bind_one(const struct sockaddr *sa, socklen_t len, bool dual)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1,
	    zero = 0, err;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (dual && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)))
		goto fail;
	if (bind(fd, sa, len) || listen(fd, HTTP_BACKLOG))
		goto fail;
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

/*
 * The listening socket for sa. A wildcard (0.0.0.0 or ::) becomes one
 * IPv6 socket that also takes IPv4 (IPV6_V6ONLY off), so one server
 * answers on every address of both families; a host without IPv6 gets
 * IPv4 alone. Returns the fd or -errno.
 */
static int listen_socket(const struct sockaddr_storage *sa, socklen_t len)
{
	struct sockaddr_in6 any6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in any4 = { .sin_family = AF_INET };
	int fd;

	if (!is_wildcard(sa))
		return bind_one((const struct sockaddr *)sa, len, false);
	any6.sin6_port = any4.sin_port = htons(sa_port(sa));
	fd = bind_one((struct sockaddr *)&any6, sizeof(any6), true);
	if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)
		fd = bind_one((struct sockaddr *)&any4, sizeof(any4), false);
	return fd;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct sp_http *h = cls;
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	pr_debug("http %s: %s", h->what, msg);
}

static enum MHD_Result queue(struct MHD_Connection *c, struct sp_http_reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int i;

	resp = MHD_create_response_from_buffer(r->len, r->body ? r->body : (void *)"",
					       r->body ? MHD_RESPMEM_MUST_FREE
						       : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(r->body);
		return MHD_NO; /* MHD closes the connection */
	}
	r->body = NULL; /* MHD frees it */
	if (r->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
	for (i = 0; i < r->n_hdr; i++)
		MHD_add_response_header(resp, r->hdr[i].name, r->hdr[i].value);
	ret = MHD_queue_response(c, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* MHD's access handler: called once per request here, since we answer at
 * the first call (before any request body, which we do not read). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct sp_http *h = cls;
	struct sp_http_reply r = { .status = MHD_HTTP_OK, .content_type = "text/plain" };

	(void)version;
	(void)upload_data;
	(void)upload_size;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
		r.status = MHD_HTTP_METHOD_NOT_ALLOWED;
		sp_http_add_header(&r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
		if (sp_http_printf(&r, "method not allowed: use GET or HEAD\n"))
			return MHD_NO;
		return queue(c, &r);
	}
	if (h->handler(h->arg, url, &r)) {
		free(r.body);
		r = (struct sp_http_reply){ .status = MHD_HTTP_INTERNAL_SERVER_ERROR,
					    .content_type = "text/plain" };
	}
	return queue(c, &r);
}

struct sp_http *sp_http_start(const char *what, const struct sockaddr_storage *sa, socklen_t len,
			      const struct sp_http_limits *lim, sp_http_handler_fn handler,
			      void *arg, int log_level, int *err)
{
	struct sp_http *h = calloc(1, sizeof(*h));
	int fd;

	if (!h) {
		*err = -ENOMEM;
		return NULL;
	}
	snprintf(h->what, sizeof(h->what), "%s", what);
	h->handler = handler;
	h->arg = arg;
	h->port = sa_port(sa);
	fd = listen_socket(sa, len);
	if (fd < 0) {
		*err = fd;
		sp_log(log_level, "%s: listen on port %u: %s", what, h->port, strerror(-fd));
		free(h);
		return NULL;
	}
	h->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
					  MHD_USE_ERROR_LOG,
				  0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_LIMIT, lim->connections,
				  MHD_OPTION_CONNECTION_TIMEOUT, lim->timeout_s,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, lim->memory,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_END);
	if (!h->mhd) {
		*err = -EIO;
		sp_log(log_level, "%s: cannot start the HTTP server on port %u", what, h->port);
		close(fd);
		free(h);
		return NULL;
	}
	return h;
}

void sp_http_stop(struct sp_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd); /* joins its thread and closes the socket */
	free(h);
}

uint16_t sp_http_port(const struct sp_http *h)
{
	return h->port;
}
