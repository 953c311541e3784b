// fail-nth: the per-thread fault-injection counter of a kernel built with CONFIG_FAULT_INJECTION, served
// by the shim for the emulated kernel behind the mount.
//
// The counter belongs to a thread of this process, so it lives here: /proc/self/task/<tid>/fail-nth
// (and /proc/thread-self/fail-nth, /proc/self/fail-nth for the main thread, the same under this
// process's own pid) opens as a private memfd that read, write, pread and pwrite on any of its fds
// treat as that file. libtcefs sends the calling thread's counter with each ioctl frame and stores what
// the daemon leaves of it (docs/protocol.md, "Fault injection"); opening a node that allocates a file
// object (iommufd, container, device cdev) is one failure point of its own, counted here.
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <tcefs/protocol.h>
#include "shim.h"
#include "tcefs-internal.h"

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1U
#endif

/* ---- the counters, one per thread that has one ---- */

#define THREADS 256
struct counter {
	pid_t tid; /* 0: free */
	unsigned nth;
};
static struct counter counters[THREADS];
static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;
/* Nonzero once any thread has had a counter: until then no ioctl looks. */
static int counters_used;
static __thread pid_t my_tid;

static pid_t self_tid(void)
{
	if (!my_tid)
		my_tid = (pid_t)syscall(SYS_gettid);
	return my_tid;
}

static int thread_alive(pid_t tid)
{
	return syscall(SYS_tgkill, (pid_t)syscall(SYS_getpid), tid, 0) == 0 || errno != ESRCH;
}

/* The counter of thread tid; with `create`, made (reusing the slot of a thread that is gone) if none. */
static struct counter *counter_of(pid_t tid, int create)
{
	struct counter *c = NULL;
	pthread_mutex_lock(&counters_lock);
	for (int i = 0; i < THREADS && !c; i++)
		if (counters[i].tid == tid)
			c = &counters[i];
	for (int i = 0; i < THREADS && !c && create; i++)
		if (!counters[i].tid || (counters[i].tid != tid && !thread_alive(counters[i].tid))) {
			c = &counters[i];
			c->tid = tid;
			c->nth = 0;
			__atomic_store_n(&counters_used, 1, __ATOMIC_RELEASE);
		}
	pthread_mutex_unlock(&counters_lock);
	return c;
}

/* For libtcefs: the calling thread's counter, NULL if it has none (the usual case, one load). */
static unsigned *my_counter(void)
{
	if (!__atomic_load_n(&counters_used, __ATOMIC_ACQUIRE))
		return NULL;
	struct counter *c = counter_of(self_tid(), 0);
	return c ? &c->nth : NULL;
}

/* A fork's child is a new task: its thread has no counter (the kernel starts it at 0). */
static void child_after_fork(void)
{
	my_tid = 0;
	pthread_mutex_init(&counters_lock, NULL);
	memset(counters, 0, sizeof(counters));
	counters_used = 0;
}

__attribute__((constructor)) static void failnth_init(void)
{
	tcefs__fail_nth = my_counter;
	pthread_atfork(NULL, NULL, child_after_fork);
}

int failnth_point(void)
{
	unsigned *n = my_counter();
	if (!n || !__atomic_load_n(n, __ATOMIC_RELAXED))
		return 0;
	return __atomic_sub_fetch(n, 1, __ATOMIC_RELAXED) == 0;
}

/* ---- the files ---- */

/* An open fail-nth file: its memfd's inode (every dup of it shares that), the thread and the access mode. */
#define FILES 64
struct nth_file {
	dev_t dev;
	ino_t ino; /* 0: free */
	pid_t tid;
	int acc;
};
static struct nth_file files[FILES];
static int nfiles;

