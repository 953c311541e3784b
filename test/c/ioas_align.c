// IOMMU_OPTION HUGE_PAGES against the areas of an IOAS without a domain, as a 4K-page client meets it
// (the case the kernel selftest calls ioas_align_change): with everything aligned to the CPU page the
// option may go to 0; then a map whose user address is off by half a page is refused; with the option
// back at 1 such a map succeeds, and turning it off again is EADDRINUSE. On a host whose page is larger
// than this process's, the first switch already meets an area that is not host-page aligned.
//
// usage: ioas_align
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include "shim_test.h"


static int fd;
static uint32_t ioas;

static long map_fixed(void *va, uint64_t length, uint64_t iova)
{
	struct iommu_ioas_map m = {
		.size = sizeof(m), .ioas_id = ioas, .user_va = (uintptr_t)va, .length = length, .iova = iova,
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
	};
	return ioctl(fd, IOMMU_IOAS_MAP, &m);
}

static long unmap(uint64_t iova, uint64_t length)
{
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = length };
	return ioctl(fd, IOMMU_IOAS_UNMAP, &u);
}

static long huge_pages(uint64_t on)
{
	struct iommu_option o = { .size = sizeof(o), .option_id = IOMMU_OPTION_HUGE_PAGES, .op = IOMMU_OPTION_OP_SET, .object_id = ioas, .val64 = on };
	return ioctl(fd, IOMMU_OPTION, &o);
}

static uint32_t alignment(void)
{
	struct iommu_ioas_iova_ranges r = { .size = sizeof(r), .ioas_id = ioas };
	ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &r); /* EMSGSIZE, with the alignment written back */
	return r.out_iova_alignment;
}

int main(void)
{
	const uint64_t page = sysconf(_SC_PAGESIZE);
	const uint64_t half = page / 2;
	const uint64_t at = 1 << 24;
	char *buf = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fd = open("/dev/iommu", O_RDWR);
	if (fd < 0 || buf == MAP_FAILED) {
		perror("setup");
		return 1;
	}
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	show("ioas_alloc", ioctl(fd, IOMMU_IOAS_ALLOC, &a));
	ioas = a.out_ioas_id;

	show("map_page", map_fixed(buf, page, at));
	show("huge_off", huge_pages(0));
	printf("alignment_off=0x%x\n", alignment());
	show("map_half_offset", map_fixed(buf + half, page, at + page));
	show("huge_off_again", huge_pages(0));
	show("huge_on", huge_pages(1));
	printf("alignment_on=0x%x\n", alignment());
	show("map_half", map_fixed(buf + half, half, at + page));
	show("huge_off_misaligned", huge_pages(0));
	show("unmap_half", unmap(at + page, half));
	show("unmap_page", unmap(at, page));
	close(fd);
	return 0;
}
