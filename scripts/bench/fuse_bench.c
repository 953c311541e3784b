// The C side of `npm run bench`: timing loops that go through a real FUSE mount, so what is measured is
// what a client process pays. Every mode prints one JSON object per measurement on stdout, times in ns.
//
//   fuse_bench rt PATH N              bare round trip: pwrite a 40-byte frame at 0, pread the reply
//   fuse_bench check N                ioctl(VFIO_CHECK_EXTENSION) on /dev/vfio/vfio (run under the shim)
//   fuse_bench interleave PATH N      the first two and `check`, alternated call by call (under the shim)
//   fuse_bench blocks PATH TUNED NB BLOCK  bare round trips on PATH and on TUNED (a null node mounted with
//                                     tcefs's options), the raw frame and `check`, in blocks of BLOCK
//                                     calls, NB times
//   fuse_bench syscalls PATH N        the client-side syscalls the shim adds to an ioctl, timed alone
//   fuse_bench close N                open + close of /dev/vfio/vfio (the last close, which waits for the
//                                     release), open + a raw close the shim never sees, and dup + close
//                                     (not the last, no wait) (run under the shim)
//   fuse_bench spapr GROUP N BATCH R  SPAPR v2 container: N single MAP_DMA/UNMAP_DMA pairs of one 4K page,
//                                     then R frames of BATCH maps and R frames of BATCH unmaps
//   fuse_bench iommufd BDF N BATCH R  the same with IOMMU_IOAS_MAP/UNMAP, device bound and attached
//   fuse_bench loop BDF SECONDS       throughput: map/unmap pairs on its own iommufd (BDF's device bound
//                                     and attached, or "none") for SECONDS, from a go byte on stdin
//   fuse_bench sloop GROUP SECONDS    the same with MAP_DMA/UNMAP_DMA on a SPAPR v2 container of GROUP
//   fuse_bench rtloop PATH SECONDS    the same with raw round trips of one frame on PATH (a null node, or a
//                                     tcefs node the frame goes to without the shim)
//
// Single calls go through plain ioctl(), so under `tcefs run` the preload shim does the marshalling as it
// would for any program. Batches have no ioctl() equivalent, so the frame is built here from
// <tcefs/protocol.h> and sent with raw pwrite/pread syscalls on the same fd (the shim does not touch them).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <tcefs/protocol.h>

#define PAGE 4096ull

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "fuse_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* One measurement: n samples, each covering `per` operations (a batch frame covers BATCH maps). */
static void report(const char *name, uint64_t *s, size_t n, unsigned per)
{
	qsort(s, n, sizeof(*s), cmp_u64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)s[i];
	double mean = sum / (double)n, var = 0;
	for (size_t i = 0; i < n; i++)
		var += ((double)s[i] - mean) * ((double)s[i] - mean);
	printf("{\"name\":\"%s\",\"n\":%zu,\"per\":%u,\"median\":%llu,\"mean\":%.0f,\"sd\":%.0f,\"p10\":%llu,\"p90\":%llu,\"min\":%llu,\"max\":%llu}\n",
	       name, n, per, (unsigned long long)s[n / 2], mean, n > 1 ? __builtin_sqrt(var / (double)(n - 1)) : 0.0,
	       (unsigned long long)s[n / 10], (unsigned long long)s[n * 9 / 10], (unsigned long long)s[0], (unsigned long long)s[n - 1]);
	fflush(stdout);
}

static uint64_t *samples(size_t n)
{
	uint64_t *s = calloc(n, sizeof(uint64_t));
	if (!s)
		die("calloc");
	return s;
}

/* Untimed iterations first: the daemon's JIT and the kernel's caches warm up on these. */
static size_t warmup(size_t n)
{
	return n / 10 < 2000 ? n / 10 : 2000;
}

/* ---- the bare round trip ---- */

/* The 40-byte frame of VFIO_CHECK_EXTENSION(VFIO_SPAPR_TCE_v2_IOMMU): a null node ignores it and answers
 * its fixed reply, a tcefs node answers it, so both sides move the same bytes. */
struct check_frame {
	struct tcefs_frame_header h;
	struct tcefs_request r;
	__u64 pad;
};

