// SPDX-License-Identifier: Apache-2.0
/*
 * connbench: new TCP connections per second and their latency.
 *
 * --threads threads (default 2) each loop for --duration seconds: connect to
 * ADDR:PORT, write a request, read the reply until the server closes, close.
 * With --client-closes the client closes as soon as it has the reply line
 * (for echo_server --client-closes): TIME_WAIT then stays on the client.
 * Closed loop by default; --rate R paces the whole client at R connections
 * per second. Prints one line of figures:
 *
 *   conns=N errors=N seconds=S conn_per_s=X connect_p50_us=A connect_p99_us=B
 *   txn_p50_us=C txn_p99_us=D
 *
 * connect latency is connect() alone (SYN to SYN-ACK); txn is the whole
 * connect-request-reply-close. A connection that does not complete within
 * --timeout seconds counts as an error.
 *
 * --src A [--src-count K] binds the sockets to source addresses A, A+1, ..
 * A+K-1 in turn (the kernel still picks the port). The server closes first,
 * so the client keeps no TIME_WAIT and its port allocator hands out a port
 * again within a second at these rates, while the server's socket and the
 * node's conntrack entry for that tuple are still in TIME_WAIT: the SYN gets
 * a stale ACK, then an RST and a retransmission 10 ms to 1 s later. Spreading
 * the connections over many source addresses keeps tuples from repeating.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 16
#define MAX_SAMPLES (1 << 21) /* per thread; later samples are not kept */

struct thread_res {
	pthread_t th;
	int id;
	long long conns, errors;
	long long seq; /* connections tried: picks the --src address */
	int first_err; /* errno of the first failed connection, and where */
	const char *first_stage;
	long long first_sidx;
	unsigned int *conn_us, *txn_us; /* samples in microseconds */
	long long nsamples;
};

static struct sockaddr_in dst, src;
static int have_src, src_count = 1, client_closes;
static double duration = 3, rate = 0, timeout_s = 2;
static int nthreads = 2;
static double t_start;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
	double d = t - now_s();
	struct timespec ts;

	if (d <= 0)
		return;
	ts.tv_sec = (time_t)d;
	ts.tv_nsec = (long)((d - ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
}

/* One connection (from source address number `sidx` with --src): returns 0
 * and the two latencies, or -errno. */
static int one_conn(long long sidx, double *conn_lat, double *txn_lat, const char **stage)
{
	struct timeval tv = { .tv_sec = (time_t)timeout_s,
			      .tv_usec = (long)((timeout_s - (time_t)timeout_s) * 1e6) };
	static const char req[] = "GET / HTTP/1.0\r\n\r\n";
	char buf[256];
	double t0, t1;
	ssize_t n;
	size_t got;
	int fd, err = 0, i;

	t0 = now_s();
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (have_src) {
		struct sockaddr_in a = src;
		int one = 1;

		a.sin_addr.s_addr = htonl(ntohl(src.sin_addr.s_addr) + (uint32_t)(sidx % src_count));
		/* the port is chosen at connect(), against the full 4-tuple */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			err = -errno;
			*stage = "bind";
			goto out;
		}
	}
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		err = -errno;
		*stage = "connect";
		goto out;
	}
	t1 = now_s();
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		err = -EIO;
		*stage = "write";
		goto out;
	}
	/* Read until the server closes (or, with --client-closes, until the
	 * reply line is in); bounded by the receive timeout. */
	for (i = 0, got = 0; i < 64; i++) {
		if (got == sizeof(buf))
			got = 0; /* a long reply: only its end matters */
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n == 0)
			break;
		if (n < 0) {
			err = -errno;
			*stage = "read";
			goto out;
		}
		got += (size_t)n;
		if (client_closes && memchr(buf, '\n', got))
			break;
	}
	*conn_lat = t1 - t0;
	*txn_lat = now_s() - t0;
out:
	close(fd);
	return err;
}

