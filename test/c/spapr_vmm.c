// A VMM's view of a POWER host, written only against the kernel ABI: find the device's group through
// sysfs, set up a container the way QEMU's spapr code does (v2 with DDW, or v1 when asked or when v2 is
// refused), map and unmap, look at the device, tear down. Run it under `tcefs run`. At each step it
// prints key=value results and, between "view" markers, the tcefs TCE view of the group (a debug file
// a real host does not have; the test checks the entries there).
//
// usage: spapr_vmm BDF [v1|v2]   (v2 skips the probe order and asks for SPAPR v2, e.g. on an iommufd)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/vfio.h>
#include "shim_test.h"

static int group_id;


static void view(const char *step)
{
	char path[4096], line[512];
	const char *mnt = getenv("TCEFS_MOUNT");
	printf("view %s\n", step);
	snprintf(path, sizeof(path), "%s/sys/kernel/debug/tcefs/groups/%d/tce", mnt ? mnt : "", group_id);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		fputs(line, stdout);
	if (f)
		fclose(f);
	printf("end view\n");
	fflush(stdout);
}

/* QEMU's CREATE loop: start from the levels the window needs and add levels until the host agrees. */
static int create_window(int c, unsigned page_shift, uint64_t size, uint64_t *start)
{
	long host_page = sysconf(_SC_PAGESIZE);
	unsigned host_shift = __builtin_ctzl(host_page) < 16 ? 16 : __builtin_ctzl(host_page); /* the emulated host has 64K pages */
	uint64_t entries = size >> page_shift;
	unsigned bits = __builtin_ctzll(entries * 8);
	unsigned per_level = host_shift + 8;
	unsigned levels = (bits + per_level - 1) / per_level;
	unsigned max_levels = (64 - page_shift) / host_shift;
	for (; levels <= max_levels; levels++) {
		struct vfio_iommu_spapr_tce_create cr = { .argsz = sizeof(cr), .page_shift = page_shift, .window_size = size, .levels = levels };
		if (ioctl(c, VFIO_IOMMU_SPAPR_TCE_CREATE, &cr) == 0) {
			*start = cr.start_addr;
			return 0;
		}
	}
	return -1;
}

static int map(int c, void *va, uint64_t iova, uint64_t size, unsigned flags)
{
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = flags, .vaddr = (uintptr_t)va, .iova = iova, .size = size };
	return ioctl(c, VFIO_IOMMU_MAP_DMA, &m);
}

static int unmap(int c, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = iova, .size = size };
	return ioctl(c, VFIO_IOMMU_UNMAP_DMA, &u);
}

