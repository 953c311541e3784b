// libtcefs-preload.so: run an unmodified program against a tcefs mount (LD_PRELOAD, TCEFS_MOUNT=dir).
//
// Three jobs, in the spirit of umockdev's preload library:
// - path calls naming /dev/iommu, /dev/vfio/..., /sys/kernel/iommu_groups/..., the vfio-pci driver
//   directory and emulated /sys/bus/pci/devices/<BDF>/... are sent to the mount (shim-path.c);
// - fds opened there are remembered (shim-fd.c), and ioctl() on them is served by libtcefs, linked in;
// - a VFIO device fd's read/write/pread/pwrite become region accesses, since the frame stream occupies
//   the offsets where region 0 lives, and its /dev nodes stat as character devices.
// Anything else reaches libc untouched. Each wrapper finds libc's own function with dlsym(RTLD_NEXT),
// and nothing the shim does internally goes through an interposed name (libtcefs uses raw syscalls).
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <tcefs/protocol.h>
#include <tcefs/tcefs.h>
#include "shim.h"
#include "tcefs-internal.h"

#define EXPORT __attribute__((visibility("default")))

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* On the 64-bit targets tcefs supports, the *64 structs are the plain ones under another name. */
_Static_assert(sizeof(struct stat) == sizeof(struct stat64), "struct stat64 differs from struct stat");

/* glibc entry points that a program built with _FORTIFY_SOURCE or against glibc < 2.33 calls instead
 * of the plain names; they are not declared without those settings. */
extern void __chk_fail(void) __attribute__((noreturn));
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen);
ssize_t __readlink_chk(const char *path, char *buf, size_t len, size_t buflen);
ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t len, size_t buflen);
char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen);
int __xstat(int ver, const char *path, struct stat *st);
int __xstat64(int ver, const char *path, struct stat64 *st);
int __lxstat(int ver, const char *path, struct stat *st);
int __lxstat64(int ver, const char *path, struct stat64 *st);
int __fxstat(int ver, int fd, struct stat *st);
int __fxstat64(int ver, int fd, struct stat64 *st);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags);
int __ioctl_time64(int fd, unsigned long request, ...);

/* libc's definition of `name`, looked up on first use (a race only looks it up twice). */
#define REAL(name)                                                         \
	({                                                                 \
		static void *real_;                                        \
		if (!real_)                                                \
			real_ = dlsym(RTLD_NEXT, #name);                   \
		(__typeof__(&name))(real_ ? real_ : (void *)missing_fn); \
	})

/* Stands in for a libc function this libc lacks; only reached by a program that could not have
 * linked against it, so it just fails. */
static long missing_fn(void)
{
	errno = ENOSYS;
	return -1;
}

__attribute__((constructor)) static void shim_start(void)
{
	tcefs__claimed = fd_track_claimed;
	shim_init();
}

/* ---- opening ---- */

static int opened(int fd, const struct target *t)
{
	if (fd >= 0) {
		if (t->how != TARGET_UNTOUCHED)
			fd_track(fd, t->rel);
		else
			fd_forget(fd);
	}
	return fd;
}

/*
 * Opening a node whose open allocates a file object (an iommufd context, a container, a device file) is
 * a failure point of the thread's fail-nth: the file just opened is closed again and the open fails
 * ENOMEM, as the kernel's failed allocation would make it.
 */
static int opened_node(int fd, const struct target *t, int flags)
{
	if (fd >= 0 && t->how != TARGET_UNTOUCHED && !(flags & O_PATH)) {
		int kind = tcefs__path_kind(t->rel);
		if ((kind == TCEFS_KIND_IOMMUFD || kind == TCEFS_KIND_CONTAINER || kind == TCEFS_KIND_DEVICE) && failnth_point()) {
			close(fd);
			return errno = ENOMEM, -1;
		}
	}
	return opened(fd, t);
}

static mode_t open_mode(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

/*
 * A tcefs node takes its ioctls as frames written and replies read through the same open file, so a
 * node the program opens read-only or write-only is opened read-write instead; the kernel's ioctls
 * work whatever the access mode. Only if the mount refuses that does the program's own mode apply.
 */
#define OPEN_NODE(call_with_flags)                                                            \
	do {                                                                                  \
		int nth_ = failnth_open(path, flags);                                         \
		if (nth_ != -2)                                                               \
			return nth_;                                                          \
		int st_ = status_open(path, flags);                                           \
		if (st_ != -2)                                                                \
			return st_;                                                           \
		if (t.how != TARGET_UNTOUCHED && (flags & O_ACCMODE) != O_RDWR && !(flags & O_PATH) && \
		    tcefs__path_kind(t.rel) > 0) {                                            \
			int rw_ = (flags & ~O_ACCMODE) | O_RDWR;                              \
			int fd_ = call_with_flags(rw_);                                      \
			if (fd_ >= 0 || errno != EACCES)                                      \
				return opened_node(fd_, &t, flags);                           \
		}                                                                             \
		return opened_node(call_with_flags(flags), &t, flags);                        \
	} while (0)

EXPORT int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
#define CALL(f) REAL(open)(t.use, f, mode)
	OPEN_NODE(CALL);
#undef CALL
}

EXPORT int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
#define CALL(f) REAL(open64)(t.use, f, mode)
	OPEN_NODE(CALL);
#undef CALL
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	struct target t;
	shim_resolve(dirfd, path, &t);
#define CALL(f) REAL(openat)(dirfd, t.use, f, mode)
	OPEN_NODE(CALL);
#undef CALL
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	struct target t;
	shim_resolve(dirfd, path, &t);
#define CALL(f) REAL(openat64)(dirfd, t.use, f, mode)
	OPEN_NODE(CALL);
#undef CALL
}

