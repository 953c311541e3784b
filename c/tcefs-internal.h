/* What libtcefs shares with the preload shim, which links it statically. Not public API: the
 * symbols are hidden so neither libtcefs.so nor the shim exports them. */
#ifndef TCEFS_INTERNAL_H
#define TCEFS_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#define TCEFS_HIDDEN __attribute__((visibility("hidden")))

/* tcefs_ioctl for a caller that already knows the fd's kind (TCEFS_KIND_*); kind <= 0 means "find out". */
TCEFS_HIDDEN int tcefs__ioctl(int fd, int kind, unsigned long request, void *arg);

/* The same, for the shim: open_id names the open file fd refers to (the same for its dups, never reused),
 * which lets a container's unmaps be answered from a lease (libtcefs-lease.c); 0 for none. */
TCEFS_HIDDEN int tcefs__ioctl_open(int fd, int kind, unsigned open_id, unsigned long request, void *arg);

/* Read n bytes of this process's memory at src as the kernel would (a fault reads short); bytes read. */
TCEFS_HIDDEN size_t tcefs__mem_read(void *dst, uint64_t src, size_t n);

/* Unmap leases (libtcefs-lease.c). begin: an exchange starts, under the wire lock (voids the lease held;
 * returns the generation a lease it brings back belongs to). void: a fork, close or dup2 did the same.
 * keep: take the lease in a reply, under the wire lock. answer: 1 if the lease answers this call (0). */
TCEFS_HIDDEN unsigned long tcefs__lease_begin(void);
TCEFS_HIDDEN void tcefs__lease_void(void);
/* The data of the first answer blob at field_offset `field` in a reply frame, its length in *blen; NULL if
 * there is none or it runs past len. */
TCEFS_HIDDEN const void *tcefs__answer_blob(const unsigned char *reply, size_t len, uint32_t field, size_t *blen);
TCEFS_HIDDEN void tcefs__lease_keep(int fd, unsigned open_id, unsigned long request, unsigned long gen, const unsigned char *reply, size_t len);
TCEFS_HIDDEN int tcefs__lease_answer(unsigned open_id, unsigned long request, void *arg);

/* The kind a node path inside the mount ("/dev/vfio/0") opens as: a TCEFS_KIND_* bit, 0 for a file that
 * takes no frames (sysfs text, directories), -1 when only the daemon knows (a claimed .tcefs/fd file). */
/* Call fn for each fd of this process (from /proc/self/fd) until it returns nonzero: that value, 0 when
 * none did, -1 when /proc/self/fd cannot be read. */
TCEFS_HIDDEN int tcefs__each_fd(int (*fn)(int fd, void *ctx), void *ctx);
TCEFS_HIDDEN int tcefs__path_kind(const char *rel);

/* The poll() events of a tcefs file now (TCEFS_OP_POLL), or -1 with errno. */
TCEFS_HIDDEN int tcefs__poll_events(int fd);

/* Set by the shim: told of every fd libtcefs opens itself, which is the fd an ioctl returned, and its
 * daemon handle. */
TCEFS_HIDDEN extern void (*tcefs__claimed)(int fd, int handle);

/* Whether fd a of process pa and fd b of process pb are one open file: 1 yes, 0 no, -1 cannot tell
 * (kcmp unavailable or not permitted). */
TCEFS_HIDDEN int tcefs__same_file(int pa, int a, int pb, int b);

/* Whether the parent process has fd's open file under the same number, as a forked or exec'd child's
 * inherited fd has while the parent keeps its copy: 1 yes, 0 no or cannot tell. */
TCEFS_HIDDEN int tcefs__parent_holds(int fd);

/* Wait, at most the daemon's bound, until none of the n handles is an open file of the mount at mnt
 * (an absolute path without trailing slash). */
TCEFS_HIDDEN void tcefs__await_release(const char *mnt, const int *handles, int n);

/* The path of a per-handle node inside the mount fd lives in: <mount><dir>/<handle in hex>. */
TCEFS_HIDDEN int tcefs__mount_path(int fd, const char *dir, int handle, char *out, size_t len);

/* SET_IRQS eventfds (libtcefs-irq.c): prepare rewrites data[] for the wire and duplicates the eventfds;
 * commit files the duplicates under the device's handle once the daemon has accepted the call. */
struct tcefs_cmd_desc;
struct tcefs__irq_prep {
	int active;
	unsigned flags, index, start, count;
	unsigned n;
	int *dups; /* per entry: our duplicate (>= 0), or the program's negative entry */
};
TCEFS_HIDDEN int tcefs__irq_prepare(const struct tcefs_cmd_desc *c, unsigned char *abuf, size_t alen, struct tcefs__irq_prep *p);
TCEFS_HIDDEN int tcefs__irq_commit(int fd, int handle, struct tcefs__irq_prep *p, long long result);
TCEFS_HIDDEN void tcefs__irq_abandon(struct tcefs__irq_prep *p);
/* The device was reset: vfio-pci's interrupts are off, so are our duplicates. */
TCEFS_HIDDEN void tcefs__irq_reset(int handle);

/* A duplicate of fd at a high number with FD_CLOEXEC, out of the program's way; -1 if none. */
TCEFS_HIDDEN int tcefs__dup_high(int fd);

/* Posted writes (libtcefs-post.c). post_write: n if the write went down the daemon's socket, -1 with
 * errno (EFAULT) if it failed as pwrite would, -2 if it must go the usual way. post_forget: fds first..last
 * were closed or replaced. post_ask: a TCEFS_OP_POST exchange on fd for role (TCEFS_POST_*); its grant and
 * the lease file's words. */
struct tcefs_post;
TCEFS_HIDDEN ssize_t tcefs__post_write(int fd, unsigned open_id, const void *buf, size_t n, uint64_t offset);
TCEFS_HIDDEN void tcefs__post_forget(unsigned first, unsigned last);
TCEFS_HIDDEN int tcefs__post_ask(int fd, unsigned role, struct tcefs_post *g, const volatile uint64_t **words);
/* A connection to the daemon's socket for the grant g (TCEFS_POST_EVENTS too): its fd, -1 if none. */
TCEFS_HIDDEN int tcefs__post_connect(const struct tcefs_post *g);
/* TCEFS_POST=0: no sockets at all, writes and interrupts go through FUSE. */
TCEFS_HIDDEN int tcefs__post_off(void);
/* The lease file's words for the daemon pid runs as, mapped once; NULL if it cannot be. Under the wire lock. */
TCEFS_HIDDEN const volatile uint64_t *tcefs__board_words(int fd, unsigned pid);
/* tcefs_region_write for the shim, which knows the open file fd refers to (0: unknown, nothing posted). */
TCEFS_HIDDEN ssize_t tcefs__region_write_open(int fd, unsigned open_id, const void *buf, size_t count, uint64_t offset);

/* Set by the shim: the calling thread's fail-nth counter, or NULL if it has none. A nonzero counter
 * goes with each ioctl frame (TCEFS_OP_FAIL_NTH), and what the daemon leaves of it is stored back. */
TCEFS_HIDDEN extern unsigned *(*tcefs__fail_nth)(void);

#endif