static struct check_frame check_frame(void)
{
	return (struct check_frame){ { TCEFS_REQUEST_MAGIC, TCEFS_PROTOCOL_VERSION, 1, 40, (__u32)getpid() },
				     { sizeof(struct tcefs_request), TCEFS_OP_IOCTL, 0, VFIO_CHECK_EXTENSION, 0, VFIO_SPAPR_TCE_v2_IOMMU }, 0 };
}

static void mode_rt(const char *path, size_t n)
{
	int fd = open(path, O_RDWR);
	if (fd < 0)
		die(path);
	struct check_frame f = check_frame();
	unsigned char reply[1024]; /* libtcefs reads into a buffer of this size too */
	uint64_t *s = samples(n);
	for (size_t i = 0, w = warmup(n); i < n + w; i++) {
		uint64_t t0 = now_ns();
		if (pwrite(fd, &f, 40, 0) != 40 || pread(fd, reply, sizeof(reply), 0) < 48)
			die("round trip");
		if (i >= w)
			s[i - w] = now_ns() - t0;
	}
	report("rt", s, n, 1);
	close(fd);
}

/* ---- an emulated cheap ioctl through the shim ---- */

static void mode_check(size_t n)
{
	int c = open("/dev/vfio/vfio", O_RDWR);
	if (c < 0)
		die("/dev/vfio/vfio");
	uint64_t *s = samples(n);
	for (size_t i = 0, w = warmup(n); i < n + w; i++) {
		uint64_t t0 = now_ns();
		if (ioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU) != 1)
			die("VFIO_CHECK_EXTENSION");
		if (i >= w)
			s[i - w] = now_ns() - t0;
	}
	report("check", s, n, 1);
	close(c);
}

/* ---- the three, interleaved call by call ---- */

/*
 * One iteration = a bare round trip on the null node, the same frame raw on tcefs's /dev/vfio/vfio, and
 * VFIO_CHECK_EXTENSION by ioctl(); run under the shim. Interleaving makes the three see the same state
 * of the machine: on a shared VM a FUSE round trip can flip for seconds between fast and several times
 * slower (vCPUs going idle between the hand-offs), and series measured one after the other would
 * compare different states. The shim passes the null fd's pwrite/pread through after a table lookup.
 */
static void mode_interleave(const char *null_path, size_t n)
{
	int nfd = open(null_path, O_RDWR), c = open("/dev/vfio/vfio", O_RDWR);
	if (nfd < 0 || c < 0)
		die("open");
	struct check_frame f = check_frame();
	unsigned char reply[1024];
	uint64_t *bare = samples(n), *raw = samples(n), *chk = samples(n);
	for (size_t i = 0, w = warmup(n); i < n + w; i++) {
		uint64_t t0 = now_ns();
		if (pwrite(nfd, &f, 40, 0) != 40 || pread(nfd, reply, sizeof(reply), 0) < 48)
			die("bare round trip");
		uint64_t t1 = now_ns();
		if (syscall(SYS_pwrite64, c, &f, 40, 0) != 40 || syscall(SYS_pread64, c, reply, sizeof(reply), 0) < 48)
			die("raw round trip");
		uint64_t t2 = now_ns();
		if (ioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU) != 1)
			die("VFIO_CHECK_EXTENSION");
		uint64_t t3 = now_ns();
		if (i >= w)
			bare[i - w] = t1 - t0, raw[i - w] = t2 - t1, chk[i - w] = t3 - t2;
	}
	report("bare", bare, n, 1);
	report("raw", raw, n, 1);
	report("check", chk, n, 1);
}

/* ---- the three, alternated in blocks ---- */

static uint64_t median_of(uint64_t *s, size_t n)
{
	qsort(s, n, sizeof(*s), cmp_u64);
	return s[n / 2];
}

/*
 * Blocks of BLOCK bare round trips, BLOCK raw frames to tcefs and BLOCK VFIO_CHECK_EXTENSION ioctls,
 * NBLOCKS times over; run under the shim. Within a block each daemon is warm, as in a plain loop, while
 * the three blocks of a set run within milliseconds of each other, so a change in the machine's load
 * between separate runs cannot show up as a difference between them. The first fifth of each block is
 * left out (the daemon warming up again after the other two blocks); each block's median is printed.
 */