/* The thread a /proc path's fail-nth names, if it is one of this process's; 0 if the path is not one. */
static pid_t named_thread(const char *path)
{
	if (strncmp(path, "/proc/", 6))
		return 0;
	char part[6][32];
	int n = 0;
	for (const char *p = path; *p;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = strchrnul(p, '/');
		if (n == 6 || e - p >= (long)sizeof(part[0]))
			return 0;
		memcpy(part[n], p, (size_t)(e - p));
		part[n++][e - p] = 0;
		p = e;
	}
	if (path[0] != '/' || n < 3 || strcmp(part[0], "proc") || strcmp(part[n - 1], "fail-nth"))
		return 0;
	pid_t pid = (pid_t)syscall(SYS_getpid);
	char *end;
	if (n == 3) {
		if (!strcmp(part[1], "thread-self"))
			return self_tid();
		if (!strcmp(part[1], "self"))
			return pid;
		long v = strtol(part[1], &end, 10);
		return !*end && v == pid ? pid : 0;
	}
	if (n != 5 || strcmp(part[2], "task"))
		return 0;
	if (strcmp(part[1], "self")) {
		long v = strtol(part[1], &end, 10);
		if (*end || v != pid)
			return 0;
	}
	long tid = strtol(part[3], &end, 10);
	if (*end || tid <= 0 || tid > INT_MAX || !thread_alive((pid_t)tid))
		return 0;
	/* a thread of another process answers ESRCH to tgkill with our pid */
	return (pid_t)tid;
}

static int mark_held(int fd, void *ctx)
{
	int *held = ctx;
	struct stat st;
	if (syscall(SYS_fstat, fd, &st) == 0)
		for (int i = 0; i < FILES; i++)
			if (files[i].ino == st.st_ino && files[i].dev == st.st_dev)
				held[i] = 1;
	return 0;
}

/* With the table full: free the slots of files no fd of this process refers to any more. Under the lock. */
static void reclaim_closed(void)
{
	int held[FILES] = { 0 };
	if (tcefs__each_fd(mark_held, held) < 0)
		return;
	for (int i = 0; i < FILES; i++)
		if (files[i].ino && !held[i]) {
			files[i].ino = 0;
			nfiles--;
		}
}

int failnth_open(const char *path, int flags)
{
	if (!path || !shim_mnt_len)
		return -2;
	pid_t tid = named_thread(path);
	if (!tid)
		return -2;
	if (flags & O_DIRECTORY)
		return errno = ENOTDIR, -1;
	if ((flags & O_CREAT) && (flags & O_EXCL))
		return errno = EEXIST, -1;
	int fd = (int)syscall(SYS_memfd_create, "fail-nth", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0U);
	if (fd < 0)
		return -1;
	struct stat st;
	if (syscall(SYS_fstat, fd, &st)) {
		syscall(SYS_close, fd);
		return -1;
	}
	pthread_mutex_lock(&counters_lock);
	struct nth_file *f = NULL;
	for (int pass = 0; pass < 2 && !f; pass++) {
		if (pass)
			reclaim_closed();
		for (int i = 0; i < FILES && !f; i++)
			if (!files[i].ino)
				f = &files[i];
	}
	if (f) {
		*f = (struct nth_file){ st.st_dev, st.st_ino, tid, flags & O_ACCMODE };
		nfiles++;
	}
	pthread_mutex_unlock(&counters_lock);
	if (!f) {
		syscall(SYS_close, fd);
		return errno = EMFILE, -1;
	}
	return fd;
}

/* The open fail-nth file fd refers to, or NULL; a closed one's slot is reclaimed when found stale. */
static int file_of(int fd, struct nth_file *out)
{
	if (!__atomic_load_n(&nfiles, __ATOMIC_RELAXED))
		return 0;
	struct stat st;
	if (syscall(SYS_fstat, fd, &st))
		return 0;
	int found = 0;
	pthread_mutex_lock(&counters_lock);
	for (int i = 0; i < FILES && !found; i++)
		if (files[i].ino && files[i].ino == st.st_ino && files[i].dev == st.st_dev) {
			*out = files[i];
			found = 1;
		}
	pthread_mutex_unlock(&counters_lock);
	return found;
}

