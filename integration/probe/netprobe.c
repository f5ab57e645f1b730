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
 *   netprobe tcp-hold ADDR PORT S connect to an echo server, exchange a line, wait S
 *                                 seconds, exchange another on the same connection
 *   netprobe resolve NAME         an A query to resolv.conf's first nameserver the way
 *                                 libc resolvers ask (unconnected UDP, the reply's source
 *                                 must be that server): "ok ADDR... ms", "nxdomain ms"
 *   netprobe dns udp|tcp SERVER PORT NAME
 *                                 the same query sent straight to SERVER:PORT
 *   netprobe hog-ports N S        bind up to N UDP sockets to ephemeral ports (stops at
 *                                 the first failure), print "held K", hold them S seconds
 *   netprobe fds N S              open N descriptors, print "open N", hold them S seconds
 *
 * Benchmark modes (bench/ebpf.sh):
 *   netprobe connect-rate ADDR PORT N   N x (socket, connect, close with RST), prints
 *                                       "connects N failed F seconds S rate R/s"; exit 0 if F == 0
 *   netprobe serve ADDR PORT            accept(2) and close forever (the connect-rate peer)
 *   netprobe dns-rate SERVER NAME N     N A queries in a row over UDP to SERVER:53, each
 *                                       waiting for its answer; prints "queries N failed F
 *                                       seconds S mean_us M"; exit 0 if F == 0
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

static int tcp_hold(const char *host, int port, int seconds)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(host, port, &ss);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0);
	struct timeval tv = { .tv_sec = 3 };
	char buf[8];

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		return fail(errno);
	for (int round = 0; round < 2; round++) {
		if (round)
			sleep(seconds);
		if (write(fd, "x\n", 2) != 2)
			return fail(errno);
		if (read(fd, buf, sizeof(buf)) <= 0)
			return errno ? fail(errno) : (printf("err EOF %ld\n", ms()), 1);
	}
	printf("ok held %ld\n", ms());
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

/*
 * Datagrams to PREFIX.1 .. PREFIX.N (port 9), round robin, for SECS
 * seconds: "sent S eperm E".
 */
static int udp_flood(const char *prefix, int n, int secs)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	long sent = 0, eperm = 0;
	long end = ms() + secs * 1000L;
	char host[32];

	while (ms() < end) {
		for (int i = 1; i <= n; i++) {
			struct sockaddr_storage ss;
			socklen_t len;

			snprintf(host, sizeof(host), "%s.%d", prefix, i);
			len = addr(host, 9, &ss);
			sent++;
			if (sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len) < 0 && errno == EPERM)
				eperm++;
		}
	}
	printf("sent %ld eperm %ld\n", sent, eperm);
	return 0;
}

/* A query for NAME (type A): header, RD set, one question. */
static int dns_query(unsigned char *q, const char *name)
{
	int n = 12;

	memset(q, 0, 12);
	q[0] = 0x4a;
	q[1] = 0x7e;
	q[2] = 0x01;
	q[5] = 1;
	while (*name) {
		const char *dot = strchr(name, '.');
		int len = dot ? dot - name : (int)strlen(name);

		if (len == 0 || len > 63 || n + len + 6 > 300)
			return -1;
		q[n++] = len;
		memcpy(q + n, name, len);
		n += len;
		name += len + (dot ? 1 : 0);
	}
	q[n++] = 0;
	q[n++] = 0;
	q[n++] = 1; /* A */
	q[n++] = 0;
	q[n++] = 1; /* IN */
	return n;
}

static int dns_skip_name(const unsigned char *m, int len, int at)
{
	while (at < len) {
		if (m[at] == 0)
			return at + 1;
		if ((m[at] & 0xc0) == 0xc0)
			return at + 2;
		at += m[at] + 1;
	}
	return -1;
}

/* Prints the verdict for an answer: the A records, or the error code. */
static int dns_answer(const unsigned char *m, int len)
{
	int at, an, rcode;

	if (len < 12 || m[0] != 0x4a || m[1] != 0x7e || !(m[2] & 0x80)) {
		printf("err BADANSWER %ld\n", ms());
		return 1;
	}
	rcode = m[3] & 0x0f;
	if (rcode == 3) {
		printf("nxdomain %ld\n", ms());
		return 1;
	}
	if (rcode != 0) {
		printf("rcode %d %ld\n", rcode, ms());
		return 1;
	}
	an = m[6] << 8 | m[7];
	at = dns_skip_name(m, len, 12);
	if (at < 0)
		goto bad;
	at += 4;
	printf("ok");
	for (int i = 0; i < an; i++) {
		int type, rdlen;

		at = dns_skip_name(m, len, at);
		if (at < 0 || at + 10 > len)
			goto bad;
		type = m[at] << 8 | m[at + 1];
		rdlen = m[at + 8] << 8 | m[at + 9];
		at += 10;
		if (at + rdlen > len)
			goto bad;
		if (type == 1 && rdlen == 4)
			printf(" %d.%d.%d.%d", m[at], m[at + 1], m[at + 2], m[at + 3]);
		at += rdlen;
	}
	printf(" %ld\n", ms());
	return 0;
bad:
	printf(" malformed %ld\n", ms());
	return 1;
}