static void device(int g, const char *bdf)
{
	int d = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, bdf);
	show("device_fd_ok", d < 0 ? -1 : 0);
	if (d < 0)
		return;
	struct vfio_device_info di = { .argsz = sizeof(di) };
	show("device_info", ioctl(d, VFIO_DEVICE_GET_INFO, &di));
	printf("device_flags=%u\nnum_regions=%u\nnum_irqs=%u\n", di.flags, di.num_regions, di.num_irqs);
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	show("config_info", ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &cfg));
	printf("config_size=%llu\nconfig_offset=0x%llx\nconfig_flags=%u\n", (unsigned long long)cfg.size, (unsigned long long)cfg.offset, cfg.flags);
	uint16_t ids[2];
	show("config_read", pread(d, ids, 4, cfg.offset));
	printf("vendor=0x%04x\ndevice=0x%04x\n", ids[0], ids[1]);
	/* BAR sizing: write all ones, read back the size mask. */
	uint32_t ones = 0xffffffff, bar0;
	show("bar0_write", pwrite(d, &ones, 4, cfg.offset + 0x10));
	show("bar0_read", pread(d, &bar0, 4, cfg.offset + 0x10));
	printf("bar0=0x%08x\n", bar0);
	struct vfio_region_info r0 = { .argsz = sizeof(r0), .index = VFIO_PCI_BAR0_REGION_INDEX };
	show("bar0_info", ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &r0));
	printf("bar0_size=%llu\n", (unsigned long long)r0.size);
	struct vfio_irq_info msix = { .argsz = sizeof(msix), .index = VFIO_PCI_MSIX_IRQ_INDEX };
	show("msix_info", ioctl(d, VFIO_DEVICE_GET_IRQ_INFO, &msix));
	printf("msix_count=%u\n", msix.count);
	show("device_reset", ioctl(d, VFIO_DEVICE_RESET));
	/* An open device keeps the group in its container. */
	show("unset_with_device_open", ioctl(g, VFIO_GROUP_UNSET_CONTAINER));
	close(d);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *bdf = argv[1];
	int want_v1 = argc > 2 && !strcmp(argv[2], "v1");
	int want_v2 = argc > 2 && !strcmp(argv[2], "v2");
	char link[4096], path[4096];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		perror(path);
		return 1;
	}
	link[n] = 0;
	group_id = atoi(basename(link));
	printf("group=%d\n", group_id);
	view("boot");

	snprintf(path, sizeof(path), "/dev/vfio/%d", group_id);
	int g = open(path, O_RDWR);
	show("group_open", g < 0 ? -1 : 0);
	struct vfio_group_status st = { .argsz = sizeof(st) };
	show("group_status", ioctl(g, VFIO_GROUP_GET_STATUS, &st));
	printf("viable=%d\n", !!(st.flags & VFIO_GROUP_FLAGS_VIABLE));

	int c = open("/dev/vfio/vfio", O_RDWR);
	show("api_version", ioctl(c, VFIO_GET_API_VERSION));
	int type = 0;
	int order[] = { VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU, VFIO_SPAPR_TCE_IOMMU };
	for (int i = 0; i < 4 && !type; i++)
		if (ioctl(c, VFIO_CHECK_EXTENSION, order[i]) > 0)
			type = order[i];
	if (want_v2)
		type = ioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU) > 0 ? VFIO_SPAPR_TCE_v2_IOMMU : 0;
	printf("type=%d\n", type);
	show("set_container", ioctl(g, VFIO_GROUP_SET_CONTAINER, &c));
	if (want_v1 || ioctl(c, VFIO_SET_IOMMU, type) < 0) {
		type = VFIO_SPAPR_TCE_IOMMU;
		show("set_iommu_v1", ioctl(c, VFIO_SET_IOMMU, type));
	}
	printf("iommu=%d\n", type);

	size_t ram = 1UL << 30; /* guest RAM: reserved address space, never touched by the emulator */
	uint8_t *base = mmap(NULL, ram + 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *va = (uint8_t *)(((uintptr_t)base + 0xffff) & ~(uintptr_t)0xffff);
	struct vfio_iommu_spapr_tce_info info = { .argsz = sizeof(info) };

	if (type == VFIO_SPAPR_TCE_v2_IOMMU) {
		struct vfio_iommu_spapr_register_memory reg = { .argsz = sizeof(reg), .vaddr = (uintptr_t)va, .size = ram };
		show("register", ioctl(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg));
		show("get_info", ioctl(c, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &info));
		printf("dma32_start=0x%x\ndma32_size=0x%x\nflags=%u\npgsizes=0x%llx\nwindows=%u\nlevels=%u\n", info.dma32_window_start,
		       info.dma32_window_size, info.flags, (unsigned long long)info.ddw.pgsizes, info.ddw.max_dynamic_windows_supported, info.ddw.levels);
		struct vfio_iommu_spapr_tce_remove rm = { .argsz = sizeof(rm), .start_addr = info.dma32_window_start };
		show("remove_default", ioctl(c, VFIO_IOMMU_SPAPR_TCE_REMOVE, &rm));
		uint64_t w32, w64;
		show("create_32", create_window(c, 12, 1UL << 30, &w32));
		printf("window32=0x%llx\n", (unsigned long long)w32);
		show("map_4k_rw", map(c, va + 0x10000, w32 + 0x1000, 0x1000, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE));
		show("map_4k_ro", map(c, va + 0x11000, w32 + 0x2000, 0x1000, VFIO_DMA_MAP_FLAG_READ));
		show("map_misaligned_iova", map(c, va, w32 + 0x10, 0x1000, VFIO_DMA_MAP_FLAG_READ));
		show("map_outside_windows", map(c, va, 1UL << 40, 0x1000, VFIO_DMA_MAP_FLAG_READ));
		view("mapped32");
		show("create_64", create_window(c, 16, 1UL << 32, &w64));
		printf("window64=0x%llx\n", (unsigned long long)w64);
		show("map_64k", map(c, va + 0x20000, w64 + 0x20000, 0x10000, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE));
		view("mapped64");
		device(g, bdf);
		show("unmap_64", unmap(c, w64, 1UL << 32));
		rm.start_addr = w64;
		show("remove_64", ioctl(c, VFIO_IOMMU_SPAPR_TCE_REMOVE, &rm));
		show("unmap_32", unmap(c, w32, 1UL << 30));
		rm.start_addr = w32;
		show("remove_32", ioctl(c, VFIO_IOMMU_SPAPR_TCE_REMOVE, &rm));
		show("unregister", ioctl(c, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, &reg));
	} else {
		show("enable", ioctl(c, VFIO_IOMMU_ENABLE));
		show("get_info", ioctl(c, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &info));
		printf("dma32_start=0x%x\ndma32_size=0x%x\nflags=%u\n", info.dma32_window_start, info.dma32_window_size, info.flags);
		show("map_4k", map(c, va + 0x3000, info.dma32_window_start + 0x4000, 0x2000, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE));
		show("create_v1", ioctl(c, VFIO_IOMMU_SPAPR_TCE_CREATE, &(struct vfio_iommu_spapr_tce_create){ .argsz = 40, .page_shift = 16, .window_size = 1UL << 30, .levels = 1 }));
		view("mapped_v1");
		device(g, bdf);
		show("unmap", unmap(c, info.dma32_window_start + 0x4000, 0x2000));
		show("disable", ioctl(c, VFIO_IOMMU_DISABLE));
	}
	show("unset_container", ioctl(g, VFIO_GROUP_UNSET_CONTAINER));
	close(c);
	close(g);
	view("released");
	return 0;
}