EXPORT int __open_2(const char *path, int flags)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
#define CALL(f) REAL(__open_2)(t.use, f)
	OPEN_NODE(CALL);
#undef CALL
}

EXPORT int __open64_2(const char *path, int flags)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
#define CALL(f) REAL(__open64_2)(t.use, f)
	OPEN_NODE(CALL);
#undef CALL
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	struct target t;
	shim_resolve(dirfd, path, &t);
#define CALL(f) REAL(__openat_2)(dirfd, t.use, f)
	OPEN_NODE(CALL);
#undef CALL
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	struct target t;
	shim_resolve(dirfd, path, &t);
#define CALL(f) REAL(__openat64_2)(dirfd, t.use, f)
	OPEN_NODE(CALL);
#undef CALL
}

/* fopen of a status file (shim-status.c): "r" only, with "e" (O_CLOEXEC) as glibc takes it. */
#define STATUS_NOT_OURS ((FILE *)-1)
static FILE *status_fopen(const char *path, const char *mode)
{
	if (!mode || mode[0] != 'r' || strchr(mode, '+'))
		return STATUS_NOT_OURS;
	int fd = status_open(path, O_RDONLY | (strchr(mode, 'e') ? O_CLOEXEC : 0));
	if (fd == -2)
		return STATUS_NOT_OURS;
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "r");
	if (!f) {
		int e = errno;
		syscall(SYS_close, fd);
		errno = e;
	}
	return f;
}

/* fopen's form of OPEN_NODE: a tcefs node opened through stdio gets a "+" mode (read and write). */
static FILE *fopen_node(FILE *(*real)(const char *, const char *), const char *mode, const struct target *t)
{
	if (t->how != TARGET_UNTOUCHED && mode && *mode && !strchr(mode, '+') && strlen(mode) < 14 && tcefs__path_kind(t->rel) > 0) {
		/* glibc takes the modifiers after the r/w/a letter in any order */
		char rw[16] = { mode[0], '+' };
		strcpy(rw + 2, mode + 1);
		FILE *f = real(t->use, rw);
		if (f || errno != EACCES)
			return f;
	}
	return real(t->use, mode);
}

EXPORT FILE *fopen(const char *path, const char *mode)
{
	FILE *st = status_fopen(path, mode);
	if (st != STATUS_NOT_OURS)
		return st;
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	FILE *f = fopen_node(REAL(fopen), mode, &t);
	if (f)
		opened(fileno(f), &t);
	return f;
}

EXPORT FILE *fopen64(const char *path, const char *mode)
{
	FILE *st = status_fopen(path, mode);
	if (st != STATUS_NOT_OURS)
		return st;
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	FILE *f = fopen_node(REAL(fopen64), mode, &t);
	if (f)
		opened(fileno(f), &t);
	return f;
}

/* ---- fd lifetime: the table follows every way an fd number is reused ---- */

/*
 * A close that drops the last descriptor of a tcefs file waits for the daemon to release it, as the
 * kernel's release has run when close() returns: the fds go from the table first (once closed, another
 * thread's open may get the same number), the close happens, then the wait (fd_closing says which files).
 */