static void mode_blocks(const char *null_path, const char *tuned_path, size_t nblocks, size_t block)
{
	int nfd = open(null_path, O_RDWR), tfd = open(tuned_path, O_RDWR), c = open("/dev/vfio/vfio", O_RDWR);
	if (nfd < 0 || tfd < 0 || c < 0)
		die("open");
	struct check_frame f = check_frame();
	unsigned char reply[1024];
	uint64_t *s = samples(block);
	size_t skip = block / 5;
	/* bare and tuned null nodes, the raw frame to tcefs, the ioctl through the shim */
	int raw_fd[3] = { nfd, tfd, c };
	for (size_t b = 0; b < nblocks + 1; b++) {
		uint64_t m[4];
		for (int kind = 0; kind < 4; kind++) {
			for (size_t i = 0; i < block; i++) {
				uint64_t t0 = now_ns();
				if (kind < 3) {
					if (syscall(SYS_pwrite64, raw_fd[kind], &f, 40, 0) != 40 || syscall(SYS_pread64, raw_fd[kind], reply, sizeof(reply), 0) < 48)
						die("round trip");
				} else if (ioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU) != 1)
					die("VFIO_CHECK_EXTENSION");
				s[i] = now_ns() - t0;
			}
			m[kind] = median_of(s + skip, block - skip);
		}
		if (b > 0) /* the first set only warms up */
			printf("{\"name\":\"block\",\"bare\":%llu,\"tuned\":%llu,\"raw\":%llu,\"check\":%llu}\n", (unsigned long long)m[0],
			       (unsigned long long)m[1], (unsigned long long)m[2], (unsigned long long)m[3]);
	}
	fflush(stdout);
}

/* ---- what the shim's exchange adds on the client side, call by call ---- */

/* libtcefs blocks every signal around an exchange and reads struct arguments with process_vm_readv; the
 * shim checks with a statx (AT_STATX_DONT_SYNC) that the fd is still the file it tracked before each
 * ioctl. Time those syscalls alone so the shim's share can be explained, and the readlink of
 * /proc/self/fd/N the statx replaced. PATH is a file of the mount to hold open for both. */
static void mode_syscalls(const char *path, size_t n)
{
	uint64_t *mask = samples(n), *sx = samples(n), *vm = samples(n), *rl = samples(n);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path);
	char link[48], buf[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	sigset_t all, old;
	sigfillset(&all);
	volatile uint32_t src = 7;
	uint32_t dst;
	struct statx st;
	for (size_t i = 0, w = warmup(n); i < n + w; i++) {
		uint64_t t0 = now_ns();
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		uint64_t t1 = now_ns();
		if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &st) != 0)
			die("statx");
		uint64_t t2 = now_ns();
		struct iovec l = { &dst, 4 }, r = { (void *)&src, 4 };
		(void)syscall(SYS_process_vm_readv, getpid(), &l, 1, &r, 1, 0);
		uint64_t t3 = now_ns();
		if (readlink(link, buf, sizeof(buf)) <= 0)
			die("readlink");
		uint64_t t4 = now_ns();
		if (i >= w)
			mask[i - w] = t1 - t0, sx[i - w] = t2 - t1, vm[i - w] = t3 - t2, rl[i - w] = t4 - t3;
	}
	close(fd);
	report("sys.sigmask_pair", mask, n, 1);
	report("sys.statx", sx, n, 1);
	report("sys.process_vm_readv", vm, n, 1);
	report("sys.readlink_proc_fd", rl, n, 1);
}

/* ---- what a close costs under the shim ---- */

/* The shim makes a last close wait for the daemon's release (a handle exchange, then a lookup the daemon
 * answers once RELEASE arrived); a raw close syscall shows the open + close without that, and a dup's
 * close the check that finds the file still held. */
