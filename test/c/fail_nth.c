// The kernel's fail-nth from a program under `tcefs run`: the per-thread counter files behave as
// /proc's do, and a sweep sets the counter to n = 1, 2, ... before a sequence of iommufd calls on the
// TCE host until one run passes every failure point. Each failing call must report a clean errno, leave
// the counter at 0 and leave the daemon's state (objects, tables, TCEs, pins, charges) as it was before
// the call; once the files are closed nothing may remain.
//
// usage: fail_nth
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include "shim_test.h"

static char path_buf[128];

static const char *own_path(pid_t tid)
{
	snprintf(path_buf, sizeof(path_buf), "/proc/self/task/%d/fail-nth", (int)tid);
	return path_buf;
}

static int nth_fd;

static void set_nth(unsigned n)
{
	char b[16];
	int l = snprintf(b, sizeof(b), "%u", n);
	if (pwrite(nth_fd, b, (size_t)l, 0) != l)
		printf("set_nth_failed=%s\n", strerrorname_np(errno));
}

static unsigned get_nth(void)
{
	char b[16] = { 0 };
	if (pread(nth_fd, b, sizeof(b) - 1, 0) < 2)
		return ~0u;
	return (unsigned)strtoul(b, NULL, 10);
}

/* ---- the counter files ---- */

static pid_t other_tid;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stage;

static void *other(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&lock);
	other_tid = gettid();
	stage = 1;
	pthread_cond_broadcast(&cond);
	while (stage != 2)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	int fd = open("/proc/thread-self/fail-nth", O_RDONLY);
	char b[16] = { 0 };
	show("thread_self_read", read(fd, b, sizeof(b) - 1));
	printf("thread_self_value=%s", b);
	close(fd);
	return NULL;
}

static void files(void)
{
	char b[16] = { 0 };
	nth_fd = open(own_path(gettid()), O_RDWR);
	show("open", nth_fd >= 0 ? 0 : -1);
	show("read_initial", pread(nth_fd, b, sizeof(b) - 1, 0));
	printf("initial=%s", b);
	show("write_word", pwrite(nth_fd, "abc", 3, 0));
	show("write_empty", pwrite(nth_fd, "", 0, 0));
	show("write_big", pwrite(nth_fd, "4294967296", 10, 0));
	show("write_hex", pwrite(nth_fd, "0x10\n", 5, 0));
	memset(b, 0, sizeof(b));
	show("pread_at_1", pread(nth_fd, b, sizeof(b) - 1, 1));
	printf("at_1=%s", b);
	show("read_1", read(nth_fd, b, sizeof(b) - 1));
	show("read_2", read(nth_fd, b, sizeof(b) - 1));

	char alt[64];
	snprintf(alt, sizeof(alt), "/proc/%d/task/%d/fail-nth", (int)getpid(), (int)gettid());
	int fd = open(alt, O_RDONLY);
	memset(b, 0, sizeof(b));
	show("by_pid_read", read(fd, b, sizeof(b) - 1));
	printf("by_pid=%s", b);
	show("by_pid_write", write(fd, "1", 1));
	close(fd);
	fd = open("/proc/thread-self/fail-nth", O_WRONLY);
	show("thread_self_write_only_read", read(fd, b, 1));
	close(fd);
	show("no_such_thread", open("/proc/self/task/999999999/fail-nth", O_RDONLY));
	int opened = 0;
	for (int k = 0; k < 200; k++) {
		int f = open("/proc/thread-self/fail-nth", O_RDONLY);
		opened += f >= 0;
		close(f);
	}
	printf("reopened=%d\n", opened);

	/* another thread's counter is its own, set through its task directory */
	pthread_t t;
	pthread_create(&t, NULL, other, NULL);
	pthread_mutex_lock(&lock);
	while (stage != 1)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	fd = open(own_path(other_tid), O_WRONLY);
	show("other_write", write(fd, "7", 1));
	close(fd);
	pthread_mutex_lock(&lock);
	stage = 2;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(t, NULL);
	printf("own_after_other=%u\n", get_nth());

	/* opening /dev/iommu allocates its context: one failure point */
	set_nth(1);
	show("open_iommufd_nth1", open("/dev/iommu", O_RDWR));
	printf("left_after_open_nth1=%u\n", get_nth());
	set_nth(3);
	int i = open("/dev/iommu", O_RDWR);
	show("open_iommufd_nth3", i >= 0 ? 0 : -1);
	printf("left_after_open_nth3=%u\n", get_nth());
	set_nth(0);
	close(i);
}