static void after_close(int r, const struct release_wait *w)
{
	/* Linux frees the number even when close reports an error; only EBADF means nothing was closed. */
	if (r == 0 || errno != EBADF)
		fd_release_wait(w);
}

EXPORT int close(int fd)
{
	struct release_wait w = { 0 };
	if (fd >= 0)
		fd_closing((unsigned)fd, (unsigned)fd, 1, &w);
	int r = REAL(close)(fd);
	after_close(r, &w);
	return r;
}

EXPORT int fclose(FILE *f)
{
	struct release_wait w = { 0 };
	if (f) {
		int fd = fileno(f);
		if (fd >= 0)
			fd_closing((unsigned)fd, (unsigned)fd, 1, &w);
	}
	int r = REAL(fclose)(f);
	/* fclose closes the fd whatever it reports */
	fd_release_wait(&w);
	return r;
}

EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	struct release_wait w = { 0 };
	if (!(flags & CLOSE_RANGE_CLOEXEC) && first <= last)
		fd_closing(first, last, 1, &w);
	int r = REAL(close_range)(first, last, flags);
	if (r == 0)
		fd_release_wait(&w);
	return r;
}

EXPORT void closefrom(int low)
{
	struct release_wait w = { 0 };
	if (low >= 0)
		fd_closing((unsigned)low, ~0u, 1, &w);
	REAL(closefrom)(low);
	fd_release_wait(&w);
}

EXPORT int dup(int fd)
{
	int r = REAL(dup)(fd);
	if (r >= 0)
		fd_copy(fd, r);
	return r;
}

/* dup2/dup3 onto an open fd close it first: a tcefs file there may need its release waited for. */
EXPORT int dup2(int fd, int to)
{
	struct release_wait w = { 0 };
	if (to >= 0 && to != fd)
		fd_closing((unsigned)to, (unsigned)to, 0, &w);
	int r = REAL(dup2)(fd, to);
	if (r >= 0 && r != fd) {
		fd_copy(fd, r);
		fd_release_wait(&w);
	}
	return r;
}

EXPORT int dup3(int fd, int to, int flags)
{
	struct release_wait w = { 0 };
	if (to >= 0 && to != fd)
		fd_closing((unsigned)to, (unsigned)to, 0, &w);
	int r = REAL(dup3)(fd, to, flags);
	if (r >= 0) {
		fd_copy(fd, r);
		fd_release_wait(&w);
	}
	return r;
}

static int after_fcntl(int fd, int cmd, int r)
{
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		fd_copy(fd, r);
	return r;
}

/* The third argument is an int or a pointer depending on cmd; passing it on as a pointer-sized value
 * is what libc's own fcntl does with it. */
EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return after_fcntl(fd, cmd, REAL(fcntl)(fd, cmd, arg));
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return after_fcntl(fd, cmd, REAL(fcntl64)(fd, cmd, arg));
}

/* ---- ioctl ---- */

/* Requests the VFS answers itself before any driver sees them; they stay with the real kernel. */
static int vfs_generic(unsigned long request)
{
	unsigned r = (unsigned)request;
	return r == FIOCLEX || r == FIONCLEX || r == FIONBIO || r == FIOASYNC;
}

static int serve_ioctl(int fd, unsigned long request, void *arg, int *served)
{
	shim_init();
	*served = 0;
	if (!shim_mnt_len || vfs_generic(request))
		return 0;
	int kind = fd_ioctl_kind(fd, request);
	if (kind <= 0)
		return 0;
	*served = 1;
	/* The VFS refuses FIOQSIZE on character devices before the driver is asked. */
	if ((unsigned)request == FIOQSIZE)
		return errno = ENOTTY, -1;
	return tcefs__ioctl_open(fd, kind, fd_open_id(fd), request, arg);
}

EXPORT int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int served, r = serve_ioctl(fd, request, arg, &served);
	return served ? r : REAL(ioctl)(fd, request, arg);
}

/* glibc's ioctl for 32-bit programs built with 64-bit time_t; harmless where it does not exist. */
EXPORT int __ioctl_time64(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int served, r = serve_ioctl(fd, request, arg, &served);
	if (served)
		return r;
	static void *real;
	if (!real)
		real = dlsym(RTLD_NEXT, "__ioctl_time64");
	return real ? ((int (*)(int, unsigned long, ...))real)(fd, request, arg) : REAL(ioctl)(fd, request, arg);
}

/* ---- region access on device fds ---- */

