// libtcefs: kernel-ABI ioctls over tcefs request frames. Marshalling is driven entirely by the
// generated table in <tcefs/protocol.h>; nothing here knows any particular ioctl.
//
// Every system call below is made with syscall(2), never through the libc wrapper: the preload shim
// links this file and interposes open/pread/pwrite/readlink/fcntl, so a libc call from here would come
// back into the shim (and a pwrite of a frame to a device fd would be taken for a BAR write).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <tcefs/protocol.h>
#include <tcefs/tcefs.h>
#include "tcefs-internal.h"

#if __SIZEOF_POINTER__ != 8 || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libtcefs speaks frame protocol v1, which is defined for 64-bit little-endian clients only"
#endif

/* Largest argument struct sent: VFIO info calls may ask for capability chains up to argsz. */
#define MAX_ARG (64 * 1024)
#define MAX_BLOB (16 * 1024 * 1024)
/* Region accesses travel in frames of at most this much data, well under TCEFS_MAX_FRAME. */
#define REGION_CHUNK (1024 * 1024)
/* Frames and replies up to this size live on the stack, so the common ioctl does not malloc. */
#define SMALL 1024

void (*tcefs__claimed)(int fd, int handle);
unsigned *(*tcefs__fail_nth)(void);

static ssize_t sys_pwrite(int fd, const void *b, size_t n, uint64_t off)
{
	return syscall(SYS_pwrite64, fd, b, n, off);
}

static ssize_t sys_pread(int fd, void *b, size_t n, uint64_t off)
{
	return syscall(SYS_pread64, fd, b, n, off);
}

static ssize_t sys_readlink(const char *p, char *b, size_t n)
{
	return syscall(SYS_readlinkat, AT_FDCWD, p, b, n);
}

/*
 * This process's pid, for frames and for reading its own memory. getpid() costs a system call per
 * ioctl, so it is kept; a fork's child clears it (below). A vfork child or a raw clone() shares the
 * parent's memory and would send the parent's pid, which names the same memory anyway until exec.
 */
static pid_t cached_pid;

static pid_t self_pid(void)
{
	pid_t p = __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);
	if (!p) {
		p = (pid_t)syscall(SYS_getpid);
		__atomic_store_n(&cached_pid, p, __ATOMIC_RELAXED);
	}
	return p;
}

/* The client's own memory is read and written like the kernel does, with faults reported, not taken. */
static size_t mem_read(void *dst, uint64_t src, size_t n)
{
	struct iovec l = { dst, n }, r = { (void *)(uintptr_t)src, n };
	ssize_t got = src && n ? syscall(SYS_process_vm_readv, self_pid(), &l, 1, &r, 1, 0) : 0;
	return got < 0 ? 0 : (size_t)got;
}

size_t tcefs__mem_read(void *dst, uint64_t src, size_t n)
{
	return mem_read(dst, src, n);
}

