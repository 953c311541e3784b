// A VFIO user-space driver written for a type1 (x86-style) host, against the kernel ABI only: open a
// container, check the API and extensions, open the group, set its container, choose the IOMMU type,
// read VFIO_IOMMU_GET_INFO with its capability chain (probe argsz first), open the device, map a
// buffer inside the reported IOVA ranges at the reported page granule, and unmap it piece by piece.
// Nothing in it knows about POWER: the container may be /dev/vfio/vfio backed by iommufd or /dev/iommu.
//
// usage: type1_client CONTAINER GROUP BDF TYPE     (TYPE 1 = VFIO_TYPE1_IOMMU, 3 = VFIO_TYPE1v2_IOMMU)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/vfio.h>
#include "shim_test.h"


struct iova_range { uint64_t start, end; };

/* GET_INFO twice: once to learn argsz, once with room for every capability. */
static struct vfio_iommu_type1_info *get_info(int container, const char *tag)
{
	char key[64];
	struct vfio_iommu_type1_info probe = { .argsz = sizeof(probe) };
	snprintf(key, sizeof(key), "%s_probe", tag);
	show(key, ioctl(container, VFIO_IOMMU_GET_INFO, &probe));
	struct vfio_iommu_type1_info *info = calloc(1, probe.argsz);
	info->argsz = probe.argsz;
	snprintf(key, sizeof(key), "%s", tag);
	show(key, ioctl(container, VFIO_IOMMU_GET_INFO, info));
	return info;
}

/* The IOVA ranges and DMA_AVAIL of a GET_INFO answer; prints them and returns the range count. */
static int parse_caps(struct vfio_iommu_type1_info *info, const char *tag, struct iova_range *out, int max)
{
	int n = 0;
	printf("%s_pgsizes=0x%llx\n", tag, (unsigned long long)info->iova_pgsizes);
	if (!(info->flags & VFIO_IOMMU_INFO_CAPS) || !info->cap_offset)
		return 0;
	for (uint32_t off = info->cap_offset; off; ) {
		struct vfio_info_cap_header *h = (void *)((char *)info + off);
		if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
			struct vfio_iommu_type1_info_dma_avail *a = (void *)h;
			printf("%s_dma_avail=%u\n", tag, a->avail);
		} else if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
			struct vfio_iommu_type1_info_cap_iova_range *r = (void *)h;
			printf("%s_nr_iovas=%u\n", tag, r->nr_iovas);
			for (uint32_t i = 0; i < r->nr_iovas; i++) {
				printf("%s_range_%u=0x%llx-0x%llx\n", tag, i, (unsigned long long)r->iova_ranges[i].start,
				       (unsigned long long)r->iova_ranges[i].end);
				if (n < max)
					out[n++] = (struct iova_range){ r->iova_ranges[i].start, r->iova_ranges[i].end };
			}
		}
		off = h->next;
	}
	return n;
}

static long map(int c, uint32_t flags, void *va, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = flags, .vaddr = (uintptr_t)va, .iova = iova, .size = size };
	return ioctl(c, VFIO_IOMMU_MAP_DMA, &m);
}