/* read()/write() use and advance the file position, as vfio-pci's do. */
static ssize_t region_at_pos(int fd, void *buf, size_t n, int writing)
{
	off_t pos = (off_t)syscall(SYS_lseek, fd, 0, SEEK_CUR);
	if (pos < 0)
		return -1;
	ssize_t r = writing ? tcefs__region_write_open(fd, fd_open_id(fd), buf, n, (uint64_t)pos) : tcefs_region_read(fd, buf, n, (uint64_t)pos);
	if (r > 0)
		syscall(SYS_lseek, fd, pos + r, SEEK_SET);
	return r;
}

/* What read()/pread() and write()/pwrite() mean on fd (0 when the shim does not serve them). An event
 * queue keeps no file position: read() and write() are at offset 0, as the kernel's handlers see them. */
static ssize_t served_rw(int kind, int fd, void *buf, size_t n, const off_t *off, int writing)
{
	if (kind == TCEFS_KIND_DEVICE)
		return off ? (writing ? tcefs__region_write_open(fd, fd_open_id(fd), buf, n, (uint64_t)*off) : tcefs_region_read(fd, buf, n, (uint64_t)*off))
			   : region_at_pos(fd, buf, n, writing);
	uint64_t at = off ? (uint64_t)*off : 0;
	return writing ? tcefs_queue_write(fd, buf, n, at) : tcefs_queue_read(fd, buf, n, at);
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	ssize_t nth = failnth_read(fd, buf, n, 0, 1);
	if (nth != -2)
		return nth;
	int kind = fd_rw_kind(fd);
	return kind ? served_rw(kind, fd, buf, n, NULL, 0) : REAL(read)(fd, buf, n);
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return read(fd, buf, n);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	ssize_t nth = failnth_write(fd, buf, n);
	if (nth != -2)
		return nth;
	int kind = fd_rw_kind(fd);
	return kind ? served_rw(kind, fd, (void *)buf, n, NULL, 1) : REAL(write)(fd, buf, n);
}

EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	ssize_t nth = failnth_read(fd, buf, n, off, 0);
	if (nth != -2)
		return nth;
	int kind = fd_rw_kind(fd);
	return kind ? served_rw(kind, fd, buf, n, &off, 0) : REAL(pread)(fd, buf, n, off);
}

EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
	ssize_t nth = failnth_read(fd, buf, n, off, 0);
	if (nth != -2)
		return nth;
	int kind = fd_rw_kind(fd);
	off_t o = (off_t)off;
	return kind ? served_rw(kind, fd, buf, n, &o, 0) : REAL(pread64)(fd, buf, n, off);
}

EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return pread(fd, buf, n, off);
}

EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return pread64(fd, buf, n, off);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t nth = failnth_write(fd, buf, n);
	if (nth != -2)
		return nth;
	int kind = fd_rw_kind(fd);
	return kind ? served_rw(kind, fd, (void *)buf, n, &off, 1) : REAL(pwrite)(fd, buf, n, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	ssize_t nth = failnth_write(fd, buf, n);
	if (nth != -2)
		return nth;
	int kind = fd_rw_kind(fd);
	off_t o = (off_t)off;
	return kind ? served_rw(kind, fd, (void *)buf, n, &o, 1) : REAL(pwrite64)(fd, buf, n, off);
}

/* No region advertises VFIO_REGION_INFO_FLAG_MMAP (a FUSE direct_io file cannot be mapped), so a
 * device mapping fails as vfio-pci fails one for a region without mmap support: EINVAL (an unbound
 * cdev answers mmap with EINVAL too). */
EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!(flags & MAP_ANONYMOUS) && fd_is_region(fd))
		return errno = EINVAL, MAP_FAILED;
	return REAL(mmap)(addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	if (!(flags & MAP_ANONYMOUS) && fd_is_region(fd))
		return errno = EINVAL, MAP_FAILED;
	return REAL(mmap64)(addr, len, prot, flags, fd, off);
}

/* ---- stat: /dev nodes of the mount read as character devices ---- */

/* The mount's nodes are regular files (a FUSE mount is nodev); programs checking S_ISCHR see a device. */
static void dress(struct stat *st, dev_t rdev)
{
	if (!rdev || !S_ISREG(st->st_mode))
		return;
	st->st_mode = S_IFCHR | (st->st_mode & 07777);
	st->st_rdev = rdev;
	st->st_size = 0;
	st->st_blocks = 0;
}

static int dressed(int r, struct stat *st, const struct target *t)
{
	if (r == 0 && t->how != TARGET_UNTOUCHED)
		dress(st, shim_chr_rdev(t->rel));
	return r;
}