static int mem_write(uint64_t dst, const void *src, size_t n)
{
	struct iovec l = { (void *)src, n }, r = { (void *)(uintptr_t)dst, n };
	if (n == 0)
		return 0;
	return dst && syscall(SYS_process_vm_writev, self_pid(), &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* The node path behind fd; *rel points at its part inside the mount ("/dev/..." or "/.tcefs/..."). */
static int fd_path(int fd, char *buf, size_t len, const char **rel)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = sys_readlink(link, buf, len - 1);
	if (n < 0)
		return -1;
	buf[n] = 0;
	const char *p = strstr(buf, "/dev/iommu");
	if (!p)
		p = strstr(buf, "/dev/vfio/");
	if (!p)
		p = strstr(buf, TCEFS_CLAIM_DIR "/");
	*rel = p;
	return p ? 0 : -1;
}

/*
 * One frame out, its reply in. The write and the read must not interleave with another thread's or a
 * signal handler's exchange on the same open file, so both run under one lock with signals blocked.
 * A fork waits for an exchange in flight, so the child never inherits the lock held.
 */
static pthread_mutex_t wire = PTHREAD_MUTEX_INITIALIZER;

static void wire_lock(void)
{
	pthread_mutex_lock(&wire);
}

static void wire_unlock(void)
{
	pthread_mutex_unlock(&wire);
}

static void wire_child(void)
{
	cached_pid = 0;
	tcefs__lease_void();
	wire_unlock();
}

__attribute__((constructor)) static void wire_init(void)
{
	pthread_atfork(wire_lock, wire_unlock, wire_child);
}

struct reply {
	unsigned char *buf;
	size_t len;
	unsigned char small[SMALL];
};

static void reply_free(struct reply *r)
{
	if (r->buf != r->small)
		free(r->buf);
}

static int exchange_locked(int fd, const void *req, size_t len, struct reply *r)
{
	ssize_t w = sys_pwrite(fd, req, len, 0);
	if (w < 0)
		return -1;
	if ((size_t)w != len)
		return errno = EIO, -1;
	size_t cap = sizeof(r->small), got = 0;
	r->buf = r->small;
	for (;;) {
		ssize_t n = sys_pread(fd, r->buf + got, cap - got, got);
		if (n < 0)
			goto fail;
		got += (size_t)n;
		if (got >= sizeof(struct tcefs_frame_header)) {
			const struct tcefs_frame_header *h = (const void *)r->buf;
			size_t want = h->length;
			if (h->magic != TCEFS_REPLY_MAGIC || want < sizeof(*h) + sizeof(struct tcefs_answer) || want > TCEFS_MAX_FRAME)
				goto bad;
			if (got >= want)
				break;
			if (want > cap) {
				unsigned char *bigger = r->buf == r->small ? malloc(want) : realloc(r->buf, want);
				if (!bigger)
					goto fail;
				if (r->buf == r->small)
					memcpy(bigger, r->small, got);
				r->buf = bigger;
				cap = want;
				continue;
			}
		}
		if (n == 0)
			goto bad;
	}
	r->len = got;
	return 0;
bad:
	errno = EIO;
fail:
	reply_free(r);
	return -1;
}

/* An unmap that may come back with a lease names the open file (shim fd table) it is for. */
struct lease_ask {
	unsigned open_id;
	unsigned long request;
};

static int exchange_leased(int fd, const void *req, size_t len, struct reply *r, const struct lease_ask *ask)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_mutex_lock(&wire);
	/* Any exchange voids the lease this process holds; a new one is kept before anyone else's. */
	unsigned long gen = tcefs__lease_begin();
	int rc = exchange_locked(fd, req, len, r);
	int e = errno;
	if (rc == 0 && ask)
		tcefs__lease_keep(fd, ask->open_id, ask->request, gen, r->buf, r->len);
	pthread_mutex_unlock(&wire);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return rc;
}

static int exchange(int fd, const void *req, size_t len, struct reply *r)
{
	return exchange_leased(fd, req, len, r, NULL);
}

static struct tcefs_answer *answer_of(struct reply *r)
{
	return (void *)(r->buf + sizeof(struct tcefs_frame_header));
}

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static struct tcefs_frame_header frame_header(size_t len)
{
	return (struct tcefs_frame_header){ TCEFS_REQUEST_MAGIC, TCEFS_PROTOCOL_VERSION, 1, (__u32)len, (__u32)self_pid() };
}

/* One request with no argument (HANDLE, POLL): its result and handle_field. */
static int bare_op(int fd, int op, long long *result, __u32 *handle_field)
{
	struct {
		struct tcefs_frame_header h;
		struct tcefs_request r;
	} f = { frame_header(sizeof(f)), { sizeof(struct tcefs_request), (__u16)op, 0, 0, 0, 0 } };
	struct reply reply;
	if (exchange(fd, &f, sizeof(f), &reply))
		return -1;
	struct tcefs_answer *a = answer_of(&reply);
	*result = a->result;
	if (handle_field)
		*handle_field = a->handle_field;
	reply_free(&reply);
	return 0;
}

/* HANDLE answers the handle in result and the kind in handle_field. */
static int query_handle(int fd, int *kind)
{
	long long r;
	__u32 k;
	if (bare_op(fd, TCEFS_OP_HANDLE, &r, &k))
		return -1;
	if (kind)
		*kind = (int)k;
	return (int)r;
}