/* Unmap and print the call's result and the size the kernel wrote back. */
static void unmap(int c, const char *key, uint32_t flags, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .flags = flags, .iova = iova, .size = size };
	char k[64];
	show(key, ioctl(c, VFIO_IOMMU_UNMAP_DMA, &u));
	snprintf(k, sizeof(k), "%s_size", key);
	printf("%s=0x%llx\n", k, (unsigned long long)u.size);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s CONTAINER GROUP BDF TYPE\n", argv[0]);
		return 2;
	}
	const int type = atoi(argv[4]);
	const uint32_t rw = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	char path[256];

	int container = open(argv[1], O_RDWR);
	if (container < 0) {
		perror(argv[1]);
		return 1;
	}
	show("api_version", ioctl(container, VFIO_GET_API_VERSION));
	show("ext_type1", ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU));
	show("ext_type1v2", ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	show("ext_unmap_all", ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL));
	show("ext_update_vaddr", ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	show("ext_spapr", ioctl(container, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU));

	snprintf(path, sizeof(path), "/dev/vfio/%s", argv[2]);
	int group = open(path, O_RDWR);
	if (group < 0) {
		perror(path);
		return 1;
	}
	struct vfio_group_status status = { .argsz = sizeof(status) };
	show("group_status", ioctl(group, VFIO_GROUP_GET_STATUS, &status));
	printf("group_viable=%d\n", !!(status.flags & VFIO_GROUP_FLAGS_VIABLE));
	show("info_before_container", ioctl(container, VFIO_IOMMU_GET_INFO, &(struct vfio_iommu_type1_info){ .argsz = 24 }));
	show("set_container", ioctl(group, VFIO_GROUP_SET_CONTAINER, &container));
	show("set_iommu_spapr", ioctl(container, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_IOMMU));
	show("set_iommu", ioctl(container, VFIO_SET_IOMMU, type));
	show("ext_cc_no_domain", ioctl(container, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU));

	struct iova_range ranges[8];
	free(get_info(container, "info_no_device"));
	int device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[3]);
	show("device_fd_positive", device > 0 ? 0 : device);
	struct vfio_device_info dinfo = { .argsz = sizeof(dinfo) };
	show("device_info", ioctl(device, VFIO_DEVICE_GET_INFO, &dinfo));
	printf("device_pci=%d\n", !!(dinfo.flags & VFIO_DEVICE_FLAGS_PCI));
	show("ext_cc", ioctl(container, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU));

	struct vfio_iommu_type1_info *info = get_info(container, "info");
	int n = parse_caps(info, "info", ranges, 8);
	if (n == 0 || !info->iova_pgsizes) {
		fprintf(stderr, "no IOVA range or page size\n");
		return 1;
	}
	/* The smallest IOMMU page the container maps: everything is a multiple of it. */
	const uint64_t granule = info->iova_pgsizes & -info->iova_pgsizes;
	const uint64_t page = sysconf(_SC_PAGESIZE);
	printf("granule=0x%llx\n", (unsigned long long)granule);
	free(info);

	size_t len = 8 * granule;
	char *raw = mmap(NULL, len + granule, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	char *buf = (char *)(((uintptr_t)raw + granule - 1) & ~(uintptr_t)(granule - 1));
	const uint64_t base = ranges[0].start + 16 * granule;

	show("map", map(container, rw, buf, base, 4 * granule));
	show("map_again", map(container, rw, buf, base, 4 * granule));
	show("map_size_0", map(container, rw, buf, base + 8 * granule, 0));
	show("map_vaddr_flag", map(container, rw | VFIO_DMA_MAP_FLAG_VADDR, buf, base + 8 * granule, granule));
	show("map_outside", map(container, rw, buf, ranges[n - 1].end + 1, granule));
	show("map_read_only", map(container, VFIO_DMA_MAP_FLAG_READ, buf + 4 * granule, base + 8 * granule, granule));
	/* One CPU page of this process: a 4K program's natural unit. */
	long small = map(container, rw, buf + 5 * granule, base + 12 * granule, page);
	show("map_cpu_page", small);
	if (small == 0)
		unmap(container, "unmap_cpu_page", 0, base + 12 * granule, page);

	unmap(container, "unmap_dirty_flag", VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, base, granule);
	unmap(container, "unmap_vaddr_flag", VFIO_DMA_UNMAP_FLAG_VADDR, base, granule);
	unmap(container, "unmap_size_0", 0, base, 0);
	unmap(container, "unmap_all_bad", VFIO_DMA_UNMAP_FLAG_ALL, base, 0);
	unmap(container, "unmap_nothing", 0, base + 32 * granule, granule);
	/* The middle of the 4-page mapping: TYPE1 cuts the mapping, TYPE1v2 refuses. */
	unmap(container, "unmap_middle", 0, base + granule, granule);
	unmap(container, "unmap_unaligned", 0, base + 2 * granule + 1, granule);
	struct vfio_iommu_type1_dirty_bitmap dirty = { .argsz = sizeof(dirty), .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START };
	show("dirty_pages", ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &dirty));
	unmap(container, "unmap_all", VFIO_DMA_UNMAP_FLAG_ALL, 0, 0);

	close(device);
	close(group);
	close(container);
	munmap(raw, len + granule);
	return 0;
}
