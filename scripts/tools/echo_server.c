// SPDX-License-Identifier: Apache-2.0
/*
 * echo_server: the benchmark's backend. Listens on ADDR:PORT (default
 * 0.0.0.0:8080) with one SO_REUSEPORT listener and one epoll loop per thread
 * (--threads, default 2). For each connection it reads a request, answers
 * "OK <local address>\n" (so a client can tell which endpoint served it) and
 * closes, so TIME_WAIT stays on the server side as with HTTP/1.0. With
 * --client-closes it answers every request and closes only when the client
 * has closed (TIME_WAIT on the client side).
 * Runs until SIGINT/SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_THREADS 16

static volatile sig_atomic_t stop;
static struct sockaddr_in listen_addr;
static int client_closes;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int make_listener(void)
{
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) < 0 ||
	    listen(fd, 4096) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* Answer one readable connection; returns 1 when it is finished (closed),
 * 0 while it stays open. */
static int serve(int fd)
{
	char buf[512], out[64], addr[INET_ADDRSTRLEN] = "?";
	struct sockaddr_in local;
	socklen_t sl = sizeof(local);
	ssize_t n;
	int len;

	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n > 0) {
		if (getsockname(fd, (struct sockaddr *)&local, &sl) == 0)
			inet_ntop(AF_INET, &local.sin_addr, addr, sizeof(addr));
		len = snprintf(out, sizeof(out), "OK %s\n", addr);
		if (write(fd, out, len) == len && client_closes)
			return 0; /* wait for the client's FIN (read() == 0) */
		/* a failed write: the client went away, nothing to do but close */
	}
	close(fd);
	return 1;
}

static void *worker(void *arg)
{
	struct epoll_event ev, events[MAX_EVENTS];
	int lfd, ep, i, n;

	(void)arg;
	lfd = make_listener();
	if (lfd < 0) {
		fprintf(stderr, "echo_server: listen on %s:%d: %s\n",
			inet_ntoa(listen_addr.sin_addr), ntohs(listen_addr.sin_port), strerror(-lfd));
		exit(1);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("echo_server: epoll_create1");
		exit(1);
	}
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("echo_server: epoll_ctl");
		exit(1);
	}
	while (!stop) {
		n = epoll_wait(ep, events, MAX_EVENTS, 200);
		for (i = 0; i < n; i++) {
			int fd = events[i].data.fd;

			if (fd != lfd) {
				serve(fd); /* closing the fd also removes it from epoll */
				continue;
			}
			/* Accept everything pending; bounded by the backlog. */
			for (int k = 0; k < 4096; k++) {
				int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (c < 0)
					break;
				ev.events = EPOLLIN | EPOLLRDHUP;
				ev.data.fd = c;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
					close(c);
			}
		}
	}
	close(ep);
	close(lfd);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "client-closes", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	pthread_t th[MAX_THREADS];
	const char *addr = "0.0.0.0";
	int port = 8080, threads = 2, c, i;
	struct sigaction sa = { .sa_handler = on_signal };

	while ((c = getopt_long(argc, argv, "a:p:t:Ch", lopts, NULL)) != -1) {
		switch (c) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'C': client_closes = 1; break;
		case 'h':
			printf("usage: echo_server [--addr A] [--port P] [--threads N] [--client-closes]\n");
			return 0;
		default:
			fprintf(stderr, "usage: echo_server [--addr A] [--port P] [--threads N] "
					"[--client-closes]\n");
			return 2;
		}
	}
	if (threads < 1 || threads > MAX_THREADS || port < 1 || port > 65535) {
		fprintf(stderr, "echo_server: --threads 1..%d, --port 1..65535\n", MAX_THREADS);
		return 2;
	}
	listen_addr.sin_family = AF_INET;
	listen_addr.sin_port = htons(port);
	if (inet_pton(AF_INET, addr, &listen_addr.sin_addr) != 1) {
		fprintf(stderr, "echo_server: bad address '%s'\n", addr);
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, worker, NULL)) {
			fprintf(stderr, "echo_server: cannot start thread %d\n", i);
			return 1;
		}
	for (i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	return 0;
}