static int dns(const char *transport, const char *server, int port, const char *name,
	       int check_source)
{
	struct sockaddr_storage ss, from;
	socklen_t len = addr(server, port, &ss), flen = sizeof(from);
	unsigned char q[320], m[1500];
	int tcp = !strcmp(transport, "tcp");
	int qlen = dns_query(q + 2, name), fd, n;

	if (qlen < 0) {
		fprintf(stderr, "netprobe: bad name %s\n", name);
		return 2;
	}
	fd = socket(ss.ss_family, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
	if (tcp) {
		struct timeval tv = { .tv_sec = 3 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		q[0] = qlen >> 8;
		q[1] = qlen & 0xff;
		if (connect(fd, (struct sockaddr *)&ss, len) < 0)
			return fail(errno);
		if (write(fd, q, qlen + 2) < 0)
			return fail(errno);
		n = read(fd, m, 2);
		if (n != 2)
			return n < 0 ? fail(errno) : (printf("err EOF %ld\n", ms()), 1);
		n = read(fd, m, sizeof(m));
		if (n < 0)
			return fail(errno);
		return dns_answer(m, n);
	}
	if (sendto(fd, q + 2, qlen, 0, (struct sockaddr *)&ss, len) < 0)
		return fail(errno);
	for (;;) {
		if (wait_fd(fd, POLLIN, 3000) <= 0) {
			printf("timeout %ld\n", ms());
			return 1;
		}
		n = recvfrom(fd, m, sizeof(m), 0, (struct sockaddr *)&from, &flen);
		if (n < 0)
			return fail(errno);
		/* What glibc and musl do: an answer from another address is ignored. */
		if (check_source && memcmp(&from, &ss, len) != 0)
			continue;
		return dns_answer(m, n);
	}
}

static double now_s(void);

static int dns_rate(const char *server, const char *name, int count)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(server, 53, &ss);
	unsigned char q[320], m[1500];
	int qlen = dns_query(q, name), failed = 0;
	int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	double start = now_s(), secs;

	if (qlen < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0)
		return fail(errno);
	for (int i = 0; i < count; i++) {
		if (send(fd, q, qlen, 0) != qlen || wait_fd(fd, POLLIN, 3000) <= 0 ||
		    recv(fd, m, sizeof(m), 0) < 12)
			failed++;
	}
	secs = now_s() - start;
	printf("queries %d failed %d seconds %.6f mean_us %.1f\n", count, failed, secs,
	       secs * 1e6 / count);
	return failed ? 1 : 0;
}

/* The first nameserver of /etc/resolv.conf. */
static int resolve(const char *name)
{
	char line[256], server[64] = "";
	FILE *f = fopen("/etc/resolv.conf", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "nameserver %63s", server) == 1)
			break;
	if (f)
		fclose(f);
	if (!*server) {
		printf("err NONAMESERVER %ld\n", ms());
		return 1;
	}
	return dns("udp", server, 53, name, 1);
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

static int hog_ports(int n, int seconds)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int held = 0;

	for (; held < n; held++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			break;
	}
	printf("held %d\n", held);
	fflush(stdout);
	sleep(seconds);
	return 0;
}

static int fds(int n, int seconds)
{
	for (int i = 0; i < n; i++)
		if (dup(1) < 0)
			return fail(errno);
	printf("open %d\n", n);
	fflush(stdout);
	sleep(seconds);
	return 0;
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
	if (argc == 5 && !strcmp(argv[1], "tcp-hold"))
		return tcp_hold(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 3 && !strcmp(argv[1], "resolve"))
		return resolve(argv[2]);
	if (argc == 6 && !strcmp(argv[1], "dns"))
		return dns(argv[2], argv[3], atoi(argv[4]), argv[5], 0);
	if (argc == 5 && !strcmp(argv[1], "dns-rate"))
		return dns_rate(argv[2], argv[3], atoi(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "connect-rate"))
		return connect_rate(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "hog-ports"))
		return hog_ports(atoi(argv[2]), atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "fds"))
		return fds(atoi(argv[2]), atoi(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "udp-flood"))
		return udp_flood(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "serve"))
		return serve(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: netprobe tcp|udp|udp-connected ADDR PORT | icmp ADDR | burst ADDR PORT N\n"
			"       netprobe tcp-hold ADDR PORT S | resolve NAME | dns udp|tcp SERVER PORT NAME\n"
			"       netprobe connect-rate ADDR PORT N | serve ADDR PORT | dns-rate SERVER NAME N\n"
			"       netprobe udp-flood PREFIX N SECS\n");
	return 2;
}