/* ---- the debugfs knobs ---- */

static void knob(const char *key, const char *file, const char *value)
{
	char path[128], b[64] = { 0 };
	snprintf(path, sizeof(path), "/sys/kernel/debug/%s", file);
	int fd = open(path, O_RDWR);
	if (value)
		show(key, write(fd, value, strlen(value)));
	else {
		show(key, pread(fd, b, sizeof(b) - 1, 0));
		printf("%s_value=%s", key, b);
	}
	close(fd);
}

/* What the kernel test's setup does, then the probability mode driving iommufd's points. */
static void knobs(void)
{
	knob("gfp_wait_set", "failslab/ignore-gfp-wait", "N");
	knob("gfp_wait", "failslab/ignore-gfp-wait", NULL);
	knob("verbose_set", "fail_iommufd/verbose", "0");
	knob("verbose_bad", "fail_iommufd/verbose", "zero");
	knob("require_end", "fail_iommufd/require-end", NULL);
	int i = open("/dev/iommu", O_RDWR);
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	ioctl(i, IOMMU_IOAS_ALLOC, &a);
	/* every iommufd point fails, twice: the two lookups of the next calls */
	knob("probability_set", "fail_iommufd/probability", "100");
	knob("times_set", "fail_iommufd/times", "2");
	struct iommu_ioas_iova_ranges r = { .size = sizeof(r), .ioas_id = a.out_ioas_id };
	show("ranges_forced_1", ioctl(i, IOMMU_IOAS_IOVA_RANGES, &r));
	show("ranges_forced_2", ioctl(i, IOMMU_IOAS_IOVA_RANGES, &r));
	show("ranges_after", ioctl(i, IOMMU_IOAS_IOVA_RANGES, &r) == 0 || errno == EMSGSIZE ? 0 : -1);
	knob("times", "fail_iommufd/times", NULL);
	knob("probability_off", "fail_iommufd/probability", "0");
	knob("times_reset", "fail_iommufd/times", "1");
	close(i);
}

/* ---- the daemon's state, from its views ---- */