static int dressed_fd(int r, struct stat *st, int fd)
{
	if (r == 0)
		dress(st, fd_chr_rdev(fd));
	return r;
}

EXPORT int stat(const char *path, struct stat *st)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return dressed(REAL(stat)(t.use, st), st, &t);
}

EXPORT int stat64(const char *path, struct stat64 *st)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return dressed(REAL(stat64)(t.use, st), (struct stat *)st, &t);
}

EXPORT int lstat(const char *path, struct stat *st)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return dressed(REAL(lstat)(t.use, st), st, &t);
}

EXPORT int lstat64(const char *path, struct stat64 *st)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return dressed(REAL(lstat64)(t.use, st), (struct stat *)st, &t);
}

EXPORT int fstat(int fd, struct stat *st)
{
	return dressed_fd(REAL(fstat)(fd, st), st, fd);
}

EXPORT int fstat64(int fd, struct stat64 *st)
{
	return dressed_fd(REAL(fstat64)(fd, st), (struct stat *)st, fd);
}

static int is_fd_itself(const char *path, int flags)
{
	return path && !*path && (flags & AT_EMPTY_PATH);
}

EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	if (is_fd_itself(path, flags))
		return dressed_fd(REAL(fstatat)(dirfd, path, st, flags), st, dirfd);
	struct target t;
	shim_resolve(dirfd, path, &t);
	return dressed(REAL(fstatat)(dirfd, t.use, st, flags), st, &t);
}

EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	if (is_fd_itself(path, flags))
		return dressed_fd(REAL(fstatat64)(dirfd, path, st, flags), (struct stat *)st, dirfd);
	struct target t;
	shim_resolve(dirfd, path, &t);
	return dressed(REAL(fstatat64)(dirfd, t.use, st, flags), (struct stat *)st, &t);
}

/* Programs built against glibc before 2.33 call these; on 64-bit targets `ver` names the one layout. */
EXPORT int __xstat(int ver, const char *path, struct stat *st)
{
	(void)ver;
	return stat(path, st);
}

EXPORT int __xstat64(int ver, const char *path, struct stat64 *st)
{
	(void)ver;
	return stat64(path, st);
}

EXPORT int __lxstat(int ver, const char *path, struct stat *st)
{
	(void)ver;
	return lstat(path, st);
}

EXPORT int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	(void)ver;
	return lstat64(path, st);
}

EXPORT int __fxstat(int ver, int fd, struct stat *st)
{
	(void)ver;
	return fstat(fd, st);
}

EXPORT int __fxstat64(int ver, int fd, struct stat64 *st)
{
	(void)ver;
	return fstat64(fd, st);
}

EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	(void)ver;
	return fstatat(dirfd, path, st, flags);
}

EXPORT int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
	(void)ver;
	return fstatat64(dirfd, path, st, flags);
}

static void dress_statx(struct statx *stx, dev_t rdev)
{
	if (!rdev || !(stx->stx_mask & STATX_TYPE) || !S_ISREG(stx->stx_mode))
		return;
	stx->stx_mode = (__u16)(S_IFCHR | (stx->stx_mode & 07777));
	stx->stx_rdev_major = major(rdev);
	stx->stx_rdev_minor = minor(rdev);
	stx->stx_size = 0;
	stx->stx_blocks = 0;
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *stx)
{
	if (is_fd_itself(path, flags)) {
		int r = REAL(statx)(dirfd, path, flags, mask, stx);
		if (r == 0)
			dress_statx(stx, fd_chr_rdev(dirfd));
		return r;
	}
	struct target t;
	shim_resolve(dirfd, path, &t);
	int r = REAL(statx)(dirfd, t.use, flags, mask, stx);
	if (r == 0 && t.how != TARGET_UNTOUCHED)
		dress_statx(stx, shim_chr_rdev(t.rel));
	return r;
}

/* ---- other path calls ---- */

EXPORT int access(const char *path, int mode)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return REAL(access)(t.use, mode);
}

EXPORT int faccessat(int dirfd, const char *path, int mode, int flags)
{
	struct target t;
	shim_resolve(dirfd, path, &t);
	return REAL(faccessat)(dirfd, t.use, mode, flags);
}

EXPORT DIR *opendir(const char *path)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return REAL(opendir)(t.use);
}

EXPORT int scandir(const char *path, struct dirent ***list, int (*sel)(const struct dirent *),
	int (*cmp)(const struct dirent **, const struct dirent **))
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return REAL(scandir)(t.use, list, sel, cmp);
}