int tcefs__poll_events(int fd)
{
	long long r;
	if (bare_op(fd, TCEFS_OP_POLL, &r, NULL))
		return -1;
	return r < 0 ? (errno = (int)-r, -1) : (int)r;
}

int tcefs__path_kind(const char *rel)
{
	if (!strcmp(rel, "/dev/iommu"))
		return TCEFS_KIND_IOMMUFD;
	if (!strcmp(rel, "/dev/vfio/vfio"))
		return TCEFS_KIND_CONTAINER;
	if (!strncmp(rel, "/dev/vfio/devices/", 18) && rel[18])
		return TCEFS_KIND_DEVICE;
	if (!strncmp(rel, "/dev/vfio/", 10) && rel[10] && strspn(rel + 10, "0123456789") == strlen(rel + 10))
		return TCEFS_KIND_GROUP;
	if (!strncmp(rel, TCEFS_CLAIM_DIR "/", sizeof(TCEFS_CLAIM_DIR)))
		return -1;
	return 0;
}

int tcefs_kind(int fd)
{
	char path[PATH_MAX];
	const char *rel;
	if (fd_path(fd, path, sizeof(path), &rel))
		return errno = ENOTTY, -1;
	int kind = tcefs__path_kind(rel);
	if (kind > 0)
		return kind;
	if (kind == 0)
		return errno = ENOTTY, -1;
	return query_handle(fd, &kind) < 0 ? -1 : kind;
}

int tcefs_handle(int fd)
{
	return query_handle(fd, NULL);
}

int tcefs_fd_to_handle(int fd)
{
	if (fd < 0)
		return fd;
	if (syscall(SYS_fcntl, fd, F_GETFD, 0) < 0)
		return TCEFS_HANDLE_NONE;
	char path[PATH_MAX];
	const char *rel;
	if (fd_path(fd, path, sizeof(path), &rel) || tcefs__path_kind(rel) == 0)
		return TCEFS_HANDLE_FOREIGN;
	int h = tcefs_handle(fd);
	return h > 0 ? h : TCEFS_HANDLE_FOREIGN;
}

/* ---- closing: waiting for the daemon's release ---- */

#ifndef KCMP_FILE
#define KCMP_FILE 0
#endif

int tcefs__same_file(int pa, int a, int pb, int b)
{
	long r = syscall(SYS_kcmp, pa, pb, KCMP_FILE, a, b);
	if (r == 0)
		return 1;
	/* EBADF: one of the fds is not open, so they are not one file; ENOSYS, EPERM: no way to tell */
	return r > 0 || errno == EBADF ? 0 : -1;
}

int tcefs__parent_holds(int fd)
{
	int e = errno;
	int r = tcefs__same_file((int)self_pid(), fd, (int)syscall(SYS_getppid), fd) == 1;
	errno = e;
	return r;
}

int tcefs__each_fd(int (*fn)(int fd, void *ctx), void *ctx)
{
	int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dir < 0)
		return -1;
	char ents[4096] __attribute__((aligned(8)));
	long n;
	int r = 0;
	while (!r && (n = syscall(SYS_getdents64, dir, ents, sizeof(ents))) > 0) {
		for (long off = 0; off < n && !r;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(ents + off);
			off += d->reclen;
			char *end;
			long fd = strtol(d->name, &end, 10);
			if (*end || end == d->name || fd == dir)
				continue;
			r = fn((int)fd, ctx);
		}
	}
	syscall(SYS_close, dir);
	return r;
}

static int is_dup_of(int other, void *ctx)
{
	int fd = *(int *)ctx;
	return other != fd && tcefs__same_file((int)self_pid(), fd, (int)self_pid(), other) == 1;
}

/* Whether any other fd of this process is fd's open file (a dup): 1 yes, 0 no or cannot tell. */
static int other_fd_holds(int fd)
{
	return tcefs__each_fd(is_dup_of, &fd) == 1;
}