static void *worker(void *arg)
{
	struct thread_res *r = arg;
	double end = t_start + duration, next = t_start, interval = 0;
	double cl, tl;

	if (rate > 0) {
		interval = nthreads / rate;
		next = t_start + interval * r->id / nthreads;
	}
	while (now_s() < end) {
		if (interval > 0) {
			sleep_until(next);
			next += interval;
		}
		/* threads interleave over the source addresses */
		long long sidx = r->seq++ * nthreads + r->id;
		const char *stage = "socket";
		int e = one_conn(sidx, &cl, &tl, &stage);

		if (e < 0) {
			if (!r->errors++) {
				r->first_err = -e;
				r->first_stage = stage;
				r->first_sidx = sidx;
			}
			continue;
		}
		r->conns++;
		if (r->nsamples < MAX_SAMPLES) {
			r->conn_us[r->nsamples] = (unsigned int)(cl * 1e6);
			r->txn_us[r->nsamples] = (unsigned int)(tl * 1e6);
			r->nsamples++;
		}
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	unsigned int x = *(const unsigned int *)a, y = *(const unsigned int *)b;

	return x < y ? -1 : x > y;
}

static unsigned int pct(unsigned int *v, long long n, double p)
{
	long long i;

	if (n == 0)
		return 0;
	i = (long long)(p * (n - 1) + 0.5);
	return v[i];
}

static void usage(FILE *f)
{
	fprintf(f, "usage: connbench --addr A --port P [--threads N] [--duration S] [--rate R]\n"
		   "                 [--timeout S] [--src A [--src-count K]] [--client-closes]\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "duration", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "src", required_argument, NULL, 's' },
		{ "src-count", required_argument, NULL, 'S' },
		{ "client-closes", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct thread_res res[MAX_THREADS] = {};
	unsigned int *all_c, *all_t;
	long long conns = 0, errors = 0, n = 0;
	const char *addr = NULL, *saddr = NULL;
	int port = 80, c, i, err = 0;
	double secs;

	while ((c = getopt_long(argc, argv, "a:p:t:d:r:T:s:S:Ch", lopts, NULL)) != -1) {
		switch (c) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'T': timeout_s = atof(optarg); break;
		case 's': saddr = optarg; break;
		case 'S': src_count = atoi(optarg); break;
		case 'C': client_closes = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!addr || nthreads < 1 || nthreads > MAX_THREADS || duration <= 0 || duration > 600 ||
	    timeout_s <= 0 || port < 1 || port > 65535 || src_count < 1 || src_count > 65536) {
		usage(stderr);
		return 2;
	}
	dst.sin_family = AF_INET;
	dst.sin_port = htons(port);
	if (inet_pton(AF_INET, addr, &dst.sin_addr) != 1) {
		fprintf(stderr, "connbench: bad address '%s'\n", addr);
		return 2;
	}
	if (saddr) {
		src.sin_family = AF_INET;
		if (inet_pton(AF_INET, saddr, &src.sin_addr) != 1) {
			fprintf(stderr, "connbench: bad source address '%s'\n", saddr);
			return 2;
		}
		have_src = 1;
	}
	for (i = 0; i < nthreads; i++) {
		res[i].id = i;
		res[i].conn_us = malloc(sizeof(unsigned int) * MAX_SAMPLES);
		res[i].txn_us = malloc(sizeof(unsigned int) * MAX_SAMPLES);
		if (!res[i].conn_us || !res[i].txn_us) {
			fprintf(stderr, "connbench: out of memory\n");
			return 1;
		}
	}
	t_start = now_s();
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&res[i].th, NULL, worker, &res[i])) {
			fprintf(stderr, "connbench: cannot start thread %d\n", i);
			return 1;
		}
	for (i = 0; i < nthreads; i++)
		pthread_join(res[i].th, NULL);
	secs = now_s() - t_start;
	for (i = 0; i < nthreads; i++) {
		conns += res[i].conns;
		errors += res[i].errors;
		n += res[i].nsamples;
	}
	all_c = malloc(sizeof(unsigned int) * (n ? n : 1));
	all_t = malloc(sizeof(unsigned int) * (n ? n : 1));
	if (!all_c || !all_t) {
		fprintf(stderr, "connbench: out of memory\n");
		return 1;
	}
	for (i = 0, n = 0; i < nthreads; i++) {
		memcpy(all_c + n, res[i].conn_us, res[i].nsamples * sizeof(unsigned int));
		memcpy(all_t + n, res[i].txn_us, res[i].nsamples * sizeof(unsigned int));
		n += res[i].nsamples;
	}
	qsort(all_c, n, sizeof(unsigned int), cmp_u32);
	qsort(all_t, n, sizeof(unsigned int), cmp_u32);
	printf("conns=%lld errors=%lld seconds=%.3f conn_per_s=%.1f connect_p50_us=%u "
	       "connect_p99_us=%u txn_p50_us=%u txn_p99_us=%u\n",
	       conns, errors, secs, conns / secs, pct(all_c, n, 0.5), pct(all_c, n, 0.99),
	       pct(all_t, n, 0.5), pct(all_t, n, 0.99));
	for (i = 0; i < nthreads; i++)
		if (res[i].errors) {
			struct in_addr a = { .s_addr = htonl(ntohl(src.sin_addr.s_addr) +
							    (uint32_t)(res[i].first_sidx % src_count)) };

			fprintf(stderr, "connbench: thread %d: %lld failed; first: %s: %s%s%s\n", i,
				res[i].errors, res[i].first_stage, strerror(res[i].first_err),
				have_src ? " from " : "", have_src ? inet_ntoa(a) : "");
		}
	if (conns == 0)
		err = 1;
	for (i = 0; i < nthreads; i++) {
		free(res[i].conn_us);
		free(res[i].txn_us);
	}
	free(all_c);
	free(all_t);
	return err;
}
