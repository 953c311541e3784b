// test/c/foundation.c's checks made the way an unmodified program makes them: open() on the real
// /dev paths and plain ioctl(), no libtcefs. Run under the preload shim, it must print exactly what
// foundation prints through libtcefs.
#include "shim_test.h"
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

int main(void)
{
	int c = open("/dev/vfio/vfio", O_RDWR);
	show("container_open", c < 0 ? -1 : 0);
	show("api_version", ioctl(c, VFIO_GET_API_VERSION));
	show("ext_spapr_v1", ioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU));
	show("ext_spapr_v2", ioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU));
	show("ext_eeh", ioctl(c, VFIO_CHECK_EXTENSION, VFIO_EEH));
	show("ext_type1v2", ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	struct vfio_iommu_spapr_tce_info info = { .argsz = sizeof(info) };
	show("container_get_info_unset", ioctl(c, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &info));
	show("api_version_ppc", ioctl(c, 0x20000000u | VFIO_GET_API_VERSION));
	show("api_version_iowr", ioctl(c, 0xc0083b64u));

	int g = open("/dev/vfio/0", O_RDWR);
	struct vfio_group_status st = { .argsz = sizeof(st) };
	show("group_status", ioctl(g, VFIO_GROUP_GET_STATUS, &st));
	printf("group_flags=%u\n", st.flags);
	struct vfio_group_status small = { .argsz = 4, .flags = 0xdead };
	show("group_status_argsz4", ioctl(g, VFIO_GROUP_GET_STATUS, &small));
	printf("group_flags_untouched=%x\n", small.flags);
	show("group_status_null", ioctl(g, VFIO_GROUP_GET_STATUS, NULL));
	int g2 = open("/dev/vfio/0", O_RDWR);
	show("group_second_open", g2 < 0 ? -1 : 0);
	int other = open("/dev/vfio/1", O_RDWR);
	show("other_group_open", other < 0 ? -1 : 0);
	close(g);
	g = open("/dev/vfio/0", O_RDWR);
	show("group_reopen_after_close", g < 0 ? -1 : 0);

	int i = open("/dev/iommu", O_RDWR);
	struct iommu_destroy d = { .size = sizeof(d), .id = 0 };
	show("destroy_0", ioctl(i, IOMMU_DESTROY, &d));
	d.id = 5;
	show("destroy_5", ioctl(i, IOMMU_DESTROY, &d));
	d.size = 7;
	show("destroy_size7", ioctl(i, IOMMU_DESTROY, &d));
	struct { struct iommu_destroy d; __u32 tail[2]; } big = { { 16, 0 }, { 0, 0 } };
	show("destroy_size16_zero_tail", ioctl(i, IOMMU_DESTROY, &big));
	big.tail[1] = 0xff000000u;
	show("destroy_size16_nonzero_tail", ioctl(i, IOMMU_DESTROY, &big));
	show("destroy_null", ioctl(i, IOMMU_DESTROY, NULL));
	show("iommufd_nr_7f", ioctl(i, _IO(';', 0x7f), &d));
	show("iommufd_api_version", ioctl(i, VFIO_GET_API_VERSION));
	show("iommufd_ext_type1v2", ioctl(i, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	show("iommufd_ext_spapr", ioctl(i, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU));

	int dev = open("/dev/vfio/devices/vfio2", O_RDWR);
	struct vfio_device_info di = { .argsz = sizeof(di) };
	show("cdev_get_info_unbound", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
	show("not_a_tcefs_fd", ioctl(0, VFIO_GET_API_VERSION));
	return 0;
}
