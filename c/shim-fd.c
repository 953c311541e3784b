// The shim's fd table: which descriptors refer to files of the mount, and what kind each is.
//
// The table is only a fast filter. Before an fd is treated as a tcefs file (its ioctl served, its
// read taken as a region access, its stat dressed as a device), the shim checks what it refers to
// now, so an entry left stale by a close the shim did not see (fclose, closedir and other closes
// inside libc, raw syscalls) can never capture a pipe or a socket. The check on the hot paths is the
// file's identity (device and inode, by a statx that never reaches the daemon) against the one seen
// when the fd was tracked; only when that differs, or statx is unavailable, does /proc/self/fd say
// what the fd is now.
// The table lives in ordinary memory: a forked child inherits it together with the open files, which
// is right because parent and child share each open file (and its daemon-side state).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <tcefs/protocol.h>
#include <tcefs/tcefs.h>
#include "shim.h"
#include "tcefs-internal.h"

/* Which file an fd refers to: its device and inode. */
struct identity {
	uint32_t dev_major, dev_minor;
	uint64_t ino;
};

struct slot {
	unsigned char tracked;
	/* TCEFS_KIND_* bit; 0 for files that take no frames; -1 until the daemon has said (claimed files) */
	signed char kind;
	/* whether id holds the file's identity when it was tracked (statx could tell) */
	unsigned char identified;
	struct identity id;
	/* the file's daemon handle once known (from the claim, or asked at its first close), 0 before */
	int handle;
	/* the same for every fd dup'd from one open, told apart where kcmp cannot compare fds */
	unsigned desc;
};

static unsigned next_desc(void)
{
	static unsigned last;
	return __atomic_add_fetch(&last, 1, __ATOMIC_RELAXED);
}

/* What fd refers to, without a round trip to the daemon (a FUSE file's cached attributes do). */
static int identify(int fd, struct identity *id)
{
	struct statx sx;
	if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &sx) != 0 || !(sx.stx_mask & STATX_INO))
		return -1;
	*id = (struct identity){ sx.stx_dev_major, sx.stx_dev_minor, sx.stx_ino };
	return 0;
}

static void remember_identity(int fd, struct slot *s)
{
	s->identified = identify(fd, &s->id) == 0;
}

/* Whether fd still refers to the file its slot was tracked for: a statx of the fd, no path lookup. */
static int still_same(int fd, const struct slot *s)
{
	struct identity id;
	return s->identified && identify(fd, &id) == 0 && id.ino == s->id.ino && id.dev_major == s->id.dev_major && id.dev_minor == s->id.dev_minor;
}

/* Two levels, pages mapped on first use, so a process with a high fd limit pays only for fds it uses. */
#define PAGE_SLOTS 1024
#define PAGES 4096
static struct slot *pages[PAGES];

