// The vfio-pci device calls beyond regions and interrupts, from the group path as QEMU makes them: hot
// reset info and a hot reset with the group fd, device features (migration probe, low power with and
// without a wakeup eventfd), ioeventfd, and the mediated-graphics calls vfio-pci does not have. Run it
// under `tcefs run`.
//
// usage: device_calls
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>
#include "shim_test.h"


static int feature(int dev, __u32 flags, const void *payload, size_t len)
{
	unsigned char buf[64] = { 0 };
	struct vfio_device_feature *f = (void *)buf;
	f->argsz = sizeof(*f) + len;
	f->flags = flags;
	memcpy(f->data, payload, len);
	return ioctl(dev, VFIO_DEVICE_FEATURE, f);
}

static int hot_reset(int dev, const int *fds, int n)
{
	unsigned char buf[64] = { 0 };
	struct vfio_pci_hot_reset *r = (void *)buf;
	r->argsz = sizeof(*r) + n * sizeof(__s32);
	r->count = n;
	memcpy(r->group_fds, fds, n * sizeof(int));
	return ioctl(dev, VFIO_DEVICE_PCI_HOT_RESET, r);
}

int main(void)
{
	int c = open("/dev/vfio/vfio", O_RDWR);
	int g = open("/dev/vfio/0", O_RDWR);
	if (c < 0 || g < 0)
		return perror("open"), 1;
	if (ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) || ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU))
		return perror("container"), 1;
	int dev = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, "0000:01:00.1");
	if (dev < 0)
		return perror("GET_DEVICE_FD"), 1;

	struct vfio_pci_hot_reset_info *info = calloc(1, sizeof(*info) + 4 * sizeof(struct vfio_pci_dependent_device));
	info->argsz = sizeof(*info);
	show("info_probe", ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info));
	printf("info_count=%u\n", info->count);
	info->argsz = sizeof(*info) + 4 * sizeof(struct vfio_pci_dependent_device);
	show("info", ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info));
	for (__u32 k = 0; k < info->count; k++)
		printf("info_%u=group %u %04x:%02x:%02x.%x\n", k, info->devices[k].group_id, info->devices[k].segment,
		       info->devices[k].bus, info->devices[k].devfn >> 3, info->devices[k].devfn & 7);

	int closed = 1000; /* not open */
	show("reset_container_fd", hot_reset(dev, &c, 1));
	show("reset_closed_fd", hot_reset(dev, &closed, 1));
	show("reset_no_fds", hot_reset(dev, NULL, 0));
	show("reset", hot_reset(dev, &g, 1));

	show("feature_migration", feature(dev, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0));
	show("feature_logging", feature(dev, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0));
	show("low_power_probe", feature(dev, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, NULL, 0));
	show("low_power_entry", feature(dev, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, NULL, 0));
	show("low_power_again", feature(dev, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, NULL, 0));
	show("low_power_exit", feature(dev, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL, 0));
	int efd = eventfd(0, EFD_CLOEXEC);
	struct vfio_device_low_power_entry_with_wakeup w = { .wakeup_eventfd = c };
	show("wakeup_not_eventfd", feature(dev, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, &w, sizeof(w)));
	w.wakeup_eventfd = closed;
	show("wakeup_closed", feature(dev, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, &w, sizeof(w)));
	w.wakeup_eventfd = efd;
	show("wakeup_entry", feature(dev, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, &w, sizeof(w)));
	show("wakeup_exit", feature(dev, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL, 0));

	struct vfio_device_ioeventfd ie = { .argsz = sizeof(ie), .flags = VFIO_DEVICE_IOEVENTFD_32, .offset = 0x100, .data = 1, .fd = efd };
	show("ioeventfd", ioctl(dev, VFIO_DEVICE_IOEVENTFD, &ie));
	ie.fd = -1;
	show("ioeventfd_remove", ioctl(dev, VFIO_DEVICE_IOEVENTFD, &ie));

	struct vfio_device_gfx_plane_info plane = { .argsz = sizeof(plane), .flags = VFIO_GFX_PLANE_TYPE_PROBE | VFIO_GFX_PLANE_TYPE_DMABUF };
	show("gfx_plane", ioctl(dev, VFIO_DEVICE_QUERY_GFX_PLANE, &plane));
	__u32 id = 0;
	show("gfx_dmabuf", ioctl(dev, VFIO_DEVICE_GET_GFX_DMABUF, &id));
	return 0;
}
