/* The physical floor: the least a process can do to answer the benchmark's request.
 *
 *   musl-gcc -static -O2 -o floor bench/peers/c/floor.c
 *
 * socket, bind, listen on 0.0.0.0:$PORT, then one epoll loop (level-triggered) over accept,
 * read and write; nothing else is set up (no signals, no allocation, no stdio, no time). A
 * request is framed by its blank line and Content-Length; the answer is a fixed head plus
 * {"event":<the body as received>,"context":{"request_id":"<X-Scf-Request-Id>"}}: the body
 * and the id are spliced in (the probes check that the id comes back) but nothing is parsed,
 * validated or escaped. Keep-alive and pipelining work; anything malformed closes the
 * connection. It is a yardstick, not a server.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAXFD 1100
#define BUF 16384

static char in[MAXFD][BUF];
static unsigned len[MAXFD];

static int ieq(const char *a, const char *b, size_t n) {
	for (size_t i = 0; i < n; i++) {
		char c = a[i];
		if (c >= 'A' && c <= 'Z') c += 32;
		if (c != b[i]) return 0;
	}
	return 1;
}

/* The value of header `name` (lower case, with the colon) in head[0..n), or NULL. */
static const char *header(const char *head, size_t n, const char *name, size_t *vlen) {
	size_t k = strlen(name);
	for (size_t i = 0; i + k < n; i++) {
		if ((i == 0 || head[i - 1] == '\n') && ieq(head + i, name, k)) {
			const char *v = head + i + k;
			while (*v == ' ') v++;
			const char *e = v;
			while (*e != '\r') e++;
			*vlen = (size_t)(e - v);
			return v;
		}
	}
	return 0;
}

static size_t utoa(char *out, size_t v) {
	char t[24];
	size_t n = 0;
	do { t[n++] = (char)('0' + v % 10); v /= 10; } while (v);
	for (size_t i = 0; i < n; i++) out[i] = t[n - 1 - i];
	return n;
}

/* Answers every complete request in the buffer; returns -1 to close. */
static int serve(int fd) {
	char *b = in[fd];
	unsigned off = 0;
	for (;;) {
		char *p = b + off;
		size_t avail = len[fd] - off;
		char *end = memmem(p, avail, "\r\n\r\n", 4);
		if (!end) break;
		size_t hlen = (size_t)(end - p) + 4, clen = 0, vl = 0, idl = 0;
		const char *cl = header(p, hlen, "content-length:", &vl);
		if (cl) clen = strtoul(cl, 0, 10);
		if (hlen + clen > BUF) return -1;
		if (avail < hlen + clen) break;
		const char *id = header(p, hlen, "x-scf-request-id:", &idl);
		if (!id) idl = 0;
		static const char a[] = "{\"event\":", c[] = ",\"context\":{\"request_id\":\"", z[] = "\"}}";
		size_t body = (sizeof a - 1) + clen + (sizeof c - 1) + idl + (sizeof z - 1);
		char head[128] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ";
		size_t h = strlen(head);
		h += utoa(head + h, body);
		memcpy(head + h, "\r\n\r\n", 4);
		h += 4;
		struct iovec iov[6] = {
			{head, h}, {(void *)a, sizeof a - 1}, {p + hlen, clen},
			{(void *)c, sizeof c - 1}, {(void *)id, idl}, {(void *)z, sizeof z - 1},
		};
		if (writev(fd, iov, 6) != (ssize_t)(h + body)) return -1;
		off += (unsigned)(hlen + clen);
	}
	if (off) {
		memmove(b, b + off, len[fd] - off);
		len[fd] -= off;
	}
	return len[fd] >= BUF ? -1 : 0;
}

int main(void) {
	const char *ps = getenv("PORT");
	int port = ps ? atoi(ps) : 9000, one = 1;
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 1024)) return 1;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[64];
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == ls) {
				int c;
				while ((c = accept4(ls, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if (c >= MAXFD) { close(c); continue; }
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					len[c] = 0;
					struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
				}
				continue;
			}
			ssize_t r = read(fd, in[fd] + len[fd], BUF - len[fd]);
			if (r <= 0 || (len[fd] += (unsigned)r, serve(fd) < 0)) {
				close(fd); /* also leaves the epoll set */
			}
		}
	}
}
