// Unmap leases (docs/protocol.md, "Unmap leases"): the daemon may answer a container's
// VFIO_IOMMU_UNMAP_DMA with a run of IOVA that holds no TCE, and identical unmaps inside that run are
// then answered here, 0 with nothing copied back, which is what the daemon would answer. A guest that
// clears its default window at boot makes one such call per 4K page; asking the daemon for each is a
// FUSE round trip.
//
// A lease holds while (1) this process has made no other exchange, closed or replaced an fd through the
// shim, or forked since it was granted; (2) the first word of the daemon's lease file, mapped here,
// still reads the epoch the lease names (the daemon changes it before anything else could change the
// answer: another process's frame, a release, a control command); (3) the daemon lives (its pidfd is
// not readable). Anything else goes to the daemon, which gives the exact answer.
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <tcefs/protocol.h>
#include "tcefs-internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* The argument the kernel reads for this call: argsz, flags, iova, size (offsetofend(size) = 24). */
struct unmap_arg {
	__u32 argsz;
	__u32 flags;
	__u64 iova;
	__u64 size;
};

/* Bumped by every exchange, fork, close and dup through the shim: a lease names the one it came in. */
static unsigned long generation;

/* The one lease this process holds, written under the wire lock, read without it (a sequence lock). */
static struct {
	unsigned seq; /* odd while being written */
	unsigned long generation;
	unsigned open_id;
	unsigned long request;
	uint64_t start, end, epoch;
	unsigned shift;
} lease;

/* The daemon's lease file, mapped once; its pidfd. Set up under the wire lock with the first lease. */
static const uint64_t *epoch_word;
static int daemon_pidfd = -1;
static unsigned daemon_pid;
static int setup_failed;
/* When the daemon was last seen alive (CLOCK_MONOTONIC ns). */
static uint64_t alive_checked;

unsigned long tcefs__lease_begin(void)
{
	return __atomic_add_fetch(&generation, 1, __ATOMIC_ACQ_REL);
}

void tcefs__lease_void(void)
{
	__atomic_add_fetch(&generation, 1, __ATOMIC_ACQ_REL);
}

/* Map the lease file of the mount fd lives in and watch the daemon: once per process and daemon. */
static int setup(int fd, unsigned pid)
{
	if (__atomic_load_n(&epoch_word, __ATOMIC_RELAXED) && daemon_pid == pid)
		return 0;
	if (setup_failed)
		return -1;
	char link[48], path[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = syscall(SYS_readlinkat, AT_FDCWD, link, path, sizeof(path) - 1);
	if (n <= 0)
		return setup_failed = 1, -1;
	path[n] = 0;
	/* The mount's root: before /dev/vfio/ for the nodes, before the claim directory for a returned fd. */
	char *dev = strstr(path, "/dev/vfio/");
	if (!dev)
		dev = strstr(path, TCEFS_CLAIM_DIR "/");
	if (!dev || (size_t)(dev - path) + sizeof(TCEFS_LEASE_PATH) > sizeof(path))
		return -1;
	memcpy(dev, TCEFS_LEASE_PATH, sizeof(TCEFS_LEASE_PATH));
	int lf = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	long m = lf < 0 ? -1 : syscall(SYS_mmap, NULL, 4096, PROT_READ, MAP_SHARED, lf, 0);
	if (lf >= 0)
		syscall(SYS_close, lf);
	int pfd = m == -1 ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0) {
		/* A client on another machine, or without the right to see the daemon's files: no leases. */
		if (m != -1)
			syscall(SYS_munmap, m, 4096);
		return setup_failed = 1, -1;
	}
	/* Another daemon on another mount: the old word stays mapped, as a reader may still look at it. */
	if (daemon_pidfd >= 0)
		syscall(SYS_close, daemon_pidfd);
	daemon_pidfd = pfd;
	__atomic_store_n(&epoch_word, (const uint64_t *)m, __ATOMIC_RELEASE);
	daemon_pid = pid;
	__atomic_store_n(&alive_checked, 0, __ATOMIC_RELAXED);
	return 0;
}

const volatile uint64_t *tcefs__board_words(int fd, unsigned pid)
{
	return setup(fd, pid) ? NULL : epoch_word;
}

const void *tcefs__answer_blob(const unsigned char *reply, size_t len, uint32_t field, size_t *blen)
{
	const struct tcefs_answer *a = (const void *)(reply + sizeof(struct tcefs_frame_header));
	if (len < sizeof(struct tcefs_frame_header) + sizeof(*a))
		return NULL;
	size_t at = sizeof(struct tcefs_frame_header) + sizeof(*a) + ((a->out_len + 7) & ~7u);
	for (unsigned i = 0; i < a->nblobs && at + sizeof(struct tcefs_blob) <= len; i++) {
		const struct tcefs_blob *b = (const void *)(reply + at);
		at += sizeof(*b);
		if (b->field_offset == field && at + b->length <= len) {
			*blen = b->length;
			return reply + at;
		}
		at += (b->length + 7) & ~7u;
	}
	return NULL;
}