EXPORT int scandir64(const char *path, struct dirent64 ***list, int (*sel)(const struct dirent64 *),
	int (*cmp)(const struct dirent64 **, const struct dirent64 **))
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return REAL(scandir64)(t.use, list, sel, cmp);
}

/* ls -l and friends ask for ACLs and security labels; the mount has none, and saying so beats
 * letting the call find no such host file. */
EXPORT ssize_t getxattr(const char *path, const char *name, void *value, size_t size)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return REAL(getxattr)(t.use, name, value, size);
}

EXPORT ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return REAL(lgetxattr)(t.use, name, value, size);
}

EXPORT ssize_t listxattr(const char *path, char *list, size_t size)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return REAL(listxattr)(t.use, list, size);
}

EXPORT ssize_t llistxattr(const char *path, char *list, size_t size)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return REAL(llistxattr)(t.use, list, size);
}

EXPORT int chdir(const char *path)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	return REAL(chdir)(t.use);
}

/* /proc/self/fd/N of a mount fd names the node as the program opened it ("/dev/vfio/0"); a file an
 * ioctl returned reads as the anonymous inode the kernel would have made. */
static int is_own_fd_link(const char *p)
{
	char self[40];
	snprintf(self, sizeof(self), "/proc/%d/fd/", (int)getpid());
	return !strncmp(p, "/proc/self/fd/", 14) || !strncmp(p, "/proc/thread-self/fd/", 21) || !strncmp(p, self, strlen(self));
}

/* The anonymous inode's name for a file an ioctl returned. */
static const char *claimed_name(int fd)
{
	switch (fd_rw_kind(fd)) {
	case TCEFS_KIND_FAULT:
		return "anon_inode:[iommufd-pgfault]";
	case TCEFS_KIND_VEVENTQ:
		return "anon_inode:[iommufd-viommu-event]";
	default:
		return "anon_inode:[vfio-device]";
	}
}

static ssize_t own_fd_link(const char *p, char *buf, size_t len)
{
	char link[PATH_MAX];
	ssize_t n = REAL(readlinkat)(AT_FDCWD, p, link, sizeof(link) - 1);
	if (n < 0)
		return n;
	link[n] = 0;
	const char *rel = shim_unmount(link);
	const char *show = !rel ? link : !strncmp(rel, TCEFS_CLAIM_DIR "/", sizeof(TCEFS_CLAIM_DIR)) ? claimed_name(atoi(strrchr(p, '/') + 1)) : rel;
	size_t m = strlen(show);
	if (m > len)
		m = len;
	memcpy(buf, show, m);
	return (ssize_t)m;
}

EXPORT ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t len)
{
	struct target t;
	shim_resolve(dirfd, path, &t);
	if (t.how == TARGET_UNTOUCHED && t.have_norm && shim_mnt_len && is_own_fd_link(t.norm))
		return own_fd_link(t.norm, buf, len);
	return REAL(readlinkat)(dirfd, t.use, buf, len);
}

EXPORT ssize_t readlink(const char *path, char *buf, size_t len)
{
	return readlinkat(AT_FDCWD, path, buf, len);
}

EXPORT ssize_t __readlink_chk(const char *path, char *buf, size_t len, size_t buflen)
{
	if (len > buflen)
		__chk_fail();
	return readlinkat(AT_FDCWD, path, buf, len);
}

EXPORT ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t len, size_t buflen)
{
	if (len > buflen)
		__chk_fail();
	return readlinkat(dirfd, path, buf, len);
}

/* Resolved inside the mount, then shown without it: realpath of /sys/bus/pci/devices/<BDF>/iommu_group
 * is /sys/kernel/iommu_groups/<N>, as on the host. */
EXPORT char *realpath(const char *path, char *resolved)
{
	struct target t;
	shim_resolve(AT_FDCWD, path, &t);
	if (t.how != TARGET_REDIRECTED)
		return REAL(realpath)(path, resolved);
	char full[PATH_MAX];
	if (!REAL(realpath)(t.use, full))
		return NULL;
	const char *rel = shim_unmount(full);
	const char *show = rel ? rel : full;
	if (!resolved)
		return strdup(show);
	memcpy(resolved, show, strlen(show) + 1);
	return resolved;
}

EXPORT char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen)
{
	if (resolvedlen < PATH_MAX)
		__chk_fail();
	return realpath(path, resolved);
}

EXPORT char *canonicalize_file_name(const char *path)
{
	return realpath(path, NULL);
}
