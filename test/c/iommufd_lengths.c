// Every iommufd command that a TCE host has no feature for, driven as a kernel-ABI program would: the
// size rules first (one byte short, one byte long and non-zero, the exact struct, one byte long and
// zero), then each command's answer with a well-formed struct. Run it under `tcefs run`.
//
// usage: iommufd_lengths
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include "shim_test.h"


static const char *name_of(int rc)
{
	return rc ? strerrorname_np(errno) : "0";
}

/* The four size probes of one command, printed as short/long_dirty/exact/long_clean. */
#define LENGTHS(fd, key, type, req, last)                                                        \
	do {                                                                                     \
		struct {                                                                         \
			struct type cmd;                                                         \
			uint8_t extra;                                                           \
		} a;                                                                             \
		char r[4][32];                                                                   \
		memset(&a, 0, sizeof(a));                                                        \
		a.extra = 0xff;                                                                  \
		a.cmd.size = offsetof(struct type, last) + sizeof(a.cmd.last) - 1;               \
		snprintf(r[0], 32, "%s", name_of(ioctl(fd, req, &a)));                           \
		a.cmd.size = sizeof(struct type) + 1;                                            \
		snprintf(r[1], 32, "%s", name_of(ioctl(fd, req, &a)));                           \
		a.cmd.size = sizeof(struct type);                                                \
		snprintf(r[2], 32, "%s", name_of(ioctl(fd, req, &a)));                           \
		a.cmd.size = sizeof(struct type) + 1;                                            \
		a.extra = 0;                                                                     \
		snprintf(r[3], 32, "%s", name_of(ioctl(fd, req, &a)));                           \
		printf("%s=%s/%s/%s/%s\n", key, r[0], r[1], r[2], r[3]);                         \
	} while (0)