void tcefs__await_release(const char *mnt, const int *handles, int n)
{
	/* A name never looked up before, so no cached dentry can answer in the daemon's place. */
	static unsigned seq;
	int e = errno;
	for (int i = 0; i < n;) {
		char path[PATH_MAX];
		int len = snprintf(path, sizeof(path), "%s" TCEFS_RELEASE_DIR "/", mnt);
		for (int k = 0; i < n && k < TCEFS_RELEASE_WAIT_MAX && len < (int)sizeof(path) - 64; k++, i++)
			len += snprintf(path + len, sizeof(path) - len, "%s%x", k ? "." : "", (unsigned)handles[i]);
		snprintf(path + len, sizeof(path) - len, "-%x-%x", (unsigned)self_pid(), __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
		/* The answer (ENOENT once released, ETIMEDOUT after the daemon's bound) is all the same here. */
		syscall(SYS_faccessat, AT_FDCWD, path, F_OK);
	}
	errno = e;
}

int tcefs_close(int fd)
{
	char path[PATH_MAX];
	const char *rel;
	int h = 0;
	int e = errno;
	if (!fd_path(fd, path, sizeof(path), &rel) && tcefs__path_kind(rel) != 0 && !other_fd_holds(fd) && !tcefs__parent_holds(fd))
		h = query_handle(fd, NULL);
	errno = e;
	int r = (int)syscall(SYS_close, fd);
	/* Linux frees the number even when close reports an error; only EBADF means nothing was closed. */
	if (h > 0 && (r == 0 || errno != EBADF)) {
		e = errno;
		path[rel - path] = 0;
		tcefs__await_release(path, &h, 1);
		errno = e;
	}
	return r;
}

static const struct tcefs_cmd_desc *find_cmd(int kind, unsigned long request)
{
	unsigned long r = request & 0xffffffffUL;
	if ((r & 0xff00) != 0x3b00 || ((r & 0xffff0000UL) != 0 && (r & 0xffff0000UL) != 0x20000000UL))
		return NULL;
	for (int i = 0; i < TCEFS_NCMDS; i++)
		if (tcefs_cmds[i].nr == (r & 0xff) && (tcefs_cmds[i].kinds & kind))
			return &tcefs_cmds[i];
	return NULL;
}

struct blob {
	__u32 field_offset;
	__u32 len;
	unsigned char *data;
};

static uint64_t field_u64(const unsigned char *a, size_t alen, unsigned off)
{
	uint64_t v = 0;
	if ((size_t)off + 8 <= alen)
		memcpy(&v, a + off, 8);
	return v;
}

/* A string argument up to its NUL, read a page at a time so a string near the end of a mapping is
 * still read whole (one read across the boundary would fail outright). */
static size_t string_bytes(uint64_t src, unsigned char *buf, size_t max)
{
	size_t got = 0;
	while (got < max) {
		size_t page_left = 4096 - ((src + got) & 4095);
		size_t want = page_left < max - got ? page_left : max - got;
		size_t n = mem_read(buf + got, src + got, want);
		void *nul = memchr(buf + got, 0, n);
		if (nul)
			return (size_t)((unsigned char *)nul - buf) + 1;
		got += n;
		if (n < want)
			break;
	}
	return got;
}

/* Bytes of the argument to send, as the kernel would read them. */
static size_t arg_bytes(const struct tcefs_cmd_desc *c, void *arg, unsigned char *buf)
{
	switch (c->arg) {
	case TCEFS_ARG_ARGSZ:
	case TCEFS_ARG_SIZE: {
		__u32 sz;
		if (mem_read(&sz, (uintptr_t)arg, 4) != 4)
			return 0;
		size_t want = sz > c->struct_size ? sz : c->struct_size;
		if (want > MAX_ARG)
			want = MAX_ARG;
		return mem_read(buf, (uintptr_t)arg, want);
	}
	case TCEFS_ARG_FDPTR: {
		int v;
		if (mem_read(&v, (uintptr_t)arg, 4) != 4)
			return 0;
		v = tcefs_fd_to_handle(v);
		memcpy(buf, &v, 4);
		return 4;
	}
	case TCEFS_ARG_U32PTR:
		return mem_read(buf, (uintptr_t)arg, 4);
	case TCEFS_ARG_STRING:
		return string_bytes((uintptr_t)arg, buf, 4096);
	default:
		return 0;
	}
}

/* Open the file an ioctl created, where the daemon keeps it pending: <mount>/.tcefs/fd/<handle>. */
static int claim(int fd, __u32 handle)
{
	char path[PATH_MAX], file[PATH_MAX + 32];
	const char *rel;
	if (fd_path(fd, path, sizeof(path), &rel))
		return errno = EBADF, -1;
	snprintf(file, sizeof(file), "%.*s%s/%x", (int)(rel - path), path, TCEFS_CLAIM_DIR, handle);
	int nfd = (int)syscall(SYS_openat, AT_FDCWD, file, O_RDWR | O_CLOEXEC, 0);
	if (nfd >= 0 && tcefs__claimed)
		tcefs__claimed(nfd, (int)handle);
	return nfd;
}

int tcefs__mount_path(int fd, const char *dir, int handle, char *out, size_t len)
{
	char path[PATH_MAX];
	const char *rel;
	if (fd_path(fd, path, sizeof(path), &rel))
		return errno = EBADF, -1;
	int n = snprintf(out, len, "%.*s%s/%x", (int)(rel - path), path, dir, handle);
	return n < 0 || (size_t)n >= len ? (errno = ENAMETOOLONG, -1) : 0;
}

int tcefs__ioctl(int fd, int kind, unsigned long request, void *arg)
{
	return tcefs__ioctl_open(fd, kind, 0, request, arg);
}

int tcefs__ioctl_open(int fd, int kind, unsigned open_id, unsigned long request, void *arg)
{
	if (kind <= 0)
		kind = tcefs_kind(fd);
	if (kind < 0)
		return -1;
	if (kind == TCEFS_KIND_CONTAINER && tcefs__lease_answer(open_id, request, arg))
		return 0;
	const struct tcefs_cmd_desc *c = find_cmd(kind, request);
	struct lease_ask ask = { open_id, request };
	int leased = open_id && kind == TCEFS_KIND_CONTAINER && c && !strcmp(c->name, "VFIO_IOMMU_UNMAP_DMA");
	unsigned char small_arg[SMALL];
	unsigned char *abuf = small_arg;
	size_t arg_cap = c && (c->arg == TCEFS_ARG_ARGSZ || c->arg == TCEFS_ARG_SIZE) ? MAX_ARG : 4096;
	if (c && arg_cap > sizeof(small_arg) && !(abuf = malloc(arg_cap)))
		return errno = ENOMEM, -1;
	size_t alen = c ? arg_bytes(c, arg, abuf) : 0;
	struct blob blobs[2];
	int nblobs = 0;
	struct tcefs__irq_prep irq = { 0 };
	if (c && tcefs__irq_prepare(c, abuf, alen, &irq)) {
		if (abuf != small_arg)
			free(abuf);
		return -1;
	}
	if (c && (c->arg == TCEFS_ARG_ARGSZ || c->arg == TCEFS_ARG_SIZE)) {
		for (int i = 0; i < c->nfds; i++) {
			if ((size_t)c->fd_offsets[i] + 4 <= alen) {
				int v;
				memcpy(&v, abuf + c->fd_offsets[i], 4);
				v = tcefs_fd_to_handle(v);
				memcpy(abuf + c->fd_offsets[i], &v, 4);
			}
		}
		if (c->fd_array_offset && (size_t)c->fd_array_count_offset + 4 <= alen) {
			__u32 n;
			memcpy(&n, abuf + c->fd_array_count_offset, 4);
			for (size_t at = c->fd_array_offset; n && at + 4 <= alen; n--, at += 4) {
				int v;
				memcpy(&v, abuf + at, 4);
				v = tcefs_fd_to_handle(v);
				memcpy(abuf + at, &v, 4);
			}
		}
		for (int i = 0; i < c->nptrs; i++) {
			const struct tcefs_ptr_desc *p = &c->ptrs[i];
			uint64_t ptr = field_u64(abuf, alen, p->field_offset);
			uint64_t len = p->bytes;
			if (!len && p->len_offset + p->len_size <= alen) {
				__u32 l32 = 0;
				memcpy(&l32, abuf + p->len_offset, p->len_size > 4 ? 4 : p->len_size);
				len = (uint64_t)l32 * p->elem;
			}
			if (!ptr || !len || len > MAX_BLOB)
				continue;
			unsigned char *d = malloc(len);
			if (!d || mem_read(d, ptr, len) != len) {
				free(d); /* unreadable: sent without data, the daemon answers EFAULT if it needs it */
				continue;
			}
			blobs[nblobs++] = (struct blob){ p->field_offset, (__u32)len, d };
		}
	}
	size_t rlen = sizeof(struct tcefs_request) + pad8(alen);
	for (int i = 0; i < nblobs; i++)
		rlen += sizeof(struct tcefs_blob) + pad8(blobs[i].len);
	/* A thread with a fail-nth counter running sends it first, in a record of its own. */
	unsigned *nth = tcefs__fail_nth ? tcefs__fail_nth() : NULL;
	unsigned nth_value = nth ? __atomic_load_n(nth, __ATOMIC_RELAXED) : 0;
	size_t pre = nth_value ? sizeof(struct tcefs_request) : 0;
	size_t flen = sizeof(struct tcefs_frame_header) + pre + rlen;
	unsigned char small_frame[SMALL];
	unsigned char *f = flen <= sizeof(small_frame) ? small_frame : malloc(flen);
	int rc = -1;
	if (!f) {
		errno = ENOMEM;
		goto out;
	}
	memset(f, 0, flen);
	*(struct tcefs_frame_header *)f = frame_header(flen);
	if (pre) {
		((struct tcefs_frame_header *)f)->count = 2;
		*(struct tcefs_request *)(f + sizeof(struct tcefs_frame_header)) =
			(struct tcefs_request){ sizeof(struct tcefs_request), TCEFS_OP_FAIL_NTH, 0, 0, 0, nth_value };
	}
	struct tcefs_request *r = (void *)(f + sizeof(struct tcefs_frame_header) + pre);
	*r = (struct tcefs_request){ (__u32)rlen, leased ? TCEFS_OP_IOCTL_LEASE : TCEFS_OP_IOCTL, (__u16)nblobs, (__u32)request, (__u32)alen,
		c && c->arg == TCEFS_ARG_VALUE ? (__u64)(uintptr_t)arg : 0 };
	unsigned char *p = (unsigned char *)(r + 1);
	memcpy(p, abuf, alen);
	p += pad8(alen);
	for (int i = 0; i < nblobs; i++) {
		*(struct tcefs_blob *)p = (struct tcefs_blob){ blobs[i].field_offset, blobs[i].len };
		memcpy(p + sizeof(struct tcefs_blob), blobs[i].data, blobs[i].len);
		p += sizeof(struct tcefs_blob) + pad8(blobs[i].len);
	}
	struct reply reply;
	if (exchange_leased(fd, f, flen, &reply, leased ? &ask : NULL))
		goto out;
	struct tcefs_answer *a = answer_of(&reply);
	if (pre) {
		/* what the daemon left of the counter (a daemon without fault injection refuses the record) */
		if (a->result >= 0)
			__atomic_store_n(nth, (unsigned)a->result, __ATOMIC_RELAXED);
		size_t at = sizeof(struct tcefs_frame_header) + a->length;
		if (a->length < sizeof(*a) || at + sizeof(*a) > reply.len) {
			reply_free(&reply);
			errno = EIO;
			goto out;
		}
		a = (void *)(reply.buf + at);
	}
	unsigned char *q = (unsigned char *)(a + 1);
	long long result = a->result;
	int fault = mem_write((uintptr_t)arg, q, a->out_len);
	q += pad8(a->out_len);
	for (unsigned i = 0; i < a->nblobs && !fault; i++) {
		struct tcefs_blob *b = (void *)q;
		if (b->field_offset != TCEFS_LEASE_FIELD) /* a lease: kept by exchange_leased */
			fault = mem_write(field_u64(abuf, alen, b->field_offset), b + 1, b->length);
		q += sizeof(*b) + pad8(b->length);
	}
	if (result >= 0 && a->new_handle) {
		int nfd = claim(fd, a->new_handle);
		if (nfd < 0)
			result = -errno;
		else if (a->handle_field == TCEFS_HANDLE_IN_RESULT)
			result = nfd;
		else if (mem_write((uintptr_t)arg + a->handle_field, &nfd, 4))
			fault = 1;
	}
	reply_free(&reply);
	if (irq.active || (c && result >= 0 && !strcmp(c->name, "VFIO_DEVICE_RESET"))) {
		/* The kernel holds the eventfds now (or, after a reset, no longer): so does the table. */
		int h = result >= 0 ? tcefs_handle(fd) : 0;
		if (h > 0 && !irq.active)
			tcefs__irq_reset(h);
		else if (tcefs__irq_commit(fd, h, &irq, h > 0 ? result : -1) && result >= 0)
			result = -errno;
	}
	if (fault && result >= 0)
		result = -EFAULT;
	if (result < 0)
		errno = (int)-result;
	else
		rc = (int)result;
out:
	tcefs__irq_abandon(&irq);
	for (int i = 0; i < nblobs; i++)
		free(blobs[i].data);
	if (f != small_frame)
		free(f);
	if (abuf != small_arg)
		free(abuf);
	return rc;
}

int tcefs_ioctl(int fd, unsigned long request, void *arg)
{
	return tcefs__ioctl(fd, 0, request, arg);
}

/* One region access; returns bytes moved or -1 with errno. A single pread or pwrite in the daemon's
 * direct region window: one FUSE request, where a frame and its reply take two, and nothing to
 * serialize against other threads' frames. A bad buffer is the kernel's EFAULT, as on vfio-pci. */
/* A zero-length read or write never reaches a FUSE file, yet has an answer of its own (a queue's EINVAL):
 * it goes as a frame. */
static ssize_t region_frame(int fd, int op, void *buf, size_t n, uint64_t offset)
{
	size_t data = op == TCEFS_OP_REGION_WRITE ? n : 0;
	size_t flen = sizeof(struct tcefs_frame_header) + sizeof(struct tcefs_request) + pad8(data);
	unsigned char small_frame[SMALL];
	unsigned char *f = flen <= sizeof(small_frame) ? small_frame : malloc(flen);
	if (!f)
		return errno = ENOMEM, -1;
	memset(f, 0, flen);
	*(struct tcefs_frame_header *)f = frame_header(flen);
	struct tcefs_request *r = (void *)(f + sizeof(struct tcefs_frame_header));
	*r = (struct tcefs_request){ (__u32)(flen - sizeof(struct tcefs_frame_header)), (__u16)op, 0,
		(__u32)(op == TCEFS_OP_REGION_READ ? n : 0), (__u32)data, offset };
	ssize_t rc = -1;
	if (data && mem_read(r + 1, (uintptr_t)buf, data) != data) {
		errno = EFAULT;
		goto out;
	}
	struct reply reply;
	if (exchange(fd, f, flen, &reply))
		goto out;
	struct tcefs_answer *a = answer_of(&reply);
	long long result = a->result;
	if (result >= 0 && op == TCEFS_OP_REGION_READ) {
		const unsigned char *q = (const unsigned char *)(a + 1) + pad8(a->out_len);
		const struct tcefs_blob *b = (const void *)q;
		size_t got = a->nblobs ? b->length : 0;
		if ((size_t)result > got || (size_t)result > n)
			result = -EIO;
		else if (mem_write((uintptr_t)buf, b + 1, (size_t)result))
			result = -EFAULT;
	}
	reply_free(&reply);
	if (result < 0)
		errno = (int)-result;
	else
		rc = (ssize_t)result;
out:
	if (f != small_frame)
		free(f);
	return rc;
}

static ssize_t region_op(int fd, int op, void *buf, size_t n, uint64_t offset)
{
	if (!n)
		return region_frame(fd, op, buf, n, offset);
	if (offset >= TCEFS_REGION_DIRECT)
		return errno = EINVAL, -1;
	uint64_t at = TCEFS_REGION_DIRECT + offset;
	return op == TCEFS_OP_REGION_WRITE ? sys_pwrite(fd, buf, n, at) : sys_pread(fd, buf, n, at);
}

/* Split into chunks like a short-read-tolerant loop would; a failure after some data returns the
 * bytes already moved, as read(2) does. */
static ssize_t region_rw(int fd, int op, void *buf, size_t count, uint64_t offset)
{
	size_t done = 0;
	do {
		size_t n = count - done < REGION_CHUNK ? count - done : REGION_CHUNK;
		ssize_t r = region_op(fd, op, (unsigned char *)buf + done, n, offset + done);
		if (r < 0)
			return done ? (ssize_t)done : -1;
		done += (size_t)r;
		if ((size_t)r < n)
			break;
	} while (done < count);
	return (ssize_t)done;
}

ssize_t tcefs_region_read(int fd, void *buf, size_t count, uint64_t offset)
{
	return region_rw(fd, TCEFS_OP_REGION_READ, buf, count, offset);
}

ssize_t tcefs_region_write(int fd, const void *buf, size_t count, uint64_t offset)
{
	return region_rw(fd, TCEFS_OP_REGION_WRITE, (void *)buf, count, offset);
}

ssize_t tcefs__region_write_open(int fd, unsigned open_id, const void *buf, size_t count, uint64_t offset)
{
	ssize_t r = tcefs__post_write(fd, open_id, buf, count, offset);
	return r != -2 ? r : tcefs_region_write(fd, buf, count, offset);
}

int tcefs__post_ask(int fd, unsigned role, struct tcefs_post *g, const volatile uint64_t **words)
{
	struct {
		struct tcefs_frame_header h;
		struct tcefs_request r;
	} f = { frame_header(sizeof(f)), { sizeof(struct tcefs_request), TCEFS_OP_POST, 0, 0, 0, role } };
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_mutex_lock(&wire);
	tcefs__lease_begin();
	struct reply reply;
	int rc = exchange_locked(fd, &f, sizeof(f), &reply), e = errno;
	if (rc == 0) {
		struct tcefs_answer *a = answer_of(&reply);
		rc = -1, e = a->result < 0 ? (int)-a->result : EIO;
		size_t n;
		const void *blob = a->result == 0 && a->nblobs == 1 ? tcefs__answer_blob(reply.buf, reply.len, TCEFS_POST_FIELD, &n) : NULL;
		if (blob && n == sizeof(*g)) {
			memcpy(g, blob, sizeof(*g));
			/* The grant's epoch is word 1 of the lease file: no file, no posting. */
			if ((*words = tcefs__board_words(fd, g->daemon_pid)))
				rc = 0;
			else
				e = EOPNOTSUPP;
		}
		reply_free(&reply);
	}
	pthread_mutex_unlock(&wire);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return rc;
}

/* The kernel's read()/write() take at most this much in one call. */
#define MAX_RW_COUNT (0x7fffffffu & ~4095u)

/* A queue's read is one request whatever the count: the reply brings only the records there are. */
ssize_t tcefs_queue_read(int fd, void *buf, size_t count, uint64_t offset)
{
	return region_op(fd, TCEFS_OP_REGION_READ, buf, count < MAX_RW_COUNT ? count : MAX_RW_COUNT, offset);
}

/* Responses travel in the frame, so a write larger than a frame goes in whole-record pieces. */
ssize_t tcefs_queue_write(int fd, const void *buf, size_t count, uint64_t offset)
{
	if (count > MAX_RW_COUNT)
		count = MAX_RW_COUNT;
	size_t done = 0;
	do {
		size_t n = count - done < REGION_CHUNK ? count - done : REGION_CHUNK;
		ssize_t r = region_op(fd, TCEFS_OP_REGION_WRITE, (unsigned char *)buf + done, n, offset);
		if (r < 0)
			return done ? (ssize_t)done : -1;
		done += (size_t)r;
		if ((size_t)r < n)
			break;
	} while (done < count);
	return (ssize_t)done;
}
