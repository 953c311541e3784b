// poll() and ppoll() over event-queue fds (fault queues, vEVENTQs). The FUSE file behind such an fd has
// no poll of its own, so the kernel would call it always ready; the shim asks the daemon instead
// (TCEFS_OP_POLL) and waits for the other fds in short slices, asking again after each, until
// something is ready or the timeout ends. Calls naming no queue fd go straight to libc.
// select() and epoll are not served: on a queue fd they see it always ready, and its read() returns 0.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include <tcefs/protocol.h>
#include "shim.h"
#include "tcefs-internal.h"

#define EXPORT __attribute__((visibility("default")))

#define REAL(name)                                                 \
	({                                                         \
		static void *real_;                                \
		if (!real_)                                        \
			real_ = dlsym(RTLD_NEXT, #name);           \
		(__typeof__(&name))real_;                          \
	})

/* How long one slice of waiting on the other fds lasts before the queues are asked again. */
#define SLICE_NS (10 * 1000 * 1000L)

extern void __chk_fail(void) __attribute__((noreturn));

static int is_queue(int fd)
{
	int k = fd >= 0 ? fd_rw_kind(fd) : 0;
	return k == TCEFS_KIND_FAULT || k == TCEFS_KIND_VEVENTQ;
}

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* ppoll() semantics over fds some of which are queues; timeout NULL waits for ever. */
static int poll_queues(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask)
{
	struct pollfd small[16];
	struct pollfd *rest = n <= 16 ? small : malloc(n * sizeof(*rest));
	if (!rest)
		return errno = ENOMEM, -1;
	long long end = timeout ? now_ns() + timeout->tv_sec * 1000000000LL + timeout->tv_nsec : 0;
	int total;
	for (;;) {
		int ready = 0;
		for (nfds_t i = 0; i < n; i++) {
			rest[i] = fds[i];
			if (!is_queue(fds[i].fd))
				continue;
			/* poll() skips negative fds and leaves their revents 0: the queue's events are ours to fill in. */
			rest[i].fd = -1;
			int ev = tcefs__poll_events(fds[i].fd);
			fds[i].revents = (short)(ev < 0 ? POLLERR : ev & (fds[i].events | POLLERR | POLLHUP));
			ready += fds[i].revents != 0;
		}
		long long left = timeout ? end - now_ns() : SLICE_NS;
		if (left < 0)
			left = 0;
		struct timespec slice = { 0, ready ? 0 : left < SLICE_NS ? left : SLICE_NS };
		int r = REAL(ppoll)(rest, n, &slice, mask);
		if (r < 0) {
			total = -1;
			break;
		}
		for (nfds_t i = 0; i < n; i++)
			if (rest[i].fd >= 0 || fds[i].fd < 0)
				fds[i].revents = rest[i].revents;
		total = r + ready;
		if (total || (timeout && left == 0))
			break;
	}
	if (rest != small) {
		int e = errno;
		free(rest);
		errno = e;
	}
	return total;
}

static int any_queue(const struct pollfd *fds, nfds_t n)
{
	if (!shim_mnt_len)
		return 0;
	for (nfds_t i = 0; i < n; i++)
		if (is_queue(fds[i].fd))
			return 1;
	return 0;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	shim_init();
	if (!any_queue(fds, n))
		return REAL(poll)(fds, n, timeout);
	struct timespec t = { timeout / 1000, (timeout % 1000) * 1000000L };
	return poll_queues(fds, n, timeout < 0 ? NULL : &t, NULL);
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask)
{
	shim_init();
	if (!any_queue(fds, n))
		return REAL(ppoll)(fds, n, timeout, mask);
	return poll_queues(fds, n, timeout, mask);
}

/* Fortified programs call this instead of poll(). */
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return poll(fds, n, timeout);
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask, size_t fdslen);
EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return ppoll(fds, n, timeout, mask);
}
