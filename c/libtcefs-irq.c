// Interrupt delivery for libtcefs: the eventfds a program attaches with VFIO_DEVICE_SET_IRQS.
//
// The daemon cannot reach a client's eventfd, so the library keeps a duplicate of each one (the kernel
// holds a reference too, so the program may close its own copy) in a table per device file, keyed by
// the device's handle. One thread per device file reads the device's event node
// (<mount>/.tcefs/irq/<handle>) and signals the eventfds named in the records it gets. The daemon
// answers that read with a heartbeat record at least every 200 ms, so the thread never keeps a killed
// process from exiting; end of file means the device file was released, and the thread tears down.
//
// Duplicates live at high fd numbers with FD_CLOEXEC, out of the program's way. After fork the child
// has no thread, so its copy of the table is dropped (the parent keeps delivering to the shared
// eventfds); after exec the table is gone and interrupts armed before it are not delivered.
// Everything here uses raw system calls: the preload shim interposes the libc wrappers.
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
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <tcefs/protocol.h>
#include <tcefs/uapi.h>
#include "tcefs-internal.h"

#define NUM_INDEXES 5

struct irq_dev {
	int handle;
	int evfd;         /* the event node or socket, read by the thread; -1 before the thread starts */
	int stream;       /* evfd is the daemon's socket (TCEFS_POST_EVENTS), not the event node */
	int nvec[NUM_INDEXES];
	int *fds[NUM_INDEXES]; /* our duplicates, -1 where a vector has none */
	struct irq_dev *next;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct irq_dev *devices;

static void sys_close(int fd)
{
	if (fd >= 0)
		syscall(SYS_close, fd);
}

static int high_fd_base(void)
{
	struct rlimit r;
	if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &r) || r.rlim_cur == RLIM_INFINITY || r.rlim_cur > 4096)
		return 1024;
	return r.rlim_cur > 64 ? (int)(r.rlim_cur * 3 / 4) : 3;
}

int tcefs__dup_high(int fd)
{
	int n = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, high_fd_base());
	return n >= 0 ? n : (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);
}

