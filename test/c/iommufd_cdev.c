// The iommufd + VFIO cdev flow, written only against the kernel ABI (as the VFIO selftests' iommufd
// mode does it): find the cdev through sysfs, open /dev/iommu, bind, allocate an IOAS, attach, read the
// ranges (EMSGSIZE first), map, unmap, detach, destroy; then the edge cases of
// iommufd-and-vfio-cdev.md §5 and tcefs's experimental second window. Run it under `tcefs run`.
//
// usage: iommufd_cdev BDF
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
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include "shim_test.h"


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
			printf("cdev=%s\n", path);
			return open(path, O_RDWR);
		}
	return -1;
}

static int map(int i, __u32 ioas, void *va, __u64 iova, __u64 len, __u32 flags)
{
	struct iommu_ioas_map m = { .size = sizeof(m), .flags = flags, .ioas_id = ioas, .user_va = (uintptr_t)va, .length = len, .iova = iova };
	int rc = ioctl(i, IOMMU_IOAS_MAP, &m);
	if (rc == 0 && !(flags & IOMMU_IOAS_MAP_FIXED_IOVA))
		printf("allocated_iova=0x%llx\n", (unsigned long long)m.iova);
	return rc;
}

static long unmap(int i, __u32 ioas, __u64 iova, __u64 len)
{
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = len };
	int rc = ioctl(i, IOMMU_IOAS_UNMAP, &u);
	return rc < 0 ? rc : (long)u.length;
}

static void ranges(int i, __u32 ioas, const char *key)
{
	struct iommu_ioas_iova_ranges r = { .size = sizeof(r), .ioas_id = ioas };
	char k[64];
	snprintf(k, sizeof(k), "%s_probe", key);
	show(k, ioctl(i, IOMMU_IOAS_IOVA_RANGES, &r)); /* num_iovas 0: EMSGSIZE with the count */
	struct iommu_iova_range *list = calloc(r.num_iovas, sizeof(*list));
	r.allowed_iovas = (uintptr_t)list;
	show(key, ioctl(i, IOMMU_IOAS_IOVA_RANGES, &r));
	printf("%s_alignment=0x%llx\n", key, (unsigned long long)r.out_iova_alignment);
	for (unsigned n = 0; n < r.num_iovas; n++)
		printf("%s_%u=0x%llx-0x%llx\n", key, n, (unsigned long long)list[n].start, (unsigned long long)list[n].last);
	free(list);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	size_t len = 1UL << 24;
	uint8_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	int dev = open_cdev(argv[1]);
	int i = open("/dev/iommu", O_RDWR);
	show("iommufd_fd_positive", i > 0 ? 0 : -1);

	/* get_info_without_bind_fails */
	struct vfio_device_info info = { .argsz = sizeof(info) };
	show("info_before_bind", ioctl(dev, VFIO_DEVICE_GET_INFO, &info));
	/* bind_bad_iommufd_fails */
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = -2 };
	show("bind_bad_fd", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	int pipefd[2];
	pipe(pipefd);
	bind.iommufd = pipefd[0];
	show("bind_not_iommufd", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	bind.iommufd = 1000; /* not open */
	show("bind_closed_fd", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	bind.iommufd = i;
	show("bind", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	printf("devid=%u\n", bind.out_devid);
	show("bind_again", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	show("info_after_bind", ioctl(dev, VFIO_DEVICE_GET_INFO, &info));

	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	show("ioas_alloc", ioctl(i, IOMMU_IOAS_ALLOC, &alloc));
	__u32 ioas = alloc.out_ioas_id;
	printf("ioas=%u\n", ioas);
	ranges(i, ioas, "ranges_empty");

	/* attach_invalid_pt_fails, then attach to the IOAS: the automatic domain's ID comes back */
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = 0xffffffff };
	show("attach_invalid", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	at.pt_id = ioas;
	show("attach", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	printf("hwpt=%u\n", at.pt_id);
	ranges(i, ioas, "ranges_attached");

	show("map_fixed", map(i, ioas, mem, 0x100000, 0x10000, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE));
	show("map_auto", map(i, ioas, mem + 0x10000, 0, 0x10000, IOMMU_IOAS_MAP_READABLE));
	show("map_overlap", map(i, ioas, mem, 0x100000, 0x1000, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE));
	show("map_reserved", map(i, ioas, mem, 0x100000000ULL, 0x1000, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE));
	show("map_unaligned", map(i, ioas, mem, 0x200800, 0x1000, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE));
	show("map_overflow", map(i, ioas, mem, 0xfffffffffffff000ULL, 0x2000, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE));
	show("unmap_partial", unmap(i, ioas, 0x100000, 0x1000));
	show("unmap_nothing", unmap(i, ioas, 0x700000, 0x1000));
	struct iommu_destroy des = { .size = sizeof(des), .id = ioas };
	show("destroy_ioas_busy", ioctl(i, IOMMU_DESTROY, &des));
	des.id = at.pt_id;
	show("destroy_hwpt_busy", ioctl(i, IOMMU_DESTROY, &des));
	des.id = bind.out_devid;
	show("destroy_device_busy", ioctl(i, IOMMU_DESTROY, &des));
	show("unmap_all", unmap(i, ioas, 0, UINT64_MAX));

	/* GET_HW_INFO: the experimental TCE info tells what windows can be made. */
	struct iommu_hw_info_spapr_tce tce;
	memset(&tce, 0xff, sizeof(tce));
	struct iommu_hw_info hw = { .size = sizeof(hw), .dev_id = bind.out_devid, .data_len = sizeof(tce), .data_uptr = (uintptr_t)&tce };
	show("hw_info", ioctl(i, IOMMU_GET_HW_INFO, &hw));
	printf("hw_type=0x%x\nhw_pgsizes=0x%llx\nhw_windows=%u\nhw_levels=%u\nhw_window64=0x%llx\n", hw.out_data_type,
	       (unsigned long long)tce.pgsizes, tce.max_dynamic_windows_supported, tce.max_levels, (unsigned long long)tce.window64_start);

	/* A domain with both windows, chosen by the client; the device moves to it (replace). */
	struct iommu_hwpt_spapr_tce windows = {
		.window0 = { .page_shift = 12, .levels = 1, .window_size = 1UL << 30 },
		.window1 = { .page_shift = 16, .levels = 2, .window_size = 1UL << 40 },
	};
	struct iommu_hwpt_alloc ha = { .size = sizeof(ha), .dev_id = bind.out_devid, .pt_id = ioas, .data_type = IOMMU_HWPT_DATA_SPAPR_TCE,
				       .data_len = sizeof(windows), .data_uptr = (uintptr_t)&windows };
	show("hwpt_alloc", ioctl(i, IOMMU_HWPT_ALLOC, &ha));
	at.pt_id = ha.out_hwpt_id;
	show("attach_two_windows", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	ranges(i, ioas, "ranges_two_windows");
	show("map_window64", map(i, ioas, mem, tce.window64_start, 0x20000, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE));

	struct vfio_device_detach_iommufd_pt dt = { .argsz = sizeof(dt) };
	show("detach", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt));
	show("detach_again", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt));
	show("unmap_all_2", unmap(i, ioas, 0, UINT64_MAX));
	des.id = ha.out_hwpt_id;
	show("destroy_hwpt", ioctl(i, IOMMU_DESTROY, &des));
	des.id = ioas;
	show("destroy_ioas", ioctl(i, IOMMU_DESTROY, &des));
	close(dev);
	close(i);
	return 0;
}