void tcefs__lease_keep(int fd, unsigned open_id, unsigned long request, unsigned long gen, const unsigned char *reply, size_t len)
{
	const struct tcefs_answer *a = (const void *)(reply + sizeof(struct tcefs_frame_header));
	if (len < sizeof(struct tcefs_frame_header) + sizeof(*a) || a->result != 0)
		return;
	size_t n;
	const void *blob = tcefs__answer_blob(reply, len, TCEFS_LEASE_FIELD, &n);
	if (!blob || n < sizeof(struct tcefs_lease))
		return;
	struct tcefs_lease l;
	memcpy(&l, blob, sizeof(l));
	if (l.page_shift >= 64 || l.end <= l.start || setup(fd, l.daemon_pid))
		return;
	__atomic_store_n(&lease.seq, lease.seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&lease.generation, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&lease.open_id, open_id, __ATOMIC_RELAXED);
	__atomic_store_n(&lease.request, request, __ATOMIC_RELAXED);
	__atomic_store_n(&lease.start, l.start, __ATOMIC_RELAXED);
	__atomic_store_n(&lease.end, l.end, __ATOMIC_RELAXED);
	__atomic_store_n(&lease.epoch, l.epoch, __ATOMIC_RELAXED);
	__atomic_store_n(&lease.shift, l.page_shift, __ATOMIC_RELAXED);
	__atomic_store_n(&lease.seq, lease.seq + 1, __ATOMIC_RELEASE);
}

/*
 * Whether the daemon still runs: its pidfd turns readable when it exits. Asked at most once a millisecond
 * (the clock is read without a system call); a daemon killed meanwhile is noticed that much later, which
 * its clients cannot tell from a slower exit (the kernel ends the FUSE connection at some point of it).
 */
#define ALIVE_CHECK_NS 1000000

static int daemon_alive(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	uint64_t now = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
	if (now - __atomic_load_n(&alive_checked, __ATOMIC_RELAXED) < ALIVE_CHECK_NS)
		return 1;
	struct pollfd p = { daemon_pidfd, POLLIN, 0 };
	struct timespec zero = { 0, 0 };
	if (syscall(SYS_ppoll, &p, 1, &zero, NULL, 0) != 0)
		return 0;
	__atomic_store_n(&alive_checked, now, __ATOMIC_RELAXED);
	return 1;
}

/* The mapping of the calling thread's stack, found once per thread in /proc/self/maps; 0 0 if unknown. */
static __thread uintptr_t stack_lo, stack_hi;
static __thread int stack_looked;

static void find_stack(uintptr_t here)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return;
	char buf[4096];
	uintptr_t v[2] = { 0, 0 };
	int field = 0; /* 0: start, 1: end, 2: the rest of the line */
	ssize_t n;
	while ((n = syscall(SYS_read, fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			char ch = buf[i];
			if (ch == '\n') {
				if (field == 2 && here >= v[0] && here < v[1]) {
					stack_lo = v[0], stack_hi = v[1];
					syscall(SYS_close, fd);
					return;
				}
				v[0] = v[1] = 0, field = 0;
			} else if (field < 2) {
				int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
				if (d >= 0)
					v[field] = v[field] << 4 | (uintptr_t)d;
				else
					field++;
			}
		}
	}
	syscall(SYS_close, fd);
}

/*
 * Read the argument without a system call where it is surely readable: on the calling thread's own
 * stack, between this frame and the top of the stack's mapping (a caller's local, as QEMU's is). Anything
 * else is read as the kernel would, faults reported.
 */
static int read_arg(void *dst, const void *arg, size_t n)
{
	uintptr_t here = (uintptr_t)__builtin_frame_address(0), p = (uintptr_t)arg;
	if (!stack_looked) {
		stack_looked = 1;
		find_stack(here);
	}
	if (here >= stack_lo && here < stack_hi && p >= here && p < stack_hi && stack_hi - p >= n) {
		memcpy(dst, arg, n);
		return 0;
	}
	return tcefs__mem_read(dst, p, n) == n ? 0 : -1;
}

int tcefs__lease_answer(unsigned open_id, unsigned long request, void *arg)
{
	const uint64_t *word = __atomic_load_n(&epoch_word, __ATOMIC_ACQUIRE);
	if (!open_id || !word)
		return 0;
	unsigned s = __atomic_load_n(&lease.seq, __ATOMIC_ACQUIRE);
	if (s & 1)
		return 0;
	unsigned long gen = __atomic_load_n(&lease.generation, __ATOMIC_RELAXED);
	unsigned id = __atomic_load_n(&lease.open_id, __ATOMIC_RELAXED);
	unsigned long req = __atomic_load_n(&lease.request, __ATOMIC_RELAXED);
	uint64_t start = __atomic_load_n(&lease.start, __ATOMIC_RELAXED);
	uint64_t end = __atomic_load_n(&lease.end, __ATOMIC_RELAXED);
	uint64_t epoch = __atomic_load_n(&lease.epoch, __ATOMIC_RELAXED);
	unsigned shift = __atomic_load_n(&lease.shift, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&lease.seq, __ATOMIC_RELAXED) != s)
		return 0;
	if (gen != __atomic_load_n(&generation, __ATOMIC_ACQUIRE) || id != open_id || req != request)
		return 0;
	/* The bytes the kernel would read, read as it would: a bad pointer goes the slow way, to EFAULT. */
	struct unmap_arg u;
	if (read_arg(&u, arg, sizeof(u)))
		return 0;
	uint64_t mask = (1ull << shift) - 1;
	if (u.argsz != sizeof(u) || u.flags || !u.size || (u.iova & mask) || (u.size & mask) || u.iova < start ||
	    u.iova + u.size < u.iova || u.iova + u.size > end)
		return 0;
	/* Last, so that the answer holds at this moment: nothing the daemon did since granting it. */
	if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != epoch)
		return 0;
	return daemon_alive();
}