/* Copies between the program's buffers and ours report a bad buffer as EFAULT, as copy_to_user does. */
static int copy_out(void *dst, const void *src, size_t n)
{
	struct iovec l = { (void *)src, n }, r = { dst, n };
	return n == 0 || syscall(SYS_process_vm_writev, (pid_t)syscall(SYS_getpid), &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -1;
}

static int copy_in(void *dst, const void *src, size_t n)
{
	struct iovec l = { dst, n }, r = { (void *)src, n };
	return n == 0 || syscall(SYS_process_vm_readv, (pid_t)syscall(SYS_getpid), &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* kstrtouint with base 0: optional '+', 0x hex, 0 octal or decimal, one trailing newline. As in the
 * kernel, the digits are taken as a 64-bit number first (ERANGE past that), the rest must be empty (EINVAL),
 * and only then is a value past 32 bits ERANGE. */
static int parse_uint(const char *s, unsigned *out)
{
	if (*s == '+')
		s++;
	unsigned base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isxdigit((unsigned char)s[2])) {
		base = 16;
		s += 2;
	} else if (s[0] == '0')
		base = 8;
	unsigned long long v = 0;
	int overflow = 0;
	const char *start = s;
	for (;; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (*s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			break;
		if (d >= base)
			break;
		if (v > (~0ULL - d) / base)
			overflow = 1;
		v = v * base + d;
	}
	if (overflow)
		return -ERANGE;
	if (s == start)
		return -EINVAL;
	if (*s == '\n')
		s++;
	if (*s)
		return -EINVAL;
	if (v > UINT_MAX)
		return -ERANGE;
	*out = (unsigned)v;
	return 0;
}

/* Whether the thread a file names still exists; the kernel's file then answers ESRCH. */
static int named_alive(const struct nth_file *f)
{
	return f->tid == self_tid() || thread_alive(f->tid);
}

ssize_t failnth_read(int fd, void *buf, size_t n, off_t off, int at_pos)
{
	struct nth_file f;
	if (!file_of(fd, &f))
		return -2;
	if (f.acc == O_WRONLY)
		return errno = EBADF, -1;
	if (!named_alive(&f))
		return errno = ESRCH, -1;
	if (at_pos) {
		off = (off_t)syscall(SYS_lseek, fd, 0, SEEK_CUR);
		if (off < 0)
			return -1;
	}
	if (off < 0)
		return errno = EINVAL, -1;
	struct counter *c = counter_of(f.tid, 0);
	char text[16];
	size_t len = (size_t)snprintf(text, sizeof(text), "%u\n", c ? __atomic_load_n(&c->nth, __ATOMIC_RELAXED) : 0);
	if ((unsigned long long)off >= len)
		return 0;
	size_t got = len - (size_t)off < n ? len - (size_t)off : n;
	if (copy_out(buf, text + off, got))
		return errno = EFAULT, -1;
	if (at_pos)
		syscall(SYS_lseek, fd, off + (off_t)got, SEEK_SET);
	return (ssize_t)got;
}

ssize_t failnth_write(int fd, const void *buf, size_t n)
{
	struct nth_file f;
	if (!file_of(fd, &f))
		return -2;
	if (f.acc == O_RDONLY)
		return errno = EBADF, -1;
	/* as kstrtouint_from_user: what fits a buffer for the longest number, up to the first NUL */
	char text[35];
	size_t take = n < sizeof(text) - 1 ? n : sizeof(text) - 1;
	if (copy_in(text, buf, take))
		return errno = EFAULT, -1;
	text[take] = 0;
	unsigned v;
	int e = parse_uint(text, &v);
	if (e)
		return errno = -e, -1;
	if (!named_alive(&f))
		return errno = ESRCH, -1;
	struct counter *c = counter_of(f.tid, v != 0);
	if (c)
		__atomic_store_n(&c->nth, v, __ATOMIC_RELAXED);
	return (ssize_t)n;
}
