/* A VFIO cdev found the way drivers find it and attached to a new IOAS of a new iommufd, for the C test
 * programs that need a device on the iommufd path. The including program defines show(key, rc). */
#ifndef CDEV_TEST_H
#define CDEV_TEST_H
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

/* The cdev of `bdf` (from /sys/bus/pci/devices/<bdf>/vfio-dev), bound and attached; -1 if none opens. */
static int cdev_attach(const char *bdf, int *iommufd, __u32 *ioas_id)
{
	char path[512];
	int d = -1;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	DIR *dir = opendir(path);
	struct dirent *e;
	while (dir && (e = readdir(dir)))
		if (!strncmp(e->d_name, "vfio", 4)) {
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s", e->d_name);
			d = open(path, O_RDWR);
		}
	if (dir)
		closedir(dir);
	int i = *iommufd = open("/dev/iommu", O_RDWR);
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = i };
	show("bind", ioctl(d, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	show("ioas_alloc", ioctl(i, IOMMU_IOAS_ALLOC, &a));
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = a.out_ioas_id };
	show("attach", ioctl(d, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	*ioas_id = a.out_ioas_id;
	return d;
}
#endif
