/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small HTTP servers on libmicrohttpd: the daemon's /metrics endpoint, the
 * proxy health server and the Services' health-check node ports. Each
 * server is one MHD daemon with its own epoll thread, bounded in
 * connections, time and memory per connection. Only GET and HEAD are
 * served (405 otherwise); malformed requests get MHD's 400.
 *
 * The handler runs on the server's thread: whatever it reads must be
 * shared safely with the daemon's loop (a lock or a snapshot).
 */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SP_HTTP_MAX_HEADERS 4

/* What a handler answers. body is malloc'ed (or NULL) and taken over. */
struct sp_http_reply {
	int status;
	const char *content_type; /* static string */
	struct {
		const char *name; /* static string */
		char value[64];
	} hdr[SP_HTTP_MAX_HEADERS];
	int n_hdr;
	char *body;
	size_t len;
};

/* Fill *r for a GET (or HEAD) of path (without the query string); an
 * unknown path is the handler's 404. Returns 0, or -ENOMEM (500). */
typedef int (*sp_http_handler_fn)(void *arg, const char *path, struct sp_http_reply *r);

/* Add a header to r (at most SP_HTTP_MAX_HEADERS; more are dropped). */
void sp_http_add_header(struct sp_http_reply *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* printf the body of r (replacing any). Returns 0 or -ENOMEM. */
int sp_http_printf(struct sp_http_reply *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * "ADDRESS:PORT", "[IPV6]:PORT" or "off" (NULL sa, returns 1). 0.0.0.0 and
 * :: mean every address of both families when the host has IPv6 (see
 * sp_http_start). Returns 0, 1 (off) or -EINVAL.
 */
int sp_http_parse_addr(const char *s, struct sockaddr_storage *sa, socklen_t *len);

struct sp_http_limits {
	unsigned int connections; /* at once; more wait in the listen backlog */
	unsigned int timeout_s; /* idle connection closed after this */
	size_t memory; /* per connection (request headers and buffers) */
};

/* The limits every svcplane server uses unless told otherwise. */
#define SP_HTTP_LIMITS_DEFAULT                                                                   \
	((struct sp_http_limits){ .connections = 512, .timeout_s = 10, .memory = 16 * 1024 })

struct sp_http;

/*
 * Bind sa (a wildcard address binds IPv6 and IPv4 together, or IPv4 alone
 * on a host without IPv6) and serve with handler on a thread of its own.
 * what names the server in messages. Returns NULL with -errno in *err
 * (EADDRINUSE, EACCES...) and a message logged at level log_level.
 */
struct sp_http *sp_http_start(const char *what, const struct sockaddr_storage *sa, socklen_t len,
			      const struct sp_http_limits *lim, sp_http_handler_fn handler,
			      void *arg, int log_level, int *err);
/* Stop serving (waits for a running handler) and free. NULL is fine. */
void sp_http_stop(struct sp_http *h);
/* The port it listens on (host order). */
uint16_t sp_http_port(const struct sp_http *h);

#endif /* SP_HTTP_H */