static int is_eventfd(int fd)
{
	char link[64], target[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = syscall(SYS_readlinkat, AT_FDCWD, link, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = 0;
	return !strcmp(target, "anon_inode:[eventfd]");
}

static int u32_at(const unsigned char *a, size_t alen, unsigned off, __u32 *v)
{
	if (off + 4 > alen)
		return -1;
	memcpy(v, a + off, 4);
	return 0;
}

int tcefs__irq_prepare(const struct tcefs_cmd_desc *c, unsigned char *abuf, size_t alen, struct tcefs__irq_prep *p)
{
	memset(p, 0, sizeof(*p));
	__u32 flags, count;
	if (!c->evfds.offset || u32_at(abuf, alen, c->evfds.flags_offset, &flags) || u32_at(abuf, alen, c->evfds.count_offset, &count))
		return 0;
	const struct vfio_irq_set *h = (const void *)abuf;
	unsigned action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK, data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	/* Only attaching eventfds and disabling (count 0) change the table; loopback triggers do not. */
	if (action != VFIO_IRQ_SET_ACTION_TRIGGER || !(data == c->evfds.flag || (data == VFIO_IRQ_SET_DATA_NONE && count == 0)))
		return 0;
	p->active = 1;
	p->flags = flags;
	p->index = h->index;
	p->start = h->start;
	p->count = count;
	if (!(flags & c->evfds.flag))
		return 0;
	/* Entries the argument holds; fewer than count is the daemon's EINVAL to give. */
	size_t have = alen > c->evfds.offset ? (alen - c->evfds.offset) / 4 : 0;
	p->n = count < have ? count : have;
	p->dups = malloc((p->n ? p->n : 1) * sizeof(int));
	if (!p->dups)
		return errno = ENOMEM, -1;
	for (unsigned i = 0; i < p->n; i++) {
		__s32 fd;
		memcpy(&fd, abuf + c->evfds.offset + 4 * i, 4);
		p->dups[i] = fd < 0 ? fd : -1; /* a negative entry is kept to tell -1 from other negatives */
		__s32 wire = fd; /* a negative entry travels as it is */
		if (fd < 0)
			;
		else if (syscall(SYS_fcntl, fd, F_GETFD, 0) < 0)
			wire = TCEFS_HANDLE_NONE;
		else if (!is_eventfd(fd))
			wire = TCEFS_HANDLE_FOREIGN;
		else if ((p->dups[i] = tcefs__dup_high(fd)) < 0) {
			int e = errno;
			tcefs__irq_abandon(p);
			return errno = e, -1;
		} else
			wire = TCEFS_IRQ_EVENTFD;
		memcpy(abuf + c->evfds.offset + 4 * i, &wire, 4);
	}
	return 0;
}

void tcefs__irq_abandon(struct tcefs__irq_prep *p)
{
	for (unsigned i = 0; p->dups && i < p->n; i++)
		sys_close(p->dups[i]);
	free(p->dups);
	p->dups = NULL;
	p->n = 0;
}

static struct irq_dev *find_dev(int handle)
{
	for (struct irq_dev *d = devices; d; d = d->next)
		if (d->handle == handle)
			return d;
	return NULL;
}

static void clear_index(struct irq_dev *d, int index)
{
	for (int v = 0; v < d->nvec[index]; v++)
		sys_close(d->fds[index][v]);
	free(d->fds[index]);
	d->fds[index] = NULL;
	d->nvec[index] = 0;
}

static void clear_dev(struct irq_dev *d)
{
	for (int i = 0; i < NUM_INDEXES; i++)
		clear_index(d, i);
}

/* The slot for one vector, grown as needed; NULL when out of memory. */
static int *slot(struct irq_dev *d, unsigned index, unsigned vector)
{
	if (vector >= (unsigned)d->nvec[index]) {
		unsigned n = vector + 1 > 2 * (unsigned)d->nvec[index] ? vector + 1 : 2 * (unsigned)d->nvec[index];
		int *bigger = realloc(d->fds[index], n * sizeof(int));
		if (!bigger)
			return NULL;
		for (unsigned i = (unsigned)d->nvec[index]; i < n; i++)
			bigger[i] = -1;
		d->fds[index] = bigger;
		d->nvec[index] = (int)n;
	}
	return &d->fds[index][vector];
}

static void *deliver(void *arg)
{
	struct irq_dev *d = arg;
	struct tcefs_irq_record recs[64];
	size_t have = 0; /* bytes of a record a socket read left over */
	for (;;) {
		/* The event file answers whole records; a stream socket may stop inside one. */
		ssize_t n = d->stream ? syscall(SYS_read, d->evfd, (char *)recs + have, sizeof(recs) - have)
				      : syscall(SYS_pread64, d->evfd, recs, sizeof(recs), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		n += (ssize_t)have;
		pthread_mutex_lock(&table_lock);
		for (size_t i = 0; i < (size_t)n / sizeof(recs[0]); i++) {
			struct tcefs_irq_record *r = &recs[i];
			if (r->index >= NUM_INDEXES || r->vector >= (unsigned)d->nvec[r->index])
				continue; /* a heartbeat, or a vector whose eventfd is gone */
			int fd = d->fds[r->index][r->vector];
			if (fd >= 0) {
				__u64 count = r->count;
				syscall(SYS_write, fd, &count, sizeof(count));
			}
		}
		pthread_mutex_unlock(&table_lock);
		have = (size_t)n % sizeof(recs[0]);
		if (have)
			memmove(recs, (char *)recs + (size_t)n - have, have);
	}
	/* The device file was released (or the mount went away): its eventfds go. */
	pthread_mutex_lock(&table_lock);
	for (struct irq_dev **pp = &devices; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	clear_dev(d);
	sys_close(d->evfd);
	pthread_mutex_unlock(&table_lock);
	free(d);
	return NULL;
}

/* The daemon's socket for this device's records, where it has one: a write to it wakes this thread
 * straight away, where an answer to a read of the event node goes through a FUSE thread first. */
static int event_socket(int fd)
{
	struct tcefs_post g;
	const volatile uint64_t *words;
	if (tcefs__post_off() || tcefs__post_ask(fd, TCEFS_POST_EVENTS, &g, &words) || !(g.token[0] | g.token[1]))
		return -1;
	return tcefs__post_connect(&g);
}

/* Called with the table locked; sock is event_socket()'s answer, asked before the lock was taken (an
 * exchange takes the wire lock, which fork's handlers take before this one). */
static int start_thread(int fd, struct irq_dev *d, int sock)
{
	int ev = sock;
	d->stream = ev >= 0;
	if (ev < 0) {
		char path[PATH_MAX];
		if (tcefs__mount_path(fd, TCEFS_IRQ_DIR, d->handle, path, sizeof(path)))
			return -1;
		ev = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
		if (ev < 0)
			return -1;
		int high = tcefs__dup_high(ev);
		if (high >= 0) {
			sys_close(ev);
			ev = high;
		}
	}
	d->evfd = ev;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	/* The thread takes no signals: they belong to the program's own threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	int rc = pthread_create(&t, &attr, deliver, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc) {
		sys_close(ev);
		d->evfd = -1;
		return errno = rc, -1;
	}
	return 0;
}

int tcefs__irq_commit(int fd, int handle, struct tcefs__irq_prep *p, long long result)
{
	if (!p->active)
		return 0;
	if (result < 0 || p->index >= NUM_INDEXES) {
		tcefs__irq_abandon(p);
		return 0;
	}
	int action = p->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK, data = p->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	int rc = 0, sock = -1;
	if (action == VFIO_IRQ_SET_ACTION_TRIGGER && data == VFIO_IRQ_SET_DATA_EVENTFD) {
		pthread_mutex_lock(&table_lock);
		struct irq_dev *had = find_dev(handle);
		int running = had && had->evfd >= 0;
		pthread_mutex_unlock(&table_lock);
		if (!running)
			sock = event_socket(fd);
	}
	pthread_mutex_lock(&table_lock);
	struct irq_dev *d = find_dev(handle);
	if (action == VFIO_IRQ_SET_ACTION_TRIGGER && data == VFIO_IRQ_SET_DATA_NONE && p->count == 0) {
		if (d)
			clear_index(d, p->index);
	} else if (action == VFIO_IRQ_SET_ACTION_TRIGGER && data == VFIO_IRQ_SET_DATA_EVENTFD) {
		if (!d && (d = calloc(1, sizeof(*d)))) {
			d->handle = handle;
			d->evfd = -1;
			d->next = devices;
			devices = d;
		}
		for (unsigned i = 0; d && i < p->n; i++) {
			int *s = slot(d, p->index, p->start + i);
			if (!s)
				break;
			int entry = p->dups[i];
			/* ERR and REQ keep their eventfd for entries below -1, as vfio-pci does. */
			if (entry < -1 && p->index >= VFIO_PCI_ERR_IRQ_INDEX)
				continue;
			sys_close(*s);
			*s = entry >= 0 ? entry : -1;
			p->dups[i] = -1;
		}
		if (d && d->evfd < 0) {
			if (start_thread(fd, d, sock))
				rc = -1;
			sock = -1;
		}
	}
	pthread_mutex_unlock(&table_lock);
	sys_close(sock); /* another thread started the delivery meanwhile */
	tcefs__irq_abandon(p);
	return rc;
}

void tcefs__irq_reset(int handle)
{
	pthread_mutex_lock(&table_lock);
	struct irq_dev *d = find_dev(handle);
	if (d)
		clear_dev(d);
	pthread_mutex_unlock(&table_lock);
}

static void irq_prepare_fork(void)
{
	pthread_mutex_lock(&table_lock);
}

static void irq_parent(void)
{
	pthread_mutex_unlock(&table_lock);
}

/* The child has no delivery threads: it lets go of its copies of the duplicates and event nodes. */
static void irq_child(void)
{
	for (struct irq_dev *d = devices, *next; d; d = next) {
		next = d->next;
		clear_dev(d);
		sys_close(d->evfd);
		free(d);
	}
	devices = NULL;
	pthread_mutex_unlock(&table_lock);
}

__attribute__((constructor)) static void irq_init(void)
{
	pthread_atfork(irq_prepare_fork, irq_parent, irq_child);
}
