// VmPin and VmLck in /proc/<pid>/status under `tcefs run`: the pages the emulated iommufd pins once a
// domain maps them are counted where the kernel counts them (pinned_vm, and locked_vm when the
// iommufd accounts per process), go with an unmap, and move to the caller of IOMMU_IOAS_CHANGE_PROCESS;
// a child reads its parent's file as well as its own.
//
// usage: vm_status
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include "shim_test.h"

#define LEN (1UL << 20)
#define FILE_LEN (64UL << 10)

/* A status value in kB read through stdio, as the kernel's selftest reads it; -1 if missing. */
static long status_kb(pid_t pid, const char *tag)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t l = strlen(tag);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, tag, l) && line[l] == ':')
			v = strtol(line + l + 1, NULL, 10);
	fclose(f);
	return v;
}

/* The VmPin line of /proc/self/status read with open/read, as it stands. */
static void show_line(const char *key)
{
	char text[8192] = { 0 };
	int fd = open("/proc/self/status", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	if (fd >= 0)
		close(fd);
	char *p = n > 0 ? strstr(text, "\nVmPin:") : NULL;
	char *e = p ? strchr(p + 1, '\n') : NULL;
	if (!e)
		return (void)printf("%s=missing\n", key);
	*e = 0;
	printf("%s=[%s]\n", key, p + 1);
}

static void show_vm(const char *who, pid_t pid)
{
	printf("%s_pin=%ld\n%s_lck=%ld\n", who, status_kb(pid, "VmPin"), who, status_kb(pid, "VmLck"));
}

static const char *find_cdev(void)
{
	static char cdev[300];
	DIR *d = opendir("/sys/bus/pci/devices/0000:02:00.0/vfio-dev");
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "vfio", 4))
			snprintf(cdev, sizeof(cdev), "/dev/vfio/devices/%s", e->d_name);
	if (d)
		closedir(d);
	return cdev;
}

int main(void)
{
	pid_t self = getpid();
	int i = open("/dev/iommu", O_RDWR);
	struct iommu_option opt = { .size = sizeof(opt), .option_id = IOMMU_OPTION_RLIMIT_MODE, .op = IOMMU_OPTION_OP_SET, .val64 = 1 };
	show("rlimit_mode", ioctl(i, IOMMU_OPTION, &opt));
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	show("ioas_alloc", ioctl(i, IOMMU_IOAS_ALLOC, &a));
	/* 4 KiB past a 64 KiB boundary: the map touches 17 of the host's 64 KiB pages, all counted */
	char *area = mmap(NULL, 2 * LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *buf = (char *)(((uintptr_t)area + 0xffff) & ~(uintptr_t)0xffff) + 4096;
	memset(buf, 1, LEN);
	show_vm("start", self);

	/* without a domain a map pins nothing */
	struct iommu_ioas_map m = { .size = sizeof(m), .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, .ioas_id = a.out_ioas_id,
		.user_va = (__u64)(uintptr_t)buf, .length = LEN };
	show("map", ioctl(i, IOMMU_IOAS_MAP, &m));
	show_vm("no_domain", self);

	int dev = open(find_cdev(), O_RDWR);
	struct vfio_device_bind_iommufd b = { .argsz = sizeof(b), .iommufd = i };
	show("bind", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &b));
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = a.out_ioas_id };
	show("attach", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	show_vm("attached", self);
	show_line("attached_line");

	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = a.out_ioas_id, .iova = m.iova, .length = LEN };
	show("unmap", ioctl(i, IOMMU_IOAS_UNMAP, &u));
	show_vm("unmapped", self);
	show_line("unmapped_line");

	/* a file-backed map, then its charge moved to a child */
	int mfd = memfd_create("vm_status", 0);
	char page[4096];
	memset(page, 2, sizeof(page));
	for (unsigned long off = 0; off < FILE_LEN; off += sizeof(page))
		if (write(mfd, page, sizeof(page)) != sizeof(page))
			printf("memfd_write=-%s\n", strerrorname_np(errno));
	struct iommu_ioas_map_file mf = { .size = sizeof(mf), .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, .ioas_id = a.out_ioas_id,
		.fd = mfd, .start = 0, .length = FILE_LEN };
	show("map_file", ioctl(i, IOMMU_IOAS_MAP_FILE, &mf));
	show_vm("file", self);
	struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
	fflush(stdout);
	pid_t child = fork();
	if (!child) {
		pid_t me = getpid();
		show_vm("child_sees_parent", self);
		show_vm("child_before", me);
		show("change_process", ioctl(i, IOMMU_IOAS_CHANGE_PROCESS, &cp));
		show_vm("child_sees_parent_after", self);
		show_vm("child_after", me);
		fflush(stdout);
		_exit(0);
	}
	waitpid(child, NULL, 0);
	show_vm("parent_after_child", self);
	close(dev);
	close(i);
	return 0;
}