static struct slot *slot(int fd, int create)
{
	if (fd < 0 || fd >= PAGE_SLOTS * PAGES)
		return NULL;
	struct slot *pg = __atomic_load_n(&pages[fd / PAGE_SLOTS], __ATOMIC_ACQUIRE);
	if (!pg && create) {
		long m = syscall(SYS_mmap, NULL, PAGE_SLOTS * sizeof(struct slot), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == -1)
			return NULL;
		struct slot *expected = NULL;
		if (__atomic_compare_exchange_n(&pages[fd / PAGE_SLOTS], &expected, (struct slot *)m, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			pg = (struct slot *)m;
		else {
			syscall(SYS_munmap, m, PAGE_SLOTS * sizeof(struct slot));
			pg = expected;
		}
	}
	return pg ? &pg[fd % PAGE_SLOTS] : NULL;
}

/* What fd refers to now, as a path inside the mount; NULL if it is not a file of the mount. */
static const char *mount_rel(int fd, char *buf, size_t len)
{
	char link[48];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = syscall(SYS_readlinkat, AT_FDCWD, link, buf, len - 1);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	return shim_unmount(buf);
}

void fd_track(int fd, const char *rel)
{
	int e = errno;
	struct slot *s = slot(fd, 1);
	if (s) {
		*s = (struct slot){ .tracked = 1, .kind = (signed char)tcefs__path_kind(rel), .desc = next_desc() };
		remember_identity(fd, s);
	}
	errno = e;
}

void fd_track_claimed(int fd, int handle)
{
	int e = errno;
	struct slot *s = slot(fd, 1);
	if (s) {
		*s = (struct slot){ .tracked = 1, .kind = -1, .handle = handle, .desc = next_desc() };
		remember_identity(fd, s);
	}
	errno = e;
}

void fd_forget(int fd)
{
	struct slot *s = slot(fd, 0);
	if (s && s->tracked)
		tcefs__post_forget((unsigned)fd, (unsigned)fd);
	if (s)
		s->tracked = 0;
}

void fd_forget_from(unsigned first, unsigned last)
{
	tcefs__post_forget(first, last);
	for (unsigned p = first / PAGE_SLOTS; p < PAGES && p <= last / PAGE_SLOTS; p++) {
		struct slot *pg = __atomic_load_n(&pages[p], __ATOMIC_ACQUIRE);
		if (!pg)
			continue;
		for (unsigned i = 0; i < PAGE_SLOTS; i++) {
			unsigned fd = p * PAGE_SLOTS + i;
			if (fd >= first && fd <= last)
				pg[i].tracked = 0;
		}
	}
}

void fd_copy(int from, int to)
{
	int e = errno;
	struct slot *f = slot(from, 0);
	tcefs__lease_void();
	tcefs__post_forget((unsigned)to, (unsigned)to);
	if (f && f->tracked) {
		struct slot *t = slot(to, 1);
		if (t)
			*t = *f;
	} else
		fd_forget(to);
	errno = e;
}

/* ---- closing ---- */

/* Whether slot s (of fd) is a file taking frames that fd still refers to. */
static int closing_tcefs_file(int fd, const struct slot *s)
{
	if (!s->tracked || s->kind == 0)
		return 0;
	if (s->identified)
		return still_same(fd, s);
	char buf[PATH_MAX];
	return mount_rel(fd, buf, sizeof(buf)) != NULL;
}

/* Whether a tracked fd outside first..last, or the parent, holds fd's open file. Unsure is "no": the
 * caller then waits, which only costs time. */
static int held_elsewhere(int pid, int fd, const struct slot *s, unsigned first, unsigned last)
{
	for (unsigned p = 0; p < PAGES; p++) {
		struct slot *pg = __atomic_load_n(&pages[p], __ATOMIC_ACQUIRE);
		if (!pg)
			continue;
		for (unsigned i = 0; i < PAGE_SLOTS; i++) {
			unsigned other = p * PAGE_SLOTS + i;
			if ((other >= first && other <= last) || !pg[i].tracked || pg[i].kind == 0)
				continue;
			int same = tcefs__same_file(pid, fd, pid, (int)other);
			if (same == 1 || (same < 0 && pg[i].desc == s->desc))
				return 1;
		}
	}
	return tcefs__parent_holds(fd);
}

void fd_closing(unsigned first, unsigned last, int forget, struct release_wait *w)
{
	int e = errno;
	w->n = 0;
	int pid = 0;
	for (unsigned p = first / PAGE_SLOTS; p < PAGES && p <= last / PAGE_SLOTS; p++) {
		struct slot *pg = __atomic_load_n(&pages[p], __ATOMIC_ACQUIRE);
		if (!pg)
			continue;
		/* only the range's part of the page: a plain close looks at one slot */
		unsigned lo = p * PAGE_SLOTS, from = first > lo ? first - lo : 0, to = last - lo < PAGE_SLOTS ? last - lo : PAGE_SLOTS - 1;
		for (unsigned i = from; i <= to; i++) {
			int fd = (int)(lo + i);
			struct slot *s = &pg[i];
			if (!closing_tcefs_file(fd, s))
				continue;
			tcefs__lease_void();
			if (!pid)
				pid = (int)syscall(SYS_getpid);
			if (held_elsewhere(pid, fd, s, first, last))
				continue;
			if (s->handle <= 0)
				s->handle = tcefs_handle(fd);
			int k = 0;
			while (k < w->n && w->handles[k] != s->handle)
				k++;
			/* Past RELEASE_BATCH distinct files a close_range just does not wait for the rest. */
			if (s->handle > 0 && k == w->n && w->n < RELEASE_BATCH)
				w->handles[w->n++] = s->handle;
		}
	}
	if (forget && first == last)
		fd_forget((int)first);
	else if (forget)
		fd_forget_from(first, last);
	errno = e;
}

void fd_release_wait(const struct release_wait *w)
{
	if (w->n)
		tcefs__await_release(shim_mnt, w->handles, w->n);
}

/* The kind of a tracked or just-found mount fd, asking the daemon once for a claimed file. */
static int kind_now(int fd, struct slot *s, const char *rel)
{
	int kind = tcefs__path_kind(rel);
	if (kind >= 0)
		return kind;
	if (s && s->kind > 0)
		return s->kind;
	kind = tcefs_kind(fd);
	if (kind < 0)
		kind = 0;
	if (s)
		s->kind = (signed char)kind;
	return kind;
}

/* What kind of mount file fd is now (0: none, or one that takes no frames), the table brought up to date. */
static int current_kind(int fd, struct slot *s)
{
	/* The hot path: a tracked fd whose kind is known and which is still the same file. */
	if (s && s->tracked && s->kind >= 0 && still_same(fd, s))
		return s->kind;
	char buf[PATH_MAX];
	const char *rel = mount_rel(fd, buf, sizeof(buf));
	if (!rel) {
		if (s)
			s->tracked = 0;
		return 0;
	}
	/* Untracked, or tracked for a file this fd no longer is: start over from its path. */
	if (!s || !s->tracked || (s->identified && !still_same(fd, s))) {
		fd_track(fd, rel);
		s = slot(fd, 0);
	}
	return kind_now(fd, s, rel);
}

int fd_ioctl_kind(int fd, unsigned long request)
{
	struct slot *s = slot(fd, 0);
	/* An fd the table does not know is looked at only for a VFIO/iommufd number (type ';'): ioctls
	 * like TCGETS on a tty are the hot path of many programs and must cost nothing extra. */
	if (!(s && s->tracked) && ((request >> 8) & 0xff) != 0x3b)
		return 0;
	int e = errno;
	int kind = current_kind(fd, s);
	errno = e;
	return kind;
}

unsigned fd_open_id(int fd)
{
	struct slot *s = slot(fd, 0);
	return s && s->tracked ? s->desc : 0;
}

#define RW_KINDS (TCEFS_KIND_DEVICE | TCEFS_KIND_FAULT | TCEFS_KIND_VEVENTQ)

int fd_rw_kind(int fd)
{
	struct slot *s = slot(fd, 0);
	/* read() is hot: only a device or queue, or a claimed file of still unknown kind, costs a check */
	if (!s || !s->tracked || (s->kind >= 0 && !(s->kind & RW_KINDS)))
		return 0;
	int e = errno;
	int kind = current_kind(fd, s);
	errno = e;
	return kind & RW_KINDS ? kind : 0;
}

int fd_is_region(int fd)
{
	return fd_rw_kind(fd) == TCEFS_KIND_DEVICE;
}

dev_t fd_chr_rdev(int fd)
{
	struct slot *s = slot(fd, 0);
	if (!s || !s->tracked || s->kind <= 0)
		return 0;
	int e = errno;
	char buf[PATH_MAX];
	const char *rel = mount_rel(fd, buf, sizeof(buf));
	dev_t rdev = rel ? shim_chr_rdev(rel) : 0;
	if (!rel)
		s->tracked = 0;
	errno = e;
	return rdev;
}

struct dirent64_raw {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

void fd_adopt_inherited(void)
{
	int e = errno;
	int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dir < 0) {
		errno = e;
		return;
	}
	char ents[4096] __attribute__((aligned(8)));
	long n;
	while ((n = syscall(SYS_getdents64, dir, ents, sizeof(ents))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64_raw *d = (void *)(ents + off);
			off += d->d_reclen;
			char *end;
			long fd = strtol(d->d_name, &end, 10);
			if (*end || end == d->d_name || fd == dir)
				continue;
			char buf[PATH_MAX];
			const char *rel = mount_rel((int)fd, buf, sizeof(buf));
			if (rel)
				fd_track((int)fd, rel);
		}
	}
	syscall(SYS_close, dir);
	errno = e;
}
