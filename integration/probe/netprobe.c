/*
 * netprobe: the attacker's side of Purple's network tests, built static and
 * copied into the busybox rootfs. Each mode tries one way out and prints one
 * line: "ok ...", "err <ERRNO> <ms>" or "timeout <ms>"; exit 0 only for ok.
 *
 *   netprobe tcp ADDR PORT        connect(2) and read a line
 *   netprobe udp ADDR PORT        unconnected sendto(2), wait 1 s for a reply
 *   netprobe udp-connected ADDR PORT
 *   netprobe icmp ADDR            raw ICMP echo (needs CAP_NET_RAW)
 *   netprobe burst ADDR PORT N    N connect(2) calls, prints how many failed with EPERM
 *
 * Benchmark modes (bench/ebpf.sh):
 *   netprobe connect-rate ADDR PORT N   N x (socket, connect, close with RST), prints
 *                                       "connects N failed F seconds S rate R/s"; exit 0 if F == 0
 *   netprobe serve ADDR PORT            accept(2) and close forever (the connect-rate peer)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct timespec t0;

static long ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
}

static const char *ename(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENETUNREACH: return "ENETUNREACH";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case ETIMEDOUT: return "ETIMEDOUT";
	default: return strerror(e);
	}
}

static int fail(int e)
{
	printf("err %s %ld\n", ename(e), ms());
	return 1;
}

static socklen_t addr(const char *host, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		return sizeof(*a4);
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		return sizeof(*a6);
	}
	fprintf(stderr, "netprobe: bad address %s\n", host);
	exit(2);
}

static int wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	return poll(&p, 1, timeout_ms);
}

static int tcp(const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(host, port, &ss);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0);
	char buf[64] = { 0 };
	struct timeval tv = { .tv_sec = 2 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		return errno == EINPROGRESS ? (printf("timeout %ld\n", ms()), 1) : fail(errno);
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		return fail(errno);
	buf[strcspn(buf, "\n")] = 0;
	printf("ok %s %ld\n", buf, ms());
	return 0;
}

static int udp(const char *host, int port, int connected)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(host, port, &ss);
	int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	char buf[64] = { 0 };
	ssize_t n;

	if (connected) {
		if (connect(fd, (struct sockaddr *)&ss, len) < 0)
			return fail(errno);
		n = send(fd, "ping", 4, 0);
	} else {
		n = sendto(fd, "ping", 4, 0, (struct sockaddr *)&ss, len);
	}
	if (n < 0)
		return fail(errno);
	if (wait_fd(fd, POLLIN, 1000) <= 0) {
		printf("timeout %ld\n", ms());
		return 1;
	}
	if (recv(fd, buf, sizeof(buf) - 1, 0) < 0)
		return fail(errno);
	printf("ok %s %ld\n", buf, ms());
	return 0;
}

static unsigned short csum(void *b, int len)
{
	unsigned short *p = b;
	unsigned int sum = 0;

	for (; len > 1; len -= 2)
		sum += *p++;
	if (len == 1)
		sum += *(unsigned char *)p;
	sum = (sum >> 16) + (sum & 0xffff);
	sum += sum >> 16;
	return ~sum;
}

static int icmp(const char *host)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(host, 0, &ss);
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	struct icmphdr h = { .type = ICMP_ECHO, .un.echo.id = htons(4242), .un.echo.sequence = htons(1) };
	char buf[256];

	if (fd < 0)
		return fail(errno);
	h.checksum = csum(&h, sizeof(h));
	if (sendto(fd, &h, sizeof(h), 0, (struct sockaddr *)&ss, len) < 0)
		return fail(errno);
	for (;;) {
		if (wait_fd(fd, POLLIN, 1000) <= 0) {
			printf("timeout %ld\n", ms());
			return 1;
		}
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0)
			return fail(errno);
		struct icmphdr *r = (struct icmphdr *)(buf + (buf[0] & 0x0f) * 4);
		if (r->type == ICMP_ECHOREPLY && r->un.echo.id == htons(4242)) {
			printf("ok echo %ld\n", ms());
			return 0;
		}
	}
}

static int burst(const char *host, int port, int count)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(host, port, &ss);
	int eperm = 0;

	for (int i = 0; i < count; i++) {
		int fd = socket(ss.ss_family, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno == EPERM)
			eperm++;
		close(fd);
	}
	printf("eperm %d of %d %ld\n", eperm, count, ms());
	return eperm == count ? 0 : 1;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Closing with SO_LINGER 0 sends RST: no TIME_WAIT, so N is not bounded by
 * the ephemeral port range. */
static int connect_rate(const char *host, int port, int count)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(host, port, &ss);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int failed = 0, first_errno = 0;
	double start = now_s(), secs;

	for (int i = 0; i < count; i++) {
		int fd = socket(ss.ss_family, SOCK_STREAM, 0);
		if (fd < 0) {
			failed++;
			first_errno = first_errno ? first_errno : errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
			failed++;
			first_errno = first_errno ? first_errno : errno;
		}
		close(fd);
	}
	secs = now_s() - start;
	printf("connects %d failed %d seconds %.6f rate %.1f%s%s\n", count, failed, secs,
	       (count - failed) / secs, failed ? " first_error " : "", failed ? ename(first_errno) : "");
	return failed ? 1 : 0;
}

static int serve(const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(host, port, &ss);
	int one = 1, fd = socket(ss.ss_family, SOCK_STREAM, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0)
		return fail(errno);
	printf("listening\n");
	for (;;) {
		int c = accept(fd, NULL, NULL);
		if (c >= 0)
			close(c);
	}
}

int main(int argc, char **argv)
{
	clock_gettime(CLOCK_MONOTONIC, &t0);
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 4 && !strcmp(argv[1], "tcp"))
		return tcp(argv[2], atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "udp"))
		return udp(argv[2], atoi(argv[3]), 0);
	if (argc == 4 && !strcmp(argv[1], "udp-connected"))
		return udp(argv[2], atoi(argv[3]), 1);
	if (argc == 3 && !strcmp(argv[1], "icmp"))
		return icmp(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "burst"))
		return burst(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "connect-rate"))
		return connect_rate(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "serve"))
		return serve(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: netprobe tcp|udp|udp-connected ADDR PORT | icmp ADDR | burst ADDR PORT N\n"
			"       netprobe connect-rate ADDR PORT N | serve ADDR PORT\n");
	return 2;
}
