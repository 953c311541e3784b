// A VFIO device fd under the preload shim: the fd VFIO_GROUP_GET_DEVICE_FD returns is a real fd the
// shim knows, and read/write/pread/pwrite on it reach region space (BAR0 included, at offset 0) the
// way they reach vfio-pci's. Also the cdev before binding, fork, exec and dup of a device fd.
// Prints key=value lines; the exec'd child prints its own.
//
// usage: shim_device BDF | shim_device exec-child FD CONFIG_OFFSET
#define _GNU_SOURCE
#include "shim_test.h"
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vfio.h>

static int wait_status(pid_t p)
{
	int ws;
	if (waitpid(p, &ws, 0) != p)
		return -1;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static long vendor_at(int d, uint64_t config)
{
	uint16_t v = 0;
	long r = pread(d, &v, 2, (off_t)config);
	return r < 0 ? r : v;
}

/* After exec the shim must find the inherited device fd and learn its kind from the daemon. */
static int exec_child(int d, uint64_t config)
{
	printf("exec_child_vendor=0x%04lx\n", (unsigned long)vendor_at(d, config));
	char link[64], target[PATH_MAX] = "";
	snprintf(link, sizeof(link), "/proc/self/fd/%d", d);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	printf("exec_child_fd_link=%s\n", n < 0 ? "" : target);
	return 0;
}

static void cdev_unbound(void)
{
	int cd = open("/dev/vfio/devices/vfio0", O_RDWR);
	char b[4];
	show("cdev_pread_unbound", pread(cd, b, 4, (off_t)VFIO_PCI_CONFIG_REGION_INDEX << 40));
	show("cdev_read_unbound", read(cd, b, 4));
	show("cdev_pwrite_unbound", pwrite(cd, b, 4, 0));
	void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, cd, 0);
	show("cdev_mmap", m == MAP_FAILED ? -1 : 0);
	close(cd);
}

int main(int argc, char **argv)
{
	if (argc > 3 && !strcmp(argv[1], "exec-child"))
		return exec_child(atoi(argv[2]), strtoull(argv[3], NULL, 0));
	if (argc < 2)
		return 2;
	const char *bdf = argv[1];
	cdev_unbound();

	char path[PATH_MAX], link[PATH_MAX];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return perror(path), 1;
	link[n] = 0;
	snprintf(path, sizeof(path), "/dev/vfio/%s", basename(link));
	int g = open(path, O_RDWR);
	int c = open("/dev/vfio/vfio", O_RDWR);
	show("set_container", ioctl(g, VFIO_GROUP_SET_CONTAINER, &c));
	show("set_iommu", ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU));
	int d = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, bdf);
	show("device_fd", d < 0 ? -1 : 0);
	if (d < 0)
		return 1;
	check("device_fd_cloexec", fcntl(d, F_GETFD) & FD_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", d);
	n = readlink(path, link, sizeof(link) - 1);
	printf("device_fd_link=%s\n", n < 0 ? "" : (link[n] = 0, link));
	struct stat st;
	check("device_fd_not_chr", fstat(d, &st) == 0 && !S_ISCHR(st.st_mode));
	struct vfio_device_info di = { .argsz = sizeof(di) };
	show("device_info", ioctl(d, VFIO_DEVICE_GET_INFO, &di));
	show("wrong_kind_on_device", ioctl(d, VFIO_GROUP_GET_STATUS, &(struct vfio_group_status){ .argsz = 8 }));

	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	show("config_info", ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &cfg));
	show("bar0_info", ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &bar));
	printf("bar0_offset=%llu\n", (unsigned long long)bar.offset);
	check("bar0_no_mmap_flag", !(bar.flags & VFIO_REGION_INFO_FLAG_MMAP));
	uint16_t ids[2] = { 0, 0 };
	show("config_pread", pread(d, ids, 4, (off_t)cfg.offset));
	printf("vendor=0x%04x\ndevice=0x%04x\n", ids[0], ids[1]);
	uint8_t whole[256];
	show("config_pread_all", pread(d, whole, sizeof(whole), (off_t)cfg.offset));
	show("config_pread_past_end", pread(d, whole, 8, (off_t)(cfg.offset + cfg.size - 4)));

	/* BAR accesses need memory decoding on, as on vfio-pci. */
	uint16_t cmd = 0x2;
	show("bar0_pread_decode_off", pread(d, &cmd, 2, 0x100));
	show("enable_memory", pwrite(d, &cmd, 2, (off_t)cfg.offset + 4));
	/* BAR0 starts at offset 0, where the fd's frame stream also lives: the shim keeps them apart. */
	show("bar0_pwrite", pwrite(d, "tcefs-bar0", 10, 0x100));
	char b[16] = "";
	show("bar0_pread", pread(d, b, 10, 0x100));
	printf("bar0_data=%s\n", b);
	/* read() and write() go through the file position, and move it. */
	show("lseek_config", lseek(d, (off_t)cfg.offset, SEEK_SET));
	uint16_t v = 0;
	show("read_vendor", read(d, &v, 2));
	printf("read_vendor_value=0x%04x\n", v);
	check("read_moved_position", lseek(d, 0, SEEK_CUR) == (off_t)cfg.offset + 2);
	show("read_device", read(d, &v, 2));
	printf("read_device_value=0x%04x\n", v);
	show("lseek_bar0", lseek(d, 0x200, SEEK_SET));
	show("write_bar0", write(d, "xy", 2));
	memset(b, 0, sizeof(b));
	show("bar0_pread_written", pread(d, b, 2, 0x200));
	printf("bar0_written=%s\n", b);
	/* A read longer than one frame's worth of region data. */
	size_t big = 3u << 20;
	char *bigbuf = calloc(1, big);
	show("bar0_pwrite_far", pwrite(d, "far", 3, (off_t)(big - 3)));
	show("bar0_pread_big", pread(d, bigbuf, big, 0));
	check("bar0_big_data", !memcmp(bigbuf + 0x100, "tcefs-bar0", 10) && !memcmp(bigbuf + big - 3, "far", 3));
	free(bigbuf);
	void *noaccess = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	show("bar0_pread_bad_buffer", pread(d, noaccess, 4, 0));
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
	show("bar0_mmap", m == MAP_FAILED ? -1 : 0);

	/* Copies and children of the device fd reach the same device. */
	int d2 = dup(d);
	printf("dup_vendor=0x%04lx\n", (unsigned long)vendor_at(d2, cfg.offset));
	close(d2);
	fflush(stdout);
	pid_t p = fork();
	if (p == 0)
		_exit(vendor_at(d, cfg.offset) == ids[0] ? 0 : 1);
	show("fork_child_reads_config", wait_status(p));
	fcntl(d, F_SETFD, 0);
	fflush(stdout);
	p = fork();
	if (p == 0) {
		char fdarg[16], cfgarg[32];
		snprintf(fdarg, sizeof(fdarg), "%d", d);
		snprintf(cfgarg, sizeof(cfgarg), "0x%llx", (unsigned long long)cfg.offset);
		execl("/proc/self/exe", argv[0], "exec-child", fdarg, cfgarg, (char *)NULL);
		_exit(127);
	}
	show("exec_child", wait_status(p));
	close(d);
	close(c);
	close(g);
	return 0;
}
