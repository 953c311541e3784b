// list-groups: the first thing a VFIO program does on a host, written only against the kernel ABI.
// It walks /sys/kernel/iommu_groups, names each group's PCI functions from sysfs, opens
// /dev/vfio/<group> and prints its status; for a viable group it sets up a container with the SPAPR
// TCE v2 IOMMU (a POWER host's), takes a device fd per function and reads the function's IDs back
// from its config space. Nothing here knows about tcefs: run it on a POWER host, or anywhere with
// `tcefs run -- ./list-groups` (see run.sh next to it).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

static int numeric(const struct dirent *e)
{
	return e->d_name[0] >= '0' && e->d_name[0] <= '9';
}

static int by_number(const struct dirent **a, const struct dirent **b)
{
	return atoi((*a)->d_name) - atoi((*b)->d_name);
}

static void sysfs_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	out[0] = 0;
	if (f && fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = 0;
	if (f)
		fclose(f);
}

/* Take a device fd through the group, as QEMU does, and read vendor/device from config space. */
static void show_device(int group, const char *bdf)
{
	int d = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (d < 0) {
		printf("    device fd: %s\n", strerror(errno));
		return;
	}
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint16_t ids[2] = { 0, 0 };
	if (ioctl(d, VFIO_DEVICE_GET_INFO, &info) || ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &cfg) ||
	    pread(d, ids, sizeof(ids), (off_t)cfg.offset) != sizeof(ids))
		printf("    device: %s\n", strerror(errno));
	else
		printf("    config space says %04x:%04x; %u regions, %u irq indexes\n", ids[0], ids[1], info.num_regions, info.num_irqs);
	close(d);
}

static void show_group(const char *id)
{
	char path[512], name[128];
	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%s/name", id);
	sysfs_line(path, name, sizeof(name));
	snprintf(path, sizeof(path), "/dev/vfio/%s", id);
	int g = open(path, O_RDWR);
	struct vfio_group_status st = { .argsz = sizeof(st) };
	if (g < 0 || ioctl(g, VFIO_GROUP_GET_STATUS, &st)) {
		printf("group %s (%s): %s: %s\n", id, name, path, strerror(errno));
		if (g >= 0)
			close(g);
		return;
	}
	int viable = !!(st.flags & VFIO_GROUP_FLAGS_VIABLE);
	printf("group %s (%s): %s\n", id, name, viable ? "viable" : "not viable");

	int c = -1;
	if (viable) {
		c = open("/dev/vfio/vfio", O_RDWR);
		if (c < 0 || ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) || ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU)) {
			printf("  container with the SPAPR TCE v2 IOMMU: %s\n", strerror(errno));
			viable = 0;
		}
	}
	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%s/devices", id);
	DIR *dir = opendir(path);
	for (struct dirent *e; dir && (e = readdir(dir));) {
		if (e->d_name[0] == '.')
			continue;
		char vendor[32], device[32];
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", e->d_name);
		sysfs_line(path, vendor, sizeof(vendor));
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", e->d_name);
		sysfs_line(path, device, sizeof(device));
		printf("  %s  vendor %s device %s\n", e->d_name, vendor, device);
		if (viable)
			show_device(g, e->d_name);
	}
	if (dir)
		closedir(dir);
	if (c >= 0)
		close(c);
	close(g);
}

int main(void)
{
	struct dirent **groups;
	int n = scandir("/sys/kernel/iommu_groups", &groups, numeric, by_number);
	if (n < 0) {
		perror("/sys/kernel/iommu_groups");
		return 1;
	}
	if (n == 0)
		printf("no IOMMU groups\n");
	for (int i = 0; i < n; i++) {
		show_group(groups[i]->d_name);
		free(groups[i]);
	}
	free(groups);
	return 0;
}
