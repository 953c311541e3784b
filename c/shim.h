/* The preload shim's parts: path redirection (shim-path.c), the fd table (shim-fd.c) and the libc
 * wrappers (preload.c). Everything here is internal to libtcefs-preload.so. */
#ifndef TCEFS_SHIM_H
#define TCEFS_SHIM_H

#include <limits.h>
#include <sys/types.h>

#define SHIM __attribute__((visibility("hidden")))

/* ---- configuration (shim-path.c) ---- */

/* The mount named by TCEFS_MOUNT, absolute and without a trailing slash; shim_mnt_len 0 = shim off. */
SHIM extern char shim_mnt[PATH_MAX];
SHIM extern size_t shim_mnt_len;

/* Read the environment once; every wrapper calls it before looking at anything else. */
SHIM void shim_init(void);

/* Let the daemon read and write this process's memory (device DMA) where Yama would refuse (shim-ptracer.c). */
SHIM void shim_permit_daemon(void);

/* ---- paths (shim-path.c) ---- */

enum target_how {
	TARGET_UNTOUCHED, /* not ours: pass the caller's path through unchanged */
	TARGET_REDIRECTED, /* a trapped path (/dev/vfio/...) the mount provides: use the mount's copy */
	TARGET_IN_MOUNT, /* the caller named a path inside the mount itself */
};

struct target {
	enum target_how how;
	const char *use; /* the path to hand to the real function */
	const char *rel; /* for the last two: the node's path inside the mount ("/dev/vfio/0") */
	int have_norm; /* norm holds the absolute, lexically normalized path */
	char norm[PATH_MAX];
	char buf[PATH_MAX];
};

/* Decide what `path` (relative to dirfd, as openat takes it) means under the shim. */
SHIM void shim_resolve(int dirfd, const char *path, struct target *t);

/* Where a path inside the mount lives for the program: the mount prefix stripped ("/dev/vfio/0"), or
 * NULL if `path` is not inside the mount. */
SHIM const char *shim_unmount(const char *path);

/* The device number a node under /dev of the mount reports as a character device; 0 if none. */
SHIM dev_t shim_chr_rdev(const char *rel);

/* ---- the fd table (shim-fd.c) ---- */

/* Remember that fd was opened on the mount node `rel`. */
SHIM void fd_track(int fd, const char *rel);
/* An fd libtcefs opened for an ioctl that returned a file (its kind is asked of the daemon later). */
SHIM void fd_track_claimed(int fd, int handle);
SHIM void fd_forget(int fd);
SHIM void fd_forget_from(unsigned first, unsigned last);
/* `to` now refers to what `from` refers to (dup and friends). */
SHIM void fd_copy(int from, int to);

/* Files whose release a close must wait for: gathered before the real close, awaited after it. */
#define RELEASE_BATCH 64
struct release_wait {
	int n;
	int handles[RELEASE_BATCH];
};
/* Before fds first..last are closed (or `first` replaced by dup2): note the tcefs files among them that
 * no other fd of this process, nor the parent, still holds; forget the fds too if `forget`. */
SHIM void fd_closing(unsigned first, unsigned last, int forget, struct release_wait *w);
/* After the close: wait for the daemon to release what fd_closing noted (bounded by the daemon). */
SHIM void fd_release_wait(const struct release_wait *w);

/* The TCEFS_KIND_* of fd if ioctls on it go to tcefs, else 0. `request` lets an fd the table does not
 * know (inherited, received, opened by a raw syscall) be looked up, but only for VFIO/iommufd numbers. */
SHIM int fd_ioctl_kind(int fd, unsigned long request);
/* Which open file fd refers to, as fd_ioctl_kind just checked it: the same for dups, never reused; 0 if
 * untracked. */
SHIM unsigned fd_open_id(int fd);
/* Nonzero if fd is a VFIO device file, whose read/write/pread/pwrite/mmap are region accesses. */
SHIM int fd_is_region(int fd);
/* The kind of fd if the shim serves its read/write family (a device's regions, an event queue's
 * records: TCEFS_KIND_DEVICE, _FAULT, _VEVENTQ), else 0. */
SHIM int fd_rw_kind(int fd);
/* The character device number fstat should report for fd, 0 to leave its stat alone. */
SHIM dev_t fd_chr_rdev(int fd);

/* Pick up mount fds that survived an exec (the table itself does not). */
SHIM void fd_adopt_inherited(void);

/* ---- /proc/<pid>/status (shim-status.c) ---- */

/* Open `path` if it names a process's status file, read-only: a private copy with iommufd's VmPin and
 * VmLck added, or -1 with errno; -2 if the path is not one (or is opened for writing). */
SHIM int status_open(const char *path, int flags);

/* ---- fail-nth (shim-failnth.c) ---- */

/* Open `path` if it names a fail-nth file of one of this process's threads: the fd, or -1 with errno;
 * -2 if the path is not one. */
SHIM int failnth_open(const char *path, int flags);
/* read/pread (at_pos: at and past the file position) and write/pwrite of a fail-nth fd; -2 if fd is none. */
SHIM ssize_t failnth_read(int fd, void *buf, size_t n, off_t off, int at_pos);
SHIM ssize_t failnth_write(int fd, const void *buf, size_t n);
/* One failure point of the calling thread: 1 if it is the one its fail-nth makes fail. */
SHIM int failnth_point(void);

#endif
