// The foundation's handlers through a real mount: API version, extensions, group status, iommufd
// destroy and its size rules, per-open state and ENOTTY for unknown numbers. Prints key=value lines.
#include "tcefs_test.h"
#include <stdlib.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <tcefs/tcefs.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	mnt = argv[1];

	int c = node("dev/vfio/vfio", O_RDWR);
	show("container_open", c < 0 ? -1 : 0);
	show("api_version", tcefs_ioctl(c, VFIO_GET_API_VERSION, NULL));
	show("ext_spapr_v1", tcefs_ioctl(c, VFIO_CHECK_EXTENSION, (void *)VFIO_SPAPR_TCE_IOMMU));
	show("ext_spapr_v2", tcefs_ioctl(c, VFIO_CHECK_EXTENSION, (void *)VFIO_SPAPR_TCE_v2_IOMMU));
	show("ext_eeh", tcefs_ioctl(c, VFIO_CHECK_EXTENSION, (void *)VFIO_EEH));
	show("ext_type1v2", tcefs_ioctl(c, VFIO_CHECK_EXTENSION, (void *)VFIO_TYPE1v2_IOMMU));
	/* Before SET_IOMMU a legacy container refuses everything else with EINVAL. */
	struct vfio_iommu_spapr_tce_info info = { .argsz = sizeof(info) };
	show("container_get_info_unset", tcefs_ioctl(c, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &info));
	/* The powerpc encoding of the same request means the same thing. */
	show("api_version_ppc", tcefs_ioctl(c, 0x20000000u | VFIO_GET_API_VERSION, NULL));
	/* A request with direction/size bits is a different number to the kernel. */
	show("api_version_iowr", tcefs_ioctl(c, 0xc0083b64u, NULL));

	int g = node("dev/vfio/0", O_RDWR);
	struct vfio_group_status st = { .argsz = sizeof(st) };
	show("group_status", tcefs_ioctl(g, VFIO_GROUP_GET_STATUS, &st));
	printf("group_flags=%u\n", st.flags);
	struct vfio_group_status small = { .argsz = 4, .flags = 0xdead };
	show("group_status_argsz4", tcefs_ioctl(g, VFIO_GROUP_GET_STATUS, &small));
	printf("group_flags_untouched=%x\n", small.flags);
	show("group_status_null", tcefs_ioctl(g, VFIO_GROUP_GET_STATUS, NULL));
	int g2 = node("dev/vfio/0", O_RDWR);
	show("group_second_open", g2 < 0 ? -1 : 0);
	int other = node("dev/vfio/1", O_RDWR);
	show("other_group_open", other < 0 ? -1 : 0);
	close(g);
	g = node("dev/vfio/0", O_RDWR);
	show("group_reopen_after_close", g < 0 ? -1 : 0);

	int i = node("dev/iommu", O_RDWR);
	struct iommu_destroy d = { .size = sizeof(d), .id = 0 };
	show("destroy_0", tcefs_ioctl(i, IOMMU_DESTROY, &d));
	d.id = 5;
	show("destroy_5", tcefs_ioctl(i, IOMMU_DESTROY, &d));
	d.size = 7;
	show("destroy_size7", tcefs_ioctl(i, IOMMU_DESTROY, &d));
	struct { struct iommu_destroy d; __u32 tail[2]; } big = { { 16, 0 }, { 0, 0 } };
	show("destroy_size16_zero_tail", tcefs_ioctl(i, IOMMU_DESTROY, &big));
	big.tail[1] = 0xff000000u;
	show("destroy_size16_nonzero_tail", tcefs_ioctl(i, IOMMU_DESTROY, &big));
	show("destroy_null", tcefs_ioctl(i, IOMMU_DESTROY, NULL));
	show("iommufd_nr_7f", tcefs_ioctl(i, _IO(';', 0x7f), &d));
	show("iommufd_api_version", tcefs_ioctl(i, VFIO_GET_API_VERSION, NULL));
	show("iommufd_ext_type1v2", tcefs_ioctl(i, VFIO_CHECK_EXTENSION, (void *)VFIO_TYPE1v2_IOMMU));
	show("iommufd_ext_spapr", tcefs_ioctl(i, VFIO_CHECK_EXTENSION, (void *)VFIO_SPAPR_TCE_v2_IOMMU));

	int dev = node("dev/vfio/devices/vfio2", O_RDWR);
	struct vfio_device_info di = { .argsz = sizeof(di) };
	show("cdev_get_info_unbound", tcefs_ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
	show("not_a_tcefs_fd", tcefs_ioctl(0, VFIO_GET_API_VERSION, NULL));
	return 0;
}