static void mode_close(size_t n)
{
	uint64_t *last = samples(n), *raw = samples(n), *dup_ = samples(n);
	for (size_t i = 0, w = warmup(n); i < n + w; i++) {
		uint64_t t0 = now_ns();
		int fd = open("/dev/vfio/vfio", O_RDWR);
		if (fd < 0 || close(fd))
			die("open/close");
		uint64_t t1 = now_ns();
		fd = open("/dev/vfio/vfio", O_RDWR);
		if (fd < 0 || syscall(SYS_close, fd))
			die("open/raw close");
		uint64_t t2 = now_ns();
		if (i >= w)
			last[i - w] = t1 - t0, raw[i - w] = t2 - t1;
	}
	int keep = open("/dev/vfio/vfio", O_RDWR);
	if (keep < 0)
		die("open");
	for (size_t i = 0, w = warmup(n); i < n + w; i++) {
		uint64_t t0 = now_ns();
		int fd = dup(keep);
		if (fd < 0 || close(fd))
			die("dup/close");
		uint64_t t1 = now_ns();
		if (i >= w)
			dup_[i - w] = t1 - t0;
	}
	close(keep);
	report("close.last", last, n, 1);
	report("close.raw", raw, n, 1);
	report("close.dup", dup_, n, 1);
}

/* ---- batch frames, built by hand ---- */

struct frame {
	unsigned char *buf;
	size_t len, cap;
	unsigned count;
};

static void frame_start(struct frame *f, size_t cap)
{
	f->buf = f->buf ? f->buf : malloc(cap);
	if (!f->buf)
		die("malloc");
	f->cap = cap;
	f->len = sizeof(struct tcefs_frame_header);
	f->count = 0;
}

/* Append one IOCTL request whose argument is `arg` (its length a multiple of 8, as all used here are). */
static void frame_add(struct frame *f, unsigned long request, const void *arg, size_t alen)
{
	size_t rlen = sizeof(struct tcefs_request) + ((alen + 7) & ~(size_t)7);
	if (f->len + rlen > f->cap)
		die("frame too small");
	struct tcefs_request r = { (__u32)rlen, TCEFS_OP_IOCTL, 0, (__u32)request, (__u32)alen, 0 };
	memcpy(f->buf + f->len, &r, sizeof(r));
	memset(f->buf + f->len + sizeof(r), 0, rlen - sizeof(r));
	memcpy(f->buf + f->len + sizeof(r), arg, alen);
	f->len += rlen;
	f->count++;
}

static unsigned char *reply_buf;
#define REPLY_CAP (4u << 20)

/* Write the frame, read the whole reply, and check every answer's result. */
static void frame_send(int fd, struct frame *f)
{
	struct tcefs_frame_header h = { TCEFS_REQUEST_MAGIC, TCEFS_PROTOCOL_VERSION, (__u16)f->count, (__u32)f->len, (__u32)getpid() };
	memcpy(f->buf, &h, sizeof(h));
	if (syscall(SYS_pwrite64, fd, f->buf, f->len, 0) != (long)f->len)
		die("batch pwrite");
	if (!reply_buf && !(reply_buf = malloc(REPLY_CAP)))
		die("malloc");
	size_t got = 0;
	for (;;) {
		long n = syscall(SYS_pread64, fd, reply_buf + got, REPLY_CAP - got, got);
		if (n <= 0)
			die("batch pread");
		got += (size_t)n;
		if (got >= sizeof(h) && got >= ((struct tcefs_frame_header *)reply_buf)->length)
			break;
	}
	const struct tcefs_frame_header *rh = (const void *)reply_buf;
	if (rh->magic != TCEFS_REPLY_MAGIC || rh->count != f->count)
		errno = EIO, die("batch reply");
	size_t at = sizeof(*rh);
	for (unsigned i = 0; i < rh->count; i++) {
		const struct tcefs_answer *a = (const void *)(reply_buf + at);
		if (a->result != 0) {
			errno = a->result < 0 ? (int)-a->result : EIO;
			fprintf(stderr, "fuse_bench: answer %u of the batch: %lld\n", i, (long long)a->result);
			die("batch answer");
		}
		at += a->length;
	}
}

/* ---- timing a call and its undo, one at a time and batched ---- */