static long field(const char *file, const char *name)
{
	char path[128], text[65536], key[64];
	snprintf(path, sizeof(path), "/sys/kernel/debug/tcefs/%s", file);
	int fd = open(path, O_RDONLY);
	ssize_t n = 0, r;
	while (fd >= 0 && n < (ssize_t)sizeof(text) - 1 && (r = read(fd, text + n, sizeof(text) - 1 - (size_t)n)) > 0)
		n += r;
	close(fd);
	text[n > 0 ? n : 0] = 0;
	snprintf(key, sizeof(key), "\"%s\": ", name);
	const char *p = strstr(text, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

struct state {
	long objects, files, tables, tces, pinned, locked;
};

static struct state snapshot(void)
{
	return (struct state){ field("daemon.json", "iommufdObjects"), field("daemon.json", "openFiles"), field("host.json", "tables"),
		field("host.json", "liveTces"), field("host.json", "pinnedBytes"), field("host.json", "lockedBytes") };
}

static int same(struct state a, struct state b)
{
	return !memcmp(&a, &b, sizeof(a));
}

/* ---- the sweep ---- */

#define LEN 0x20000
static unsigned char *buf;
static char cdev[300];

struct run {
	int iommufd, dev;
	__u32 ioas, devid, hwpt;
	__u64 iova;
};

static int step(int s, struct run *r)
{
	switch (s) {
	case 0:
		return (r->iommufd = open("/dev/iommu", O_RDWR)) < 0 ? -1 : 0;
	case 1: {
		struct iommu_ioas_alloc a = { .size = sizeof(a) };
		int rc = ioctl(r->iommufd, IOMMU_IOAS_ALLOC, &a);
		r->ioas = a.out_ioas_id;
		return rc;
	}
	case 2: {
		struct iommu_ioas_map m = { .size = sizeof(m), .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, .ioas_id = r->ioas,
			.user_va = (__u64)(uintptr_t)buf, .length = LEN };
		int rc = ioctl(r->iommufd, IOMMU_IOAS_MAP, &m);
		r->iova = m.iova;
		return rc;
	}
	case 3:
		return (r->dev = open(cdev, O_RDWR)) < 0 ? -1 : 0;
	case 4: {
		struct vfio_device_bind_iommufd b = { .argsz = sizeof(b), .iommufd = r->iommufd };
		int rc = ioctl(r->dev, VFIO_DEVICE_BIND_IOMMUFD, &b);
		r->devid = b.out_devid;
		return rc;
	}
	case 5: {
		struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = r->ioas };
		return ioctl(r->dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	}
	case 6: {
		struct iommu_ioas_map m = { .size = sizeof(m), .flags = IOMMU_IOAS_MAP_READABLE, .ioas_id = r->ioas,
			.user_va = (__u64)(uintptr_t)buf + LEN, .length = LEN };
		return ioctl(r->iommufd, IOMMU_IOAS_MAP, &m);
	}
	case 7: {
		struct iommu_ioas_copy c = { .size = sizeof(c), .flags = IOMMU_IOAS_MAP_READABLE, .dst_ioas_id = r->ioas, .src_ioas_id = r->ioas,
			.src_iova = r->iova, .length = LEN };
		return ioctl(r->iommufd, IOMMU_IOAS_COPY, &c);
	}
	case 8: {
		struct iommu_hwpt_alloc h = { .size = sizeof(h), .dev_id = r->devid, .pt_id = r->ioas };
		int rc = ioctl(r->iommufd, IOMMU_HWPT_ALLOC, &h);
		r->hwpt = h.out_hwpt_id;
		return rc;
	}
	case 9: {
		struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = r->hwpt };
		return ioctl(r->dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	}
	case 10: {
		struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = r->ioas, .iova = r->iova, .length = LEN };
		return ioctl(r->iommufd, IOMMU_IOAS_UNMAP, &u);
	}
	}
	return 1;
}

static const char *const names[] = { "open_iommufd", "ioas_alloc", "ioas_map", "open_cdev", "bind", "attach_ioas", "ioas_map_domain",
	"ioas_copy", "hwpt_alloc", "attach_hwpt", "ioas_unmap" };
#define STEPS (int)(sizeof(names) / sizeof(names[0]))

/* Per step, the errnos its injected failures gave (a bit per errno below 64). */
static unsigned long long seen[STEPS];

static void sweep(void)
{
	DIR *d = opendir("/sys/bus/pci/devices/0000:02:00.0/vfio-dev");
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "vfio", 4))
			snprintf(cdev, sizeof(cdev), "/dev/vfio/devices/%s", e->d_name);
	if (d)
		closedir(d);
	buf = mmap(NULL, 2 * LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 1, 2 * LEN);
	struct state boot = snapshot();
	int clean = 1;
	unsigned n;
	for (n = 1; n < 300; n++) {
		struct run r = { -1, -1, 0, 0, 0, 0 };
		int failed = -1, err = 0;
		struct state before = snapshot();
		set_nth(n);
		for (int s = 0; s < STEPS; s++) {
			set_nth(get_nth()); /* a no-op that proves reading and writing keep the count */
			int rc = step(s, &r);
			if (rc) {
				err = errno;
				failed = s;
				break;
			}
			if (s + 1 < STEPS) {
				unsigned left = get_nth();
				before = snapshot();
				set_nth(left);
			}
		}
		unsigned left = get_nth();
		set_nth(0);
		if (failed >= 0) {
			if (left != 0 || (err != ENOMEM && err != EFAULT && err != ENOENT && err != EINVAL)) {
				printf("unclean_n%u=%s:%s left %u\n", n, names[failed], strerrorname_np(err), left);
				clean = 0;
			}
			if (!same(before, snapshot())) {
				printf("changed_n%u=%s\n", n, names[failed]);
				clean = 0;
			}
			if (err < 64)
				seen[failed] |= 1ULL << err;
		}
		if (r.dev >= 0)
			close(r.dev);
		if (r.iommufd >= 0)
			close(r.iommufd);
		if (!same(boot, snapshot())) {
			printf("leak_n%u=after %s\n", n, failed >= 0 ? names[failed] : "success");
			clean = 0;
		}
		if (failed < 0) {
			printf("left_after_success=%u\n", left);
			break;
		}
	}
	printf("points=%u\n", n - 1);
	check("clean", clean);
	for (int s = 0; s < STEPS; s++) {
		printf("fails_%s=", names[s]);
		const char *sep = "";
		for (int err = 0; err < 64; err++)
			if (seen[s] & (1ULL << err)) {
				printf("%s%s", sep, strerrorname_np(err));
				sep = ",";
			}
		printf("\n");
	}
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	files();
	knobs();
	sweep();
	return 0;
}
