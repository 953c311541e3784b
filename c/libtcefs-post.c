// Posted region writes (docs/protocol.md, "Posted writes"): a small write to a BAR goes down a stream
// socket to the daemon, and the writer goes on, as a CPU does after a posted PCI write. Through FUSE each
// would be a round trip the writer waits for.
//
// Only what the daemon's grant (TCEFS_OP_POST) allows is posted: a write inside one of its windows, of at
// most TCEFS_POST_MAX_DATA bytes, while word 1 of the lease file still reads the grant's epoch. The daemon
// changes that word before it serves anything else that reaches it, so any other call by anyone makes the
// next write ask again; and it runs what a file's clients posted before any other request on that file.
// A write the socket cannot take whole at once goes the usual way (the daemon drains the socket first).
// State is per fd and open file (the shim's open id): a closed, replaced or inherited fd starts over.
// Everything here uses raw system calls: the preload shim interposes the libc wrappers.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <tcefs/protocol.h>
#include "tcefs-internal.h"

#define POST_FDS 1024
/* How long the daemon may take to accept a connection and say so. */
#define ACK_MS 2000

struct post_state {
	pthread_mutex_t lock;
	unsigned open_id;
	int sock;  /* connected to the daemon, -1 before */
	int never; /* the daemon takes no posted writes for this open file */
	const volatile uint64_t *words;
	uint64_t epoch;
	unsigned nwin;
	uint64_t start[TCEFS_POST_WINDOWS], end[TCEFS_POST_WINDOWS];
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct post_state *table[POST_FDS];

static void drop_socket(struct post_state *p)
{
	if (p->sock >= 0)
		syscall(SYS_close, p->sock);
	p->sock = -1;
}

static void reset(struct post_state *p, unsigned open_id)
{
	drop_socket(p);
	p->open_id = open_id;
	p->never = 0;
	p->words = NULL;
	p->nwin = 0;
}

static struct post_state *state_of(int fd)
{
	struct post_state *p = __atomic_load_n(&table[fd], __ATOMIC_ACQUIRE);
	if (p)
		return p;
	pthread_mutex_lock(&table_lock);
	p = table[fd];
	if (!p && (p = calloc(1, sizeof(*p)))) {
		pthread_mutex_init(&p->lock, NULL);
		p->sock = -1;
		__atomic_store_n(&table[fd], p, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&table_lock);
	return p;
}

/* Connect to the daemon's socket and hand over the token; 0 once the daemon has bound the connection. */
int tcefs__post_connect(const struct tcefs_post *g)
{
	int s = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	int high = tcefs__dup_high(s);
	if (high >= 0) {
		syscall(SYS_close, s);
		s = high;
	}
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "tcefs-post-%u-%016llx", g->daemon_pid, (unsigned long long)g->nonce);
	/* Node binds an abstract name with the whole of sun_path, the zeros after it included. */
	socklen_t alen = sizeof(a);
	char ack = 0;
	struct pollfd pf = { s, POLLIN, 0 };
	struct timespec wait = { ACK_MS / 1000, (ACK_MS % 1000) * 1000000L };
	if (syscall(SYS_connect, s, &a, alen) || syscall(SYS_sendto, s, g->token, sizeof(g->token), MSG_NOSIGNAL, NULL, 0) != (long)sizeof(g->token) ||
	    syscall(SYS_ppoll, &pf, 1, &wait, NULL, 0) != 1 || syscall(SYS_recvfrom, s, &ack, 1, MSG_DONTWAIT, NULL, NULL) != 1 || ack != 'k') {
		syscall(SYS_close, s);
		return -1;
	}
	return s;
}

/* Ask for a grant (again): windows and epoch, and a connection if there is none yet. */
static int ask(int fd, struct post_state *p)
{
	struct tcefs_post g;
	const volatile uint64_t *words;
	if (tcefs__post_ask(fd, TCEFS_POST_WRITES, &g, &words)) {
		/* Not a file that takes them, or no socket: the usual way from now on. */
		if (errno != EINTR && errno != ENOMEM)
			p->never = 1;
		return -1;
	}
	if (g.token[0] || g.token[1]) {
		drop_socket(p);
		if ((p->sock = tcefs__post_connect(&g)) < 0)
			return p->never = 1, -1;
	} else if (p->sock < 0)
		return p->never = 1, -1;
	p->words = words;
	p->epoch = g.epoch;
	p->nwin = g.nwin < TCEFS_POST_WINDOWS ? g.nwin : TCEFS_POST_WINDOWS;
	memcpy(p->start, g.win_start, sizeof(p->start));
	memcpy(p->end, g.win_end, sizeof(p->end));
	return 0;
}

static int fits(const struct post_state *p, uint64_t offset, size_t n)
{
	for (unsigned i = 0; i < p->nwin; i++)
		if (offset >= p->start[i] && offset < p->end[i] && n <= p->end[i] - offset)
			return 1;
	return 0;
}

/* The rest of a record the socket took only part of: it must go whole, or the stream is lost. */
static int send_rest(int s, const struct iovec *iov, int cnt, size_t done)
{
	for (int i = 0; i < cnt; i++) {
		if (done >= iov[i].iov_len) {
			done -= iov[i].iov_len;
			continue;
		}
		const char *b = (const char *)iov[i].iov_base + done;
		size_t left = iov[i].iov_len - done;
		done = 0;
		while (left) {
			long w = syscall(SYS_sendto, s, b, left, MSG_NOSIGNAL, NULL, 0);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
			b += w;
			left -= (size_t)w;
		}
	}
	return 0;
}

/* TCEFS_POST=0 in the environment: no socket, every write and interrupt through FUSE (benchmarks and
 * tests compare both ways). */
int tcefs__post_off(void)
{
	static int off = -1;
	if (off < 0) {
		const char *v = getenv("TCEFS_POST");
		off = v && !strcmp(v, "0");
	}
	return off;
}

ssize_t tcefs__post_write(int fd, unsigned open_id, const void *buf, size_t n, uint64_t offset)
{
	if (tcefs__post_off() || !open_id || fd < 0 || fd >= POST_FDS || n == 0 || n > TCEFS_POST_MAX_DATA)
		return -2;
	int e = errno;
	struct post_state *p = state_of(fd);
	if (!p)
		return -2;
	ssize_t rc = -2;
	pthread_mutex_lock(&p->lock);
	if (p->open_id != open_id)
		reset(p, open_id);
	if (p->never)
		goto out;
	if ((!p->words || p->sock < 0 || __atomic_load_n(p->words + 1, __ATOMIC_ACQUIRE) != p->epoch) && ask(fd, p))
		goto out;
	if (!fits(p, offset, n) || __atomic_load_n(p->words + 1, __ATOMIC_ACQUIRE) != p->epoch)
		goto out;
	struct tcefs_post_write h = { offset, (__u32)n, 0 };
	static const unsigned char zeros[8];
	/* The kernel reads the caller's buffer: a bad one is EFAULT with nothing sent, as pwrite says. */
	struct iovec iov[3] = { { &h, sizeof(h) }, { (void *)buf, n }, { (void *)zeros, (8 - n % 8) % 8 } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 3 };
	size_t want = sizeof(h) + n + iov[2].iov_len;
	long w = syscall(SYS_sendmsg, p->sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w == (long)want)
		rc = (ssize_t)n;
	else if (w < 0 && errno == EFAULT)
		rc = -1, e = EFAULT;
	else if (w < 0 && (errno == EAGAIN || errno == EINTR))
		; /* nothing went: the usual way, behind what did */
	else if (w > 0 && !send_rest(p->sock, iov, 3, (size_t)w))
		rc = (ssize_t)n;
	else {
		/* The daemon ended the connection (the file was released, or the daemon is gone). */
		drop_socket(p);
		p->never = 1;
	}
out:
	pthread_mutex_unlock(&p->lock);
	errno = e;
	return rc;
}

void tcefs__post_forget(unsigned first, unsigned last)
{
	if (first >= POST_FDS)
		return;
	if (last >= POST_FDS)
		last = POST_FDS - 1;
	for (unsigned fd = first; fd <= last; fd++) {
		struct post_state *p = __atomic_load_n(&table[fd], __ATOMIC_ACQUIRE);
		if (!p)
			continue;
		pthread_mutex_lock(&p->lock);
		reset(p, 0);
		pthread_mutex_unlock(&p->lock);
	}
}

/* A forked child starts over: its copies of the sockets go, its locks are free. */
static void post_child(void)
{
	pthread_mutex_init(&table_lock, NULL);
	for (unsigned fd = 0; fd < POST_FDS; fd++) {
		struct post_state *p = table[fd];
		if (!p)
			continue;
		pthread_mutex_init(&p->lock, NULL);
		reset(p, 0);
	}
}

__attribute__((constructor)) static void post_init(void)
{
	pthread_atfork(NULL, NULL, post_child);
}