int main(void)
{
	int i = open("/dev/iommu", O_RDWR);
	if (i < 0)
		return perror("/dev/iommu"), 1;

	LENGTHS(i, "len_set_dirty", iommu_hwpt_set_dirty_tracking, IOMMU_HWPT_SET_DIRTY_TRACKING, __reserved);
	LENGTHS(i, "len_get_dirty", iommu_hwpt_get_dirty_bitmap, IOMMU_HWPT_GET_DIRTY_BITMAP, data);
	LENGTHS(i, "len_invalidate", iommu_hwpt_invalidate, IOMMU_HWPT_INVALIDATE, __reserved);
	LENGTHS(i, "len_fault_queue", iommu_fault_alloc, IOMMU_FAULT_QUEUE_ALLOC, out_fault_fd);
	LENGTHS(i, "len_map_file", iommu_ioas_map_file, IOMMU_IOAS_MAP_FILE, iova);
	LENGTHS(i, "len_viommu", iommu_viommu_alloc, IOMMU_VIOMMU_ALLOC, out_viommu_id);
	LENGTHS(i, "len_vdevice", iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, virt_id);
	LENGTHS(i, "len_change_process", iommu_ioas_change_process, IOMMU_IOAS_CHANGE_PROCESS, __reserved);
	LENGTHS(i, "len_veventq", iommu_veventq_alloc, IOMMU_VEVENTQ_ALLOC, out_veventq_fd);
	LENGTHS(i, "len_hw_queue", iommu_hw_queue_alloc, IOMMU_HW_QUEUE_ALLOC, length);
	LENGTHS(i, "len_noiommu_pa", iommu_ioas_noiommu_get_pa, IOMMU_IOAS_NOIOMMU_GET_PA, out_phys);

	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	show("ioas_alloc", ioctl(i, IOMMU_IOAS_ALLOC, &alloc));

	/* A memfd is what MAP_FILE takes; a closed fd and /dev/iommu itself are not. */
	int mfd = memfd_create("tcefs-map-file", 0);
	if (mfd < 0 || ftruncate(mfd, 1 << 17))
		return perror("memfd"), 1;
	struct iommu_ioas_map_file mf = {
		.size = sizeof(mf), .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
		.ioas_id = alloc.out_ioas_id, .fd = i, .start = 1 << 16, .length = 1 << 16, .iova = 1 << 20,
	};
	show("map_file_iommufd", ioctl(i, IOMMU_IOAS_MAP_FILE, &mf));
	mf.fd = 1000;
	show("map_file_closed", ioctl(i, IOMMU_IOAS_MAP_FILE, &mf));
	mf.fd = mfd;
	mf.ioas_id = 0;
	show("map_file_no_ioas", ioctl(i, IOMMU_IOAS_MAP_FILE, &mf));
	mf.ioas_id = alloc.out_ioas_id;
	show("map_file_memfd", ioctl(i, IOMMU_IOAS_MAP_FILE, &mf));
	show("map_file_again", ioctl(i, IOMMU_IOAS_MAP_FILE, &mf));

	/* The file area copies like any other. */
	struct iommu_ioas_alloc alloc2 = { .size = sizeof(alloc2) };
	ioctl(i, IOMMU_IOAS_ALLOC, &alloc2);
	struct iommu_ioas_copy cp2 = {
		.size = sizeof(cp2), .flags = IOMMU_IOAS_MAP_READABLE, .dst_ioas_id = alloc2.out_ioas_id, .src_ioas_id = alloc.out_ioas_id,
		.length = 1 << 16, .src_iova = 1 << 20,
	};
	show("copy_file_area", ioctl(i, IOMMU_IOAS_COPY, &cp2));

	struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
	show("change_process_file", ioctl(i, IOMMU_IOAS_CHANGE_PROCESS, &cp));
	static char buf[1 << 16] __attribute__((aligned(1 << 16)));
	struct iommu_ioas_map m = {
		.size = sizeof(m), .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
		.ioas_id = alloc.out_ioas_id, .user_va = (uintptr_t)buf, .length = sizeof(buf), .iova = 0,
	};
	show("map", ioctl(i, IOMMU_IOAS_MAP, &m));
	show("change_process_mapped", ioctl(i, IOMMU_IOAS_CHANGE_PROCESS, &cp));
	struct iommu_ioas_unmap um = { .size = sizeof(um), .ioas_id = alloc.out_ioas_id, .iova = 0, .length = sizeof(buf) };
	show("unmap", ioctl(i, IOMMU_IOAS_UNMAP, &um));
	/* A child sharing the iommufd takes the charge over, as a new VMM process would. */
	pid_t child = fork();
	if (child == 0)
		_exit(ioctl(i, IOMMU_IOAS_CHANGE_PROCESS, &cp) ? 1 : 0);
	int status = -1;
	waitpid(child, &status, 0);
	printf("change_process_child=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

	struct iommu_viommu_alloc va = { .size = sizeof(va), .type = 1 /* any type but DEFAULT */, .dev_id = 0 };
	show("viommu_no_device", ioctl(i, IOMMU_VIOMMU_ALLOC, &va));
	struct iommu_vdevice_alloc vd = { .size = sizeof(vd), .viommu_id = 0 };
	show("vdevice_no_viommu", ioctl(i, IOMMU_VDEVICE_ALLOC, &vd));
	struct iommu_hwpt_invalidate inv = { .size = sizeof(inv), .hwpt_id = alloc.out_ioas_id, .entry_num = 3 };
	show("invalidate_no_array", ioctl(i, IOMMU_HWPT_INVALIDATE, &inv));
	printf("invalidate_entry_num=%u\n", inv.entry_num);
	struct iommu_hwpt_set_dirty_tracking sd = { .size = sizeof(sd), .flags = IOMMU_HWPT_DIRTY_TRACKING_ENABLE, .hwpt_id = alloc.out_ioas_id };
	show("dirty_on_ioas", ioctl(i, IOMMU_HWPT_SET_DIRTY_TRACKING, &sd));
	return 0;
}