/* n rounds, after a warm-up, of one ioctl and the ioctl that undoes it; each is reported on its own. */
static void time_pair(int fd, unsigned long do_req, void *do_arg, const char *do_name,
		      unsigned long undo_req, void *undo_arg, const char *undo_name, size_t n)
{
	uint64_t *do_s = samples(n), *undo_s = samples(n);
	for (size_t i = 0, w = warmup(n); i < n + w; i++) {
		uint64_t t0 = now_ns();
		if (ioctl(fd, do_req, do_arg))
			die(do_name);
		uint64_t t1 = now_ns();
		if (ioctl(fd, undo_req, undo_arg))
			die(undo_name);
		uint64_t t2 = now_ns();
		if (i >= w)
			do_s[i - w] = t1 - t0, undo_s[i - w] = t2 - t1;
	}
	report(do_name, do_s, n, 1);
	report(undo_name, undo_s, n, 1);
}

/* The same for two frames of `batch` calls each, reported per call. */
static void time_frame_pair(int fd, struct frame *do_f, const char *do_name, struct frame *undo_f,
			    const char *undo_name, unsigned reps, unsigned batch)
{
	uint64_t *do_s = samples(reps), *undo_s = samples(reps);
	for (unsigned i = 0, w = reps / 5 + 1; i < reps + w; i++) {
		uint64_t t0 = now_ns();
		frame_send(fd, do_f);
		uint64_t t1 = now_ns();
		frame_send(fd, undo_f);
		uint64_t t2 = now_ns();
		if (i >= w)
			do_s[i - w] = t1 - t0, undo_s[i - w] = t2 - t1;
	}
	report(do_name, do_s, reps, batch);
	report(undo_name, undo_s, reps, batch);
}

/* ---- SPAPR v2 container ---- */

struct spapr {
	int c;
	uint64_t window;
	uint8_t *va;
};

static void spapr_setup(struct spapr *s, int group_id, size_t bytes)
{
	char path[64];
	snprintf(path, sizeof(path), "/dev/vfio/%d", group_id);
	int g = open(path, O_RDWR);
	s->c = open("/dev/vfio/vfio", O_RDWR);
	if (g < 0 || s->c < 0)
		die("open group/container");
	if (ioctl(g, VFIO_GROUP_SET_CONTAINER, &s->c) || ioctl(s->c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU))
		die("SET_CONTAINER/SET_IOMMU");
	/* Preregistered memory is only addresses to the emulator: reserve it, never touch it. */
	uint8_t *base = mmap(NULL, bytes + 0x10000, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		die("mmap");
	s->va = (uint8_t *)(((uintptr_t)base + 0xffff) & ~(uintptr_t)0xffff);
	struct vfio_iommu_spapr_register_memory reg = { .argsz = sizeof(reg), .vaddr = (uintptr_t)s->va, .size = bytes };
	if (ioctl(s->c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg))
		die("REGISTER_MEMORY");
	struct vfio_iommu_spapr_tce_info info = { .argsz = sizeof(info) };
	if (ioctl(s->c, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &info))
		die("GET_INFO");
	struct vfio_iommu_spapr_tce_remove rm = { .argsz = sizeof(rm), .start_addr = info.dma32_window_start };
	if (ioctl(s->c, VFIO_IOMMU_SPAPR_TCE_REMOVE, &rm))
		die("REMOVE");
	/* A 1 GiB window of 4K pages in one level: what a guest's 32-bit DMA window looks like. */
	struct vfio_iommu_spapr_tce_create cr = { .argsz = sizeof(cr), .page_shift = 12, .window_size = 1ull << 30, .levels = 1 };
	if (ioctl(s->c, VFIO_IOMMU_SPAPR_TCE_CREATE, &cr))
		die("CREATE");
	s->window = cr.start_addr;
	(void)g; /* kept open: the group holds the container */
}

static void mode_spapr(int group_id, size_t n, unsigned batch, unsigned reps)
{
	struct spapr s;
	spapr_setup(&s, group_id, ((size_t)batch * PAGE + 0xffff) & ~(size_t)0xffff);
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
					      .vaddr = (uintptr_t)s.va, .iova = s.window, .size = PAGE };
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = s.window, .size = PAGE };
	time_pair(s.c, VFIO_IOMMU_MAP_DMA, &m, "spapr.map", VFIO_IOMMU_UNMAP_DMA, &u, "spapr.unmap", n);

	struct frame fm = { 0 }, fu = { 0 };
	frame_start(&fm, sizeof(struct tcefs_frame_header) + (size_t)batch * 64);
	frame_start(&fu, sizeof(struct tcefs_frame_header) + (size_t)batch * 64);
	for (unsigned k = 0; k < batch; k++) {
		m.vaddr = (uintptr_t)s.va + k * PAGE;
		m.iova = s.window + k * PAGE;
		frame_add(&fm, VFIO_IOMMU_MAP_DMA, &m, sizeof(m));
		u.iova = m.iova;
		frame_add(&fu, VFIO_IOMMU_UNMAP_DMA, &u, sizeof(u));
	}
	time_frame_pair(s.c, &fm, "spapr.batch_map", &fu, "spapr.batch_unmap", reps, batch);
}

/* ---- iommufd with a bound, attached device ---- */

struct iommufd {
	int i, dev;
	__u32 ioas;
	uint8_t *va;
};

static int open_cdev(const char *bdf)
{
	char path[512];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "vfio", 4)) {
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s", e->d_name);
			closedir(d);
			return open(path, O_RDWR);
		}
	errno = ENOENT;
	return -1;
}

static void iommufd_setup(struct iommufd *s, const char *bdf, size_t bytes)
{
	s->i = open("/dev/iommu", O_RDWR);
	if (s->i < 0)
		die("/dev/iommu");
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	if (ioctl(s->i, IOMMU_IOAS_ALLOC, &alloc))
		die("IOAS_ALLOC");
	s->ioas = alloc.out_ioas_id;
	s->dev = -1;
	if (strcmp(bdf, "none")) {
		if ((s->dev = open_cdev(bdf)) < 0)
			die(bdf);
		struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = s->i };
		if (ioctl(s->dev, VFIO_DEVICE_BIND_IOMMUFD, &bind))
			die("BIND");
		/* The automatic domain: the 32-bit window, 4K pages, so every MAP writes TCEs. */
		struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = s->ioas };
		if (ioctl(s->dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at))
			die("ATTACH");
	}
	s->va = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->va == MAP_FAILED)
		die("mmap");
}

/* Fixed IOVAs from 1 MiB up, clear of page 0 and inside any window. */
#define IOVA0 0x100000ull

static void mode_iommufd(const char *bdf, size_t n, unsigned batch, unsigned reps)
{
	struct iommufd s;
	iommufd_setup(&s, bdf, (size_t)batch * PAGE + PAGE);
	struct iommu_ioas_map m = { .size = sizeof(m), .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
				    .ioas_id = s.ioas, .user_va = (uintptr_t)s.va, .length = PAGE, .iova = IOVA0 };
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = s.ioas, .iova = IOVA0, .length = PAGE };
	time_pair(s.i, IOMMU_IOAS_MAP, &m, "iommufd.map", IOMMU_IOAS_UNMAP, &u, "iommufd.unmap", n);

	struct frame fm = { 0 }, fu = { 0 };
	frame_start(&fm, sizeof(struct tcefs_frame_header) + (size_t)batch * 64);
	frame_start(&fu, sizeof(struct tcefs_frame_header) + (size_t)batch * 64);
	for (unsigned k = 0; k < batch; k++) {
		m.user_va = (uintptr_t)s.va + k * PAGE;
		m.iova = IOVA0 + k * PAGE;
		frame_add(&fm, IOMMU_IOAS_MAP, &m, sizeof(m));
		u.iova = m.iova;
		frame_add(&fu, IOMMU_IOAS_UNMAP, &u, sizeof(u));
	}
	time_frame_pair(s.i, &fm, "iommufd.batch_map", &fu, "iommufd.batch_unmap", reps, batch);
}

/* ---- throughput: one of several clients ---- */

/* Set up, say so, and wait for the go byte on stdin: every client's measured window then overlaps. */
static void ready_go(void)
{
	printf("{\"name\":\"ready\"}\n");
	fflush(stdout);
	char go;
	if (read(0, &go, 1) != 1)
		die("waiting for the start");
}

static void loop_report(unsigned long long ops, uint64_t ns)
{
	printf("{\"name\":\"loop\",\"ops\":%llu,\"ns\":%llu}\n", ops, (unsigned long long)ns);
}

static void mode_loop(const char *bdf, double seconds)
{
	struct iommufd s;
	iommufd_setup(&s, bdf, 2 * PAGE);
	struct iommu_ioas_map m = { .size = sizeof(m), .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
				    .ioas_id = s.ioas, .user_va = (uintptr_t)s.va, .length = PAGE, .iova = IOVA0 };
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = s.ioas, .iova = IOVA0, .length = PAGE };
	ready_go();
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), t = t0;
	unsigned long long ops = 0;
	while (t < end) {
		if (ioctl(s.i, IOMMU_IOAS_MAP, &m) || ioctl(s.i, IOMMU_IOAS_UNMAP, &u))
			die("map/unmap");
		ops += 2;
		t = now_ns();
	}
	loop_report(ops, t - t0);
}

/* The same on a SPAPR v2 container: a client whose frames go to another node than /dev/iommu. */
static void mode_sloop(int group_id, double seconds)
{
	struct spapr s;
	spapr_setup(&s, group_id, 0x10000);
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
					      .vaddr = (uintptr_t)s.va, .iova = s.window, .size = PAGE };
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = s.window, .size = PAGE };
	ready_go();
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), t = t0;
	unsigned long long ops = 0;
	while (t < end) {
		if (ioctl(s.c, VFIO_IOMMU_MAP_DMA, &m) || ioctl(s.c, VFIO_IOMMU_UNMAP_DMA, &u))
			die("MAP_DMA/UNMAP_DMA");
		ops += 2;
		t = now_ns();
	}
	loop_report(ops, t - t0);
}

/* The same on the null node: how far the transport alone scales with several clients. */
static void mode_rtloop(const char *path, double seconds)
{
	int fd = open(path, O_RDWR);
	if (fd < 0)
		die(path);
	struct check_frame frame = check_frame();
	unsigned char reply[1024];
	ready_go();
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), t = t0;
	unsigned long long ops = 0;
	while (t < end) {
		if (pwrite(fd, &frame, 40, 0) != 40 || pread(fd, reply, sizeof(reply), 0) < 0)
			die("round trip");
		ops++;
		t = now_ns();
	}
	loop_report(ops, t - t0);
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "rt"))
		mode_rt(argv[2], strtoul(argv[3], NULL, 0));
	else if (argc >= 6 && !strcmp(argv[1], "blocks"))
		mode_blocks(argv[2], argv[3], strtoul(argv[4], NULL, 0), strtoul(argv[5], NULL, 0));
	else if (argc >= 4 && !strcmp(argv[1], "interleave"))
		mode_interleave(argv[2], strtoul(argv[3], NULL, 0));
	else if (argc >= 4 && !strcmp(argv[1], "syscalls"))
		mode_syscalls(argv[2], strtoul(argv[3], NULL, 0));
	else if (argc >= 3 && !strcmp(argv[1], "close"))
		mode_close(strtoul(argv[2], NULL, 0));
	else if (argc >= 3 && !strcmp(argv[1], "check"))
		mode_check(strtoul(argv[2], NULL, 0));
	else if (argc >= 6 && !strcmp(argv[1], "spapr"))
		mode_spapr(atoi(argv[2]), strtoul(argv[3], NULL, 0), (unsigned)strtoul(argv[4], NULL, 0), (unsigned)strtoul(argv[5], NULL, 0));
	else if (argc >= 6 && !strcmp(argv[1], "iommufd"))
		mode_iommufd(argv[2], strtoul(argv[3], NULL, 0), (unsigned)strtoul(argv[4], NULL, 0), (unsigned)strtoul(argv[5], NULL, 0));
	else if (argc >= 4 && !strcmp(argv[1], "loop"))
		mode_loop(argv[2], atof(argv[3]));
	else if (argc >= 4 && !strcmp(argv[1], "sloop"))
		mode_sloop(atoi(argv[2]), atof(argv[3]));
	else if (argc >= 4 && !strcmp(argv[1], "rtloop"))
		mode_rtloop(argv[2], atof(argv[3]));
	else {
		fprintf(stderr, "usage: see the comment at the top of scripts/bench/fuse_bench.c\n");
		return 2;
	}
	return 0;
}
