// What a guest's boot does to a VMM's container: the guest clears its whole default window, and QEMU
// unmaps it from VFIO one 4K page at a time. Run under `tcefs run`: the answers must be the kernel's
// whatever the shim answers from an unmap lease, including after the window changed under the lease
// (a map by this process, the group taken out of the container by a forked child).
//
// usage: unmap_lease BDF PAGES [SAMPLES]   (PAGES: how many 4K pages of the window to clear one by one)
// Prints key=value results; the timings (us_per_unmap, and with SAMPLES the medians of a lone unmap of
// an empty page answered by the daemon and from a lease) are for the benchmark, not the test.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>
#include "shim_test.h"

static int group_id;

/* Live TCEs of the group's PE, from the tcefs view (a debug file a real host does not have). */
static long live_tces(void)
{
	char path[4096], line[512];
	const char *mnt = getenv("TCEFS_MOUNT");
	snprintf(path, sizeof(path), "%s/sys/kernel/debug/tcefs/groups/%d/tce", mnt ? mnt : "", group_id);
	FILE *f = fopen(path, "r");
	long n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += !strncmp(line, "0x", 2);
	if (f)
		fclose(f);
	return f ? n : -1;
}

static int unmap_sized(int c, uint32_t argsz, uint32_t flags, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = argsz, .flags = flags, .iova = iova, .size = size };
	return ioctl(c, VFIO_IOMMU_UNMAP_DMA, &u);
}

static int unmap(int c, uint64_t iova, uint64_t size)
{
	return unmap_sized(c, sizeof(struct vfio_iommu_type1_dma_unmap), 0, iova, size);
}

static int map(int c, void *va, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
					      .vaddr = (uintptr_t)va, .iova = iova, .size = size };
	return ioctl(c, VFIO_IOMMU_MAP_DMA, &m);
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* A lone unmap of an empty page, timed alone: once after another call (the daemon answers), once right
 * after that (the lease answers). */
static void lone_unmaps(int c, uint64_t w, long samples, double (*clock)(void))
{
	double *asked = calloc(samples, sizeof(double)), *leased = calloc(samples, sizeof(double));
	for (long i = 0; i < samples; i++) {
		ioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU);
		double t0 = clock();
		unmap(c, w + 0x10000, 0x1000);
		double t1 = clock();
		unmap(c, w + 0x10000, 0x1000);
		double t2 = clock();
		asked[i] = t1 - t0, leased[i] = t2 - t1;
	}
	qsort(asked, samples, sizeof(double), by_value);
	qsort(leased, samples, sizeof(double), by_value);
	printf("us_lone_asked=%.3f\nus_lone_leased=%.3f\n", asked[samples / 2], leased[samples / 2]);
	free(asked);
	free(leased);
}

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	long pages = atol(argv[2]);
	char link[4096], path[4096];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", argv[1]);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return perror(path), 1;
	link[n] = 0;
	group_id = atoi(basename(link));
	snprintf(path, sizeof(path), "/dev/vfio/%d", group_id);
	int g = open(path, O_RDWR);
	int c = open("/dev/vfio/vfio", O_RDWR);
	show("set_container", ioctl(g, VFIO_GROUP_SET_CONTAINER, &c));
	show("set_iommu", ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU));
	size_t ram = 1UL << 26;
	uint8_t *va = mmap(NULL, ram, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vfio_iommu_spapr_register_memory reg = { .argsz = sizeof(reg), .vaddr = (uintptr_t)va, .size = ram };
	show("register", ioctl(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg));
	/* QEMU's default window: 1 GiB of 4K pages at 0, made anew in place of the host's. */
	struct vfio_iommu_spapr_tce_remove rm = { .argsz = sizeof(rm), .start_addr = 0 };
	show("remove_default", ioctl(c, VFIO_IOMMU_SPAPR_TCE_REMOVE, &rm));
	struct vfio_iommu_spapr_tce_create cr = { .argsz = sizeof(cr), .page_shift = 12, .window_size = 1UL << 30, .levels = 1 };
	show("create", ioctl(c, VFIO_IOMMU_SPAPR_TCE_CREATE, &cr));
	uint64_t w = cr.start_addr, end = w + (1UL << 30);
	show("map_last", map(c, va, end - 0x1000, 0x1000));

	/* The boot's clearing: every answer 0, the last page mapped before is gone afterwards. */
	long bad = 0;
	double t0 = now_us();
	for (long i = 0; i < pages; i++)
		bad += unmap(c, w + ((uint64_t)i << 12), 0x1000) != 0;
	double t1 = now_us();
	printf("clear_failures=%ld\n", bad);
	printf("us_per_unmap=%.3f\n", (t1 - t0) / (pages ? pages : 1));
	show("unmap_last", unmap(c, end - 0x1000, 0x1000));
	printf("live_after_clear=%ld\n", live_tces());
	if (argc > 3)
		lone_unmaps(c, w, atol(argv[3]), now_us);

	/* Inside a leased run, calls that are not the plain case get the daemon's answers. */
	show("lease", unmap(c, w, 0x1000));
	show("misaligned_iova", unmap(c, w + 0x2010, 0x1000));
	show("misaligned_size", unmap(c, w + 0x2000, 0x800));
	show("flags", unmap_sized(c, sizeof(struct vfio_iommu_type1_dma_unmap), 1, w + 0x2000, 0x1000));
	show("short_argsz", unmap_sized(c, 16, 0, w + 0x2000, 0x1000));
	show("lease_again", unmap(c, w, 0x1000));
	show("null_arg", ioctl(c, VFIO_IOMMU_UNMAP_DMA, NULL));
	show("lease_again2", unmap(c, w, 0x1000));
	show("past_window", unmap(c, end - 0x1000, 0x2000));
	show("outside_windows", unmap(c, 1UL << 40, 0x1000));
	show("zero_size", unmap(c, w + 0x3000, 0));

	/* A map of this process's inside the run ends the lease: the unmap after it clears the TCE. */
	show("lease_before_map", unmap(c, w, 0x1000));
	show("map_inside", map(c, va + 0x1000, w + 0x100000, 0x1000));
	printf("live_mapped=%ld\n", live_tces());
	show("unmap_inside", unmap(c, w + 0x100000, 0x1000));
	printf("live_unmapped=%ld\n", live_tces());

	/* A dup of the container shares its lease; another container does not. */
	show("lease_dup", unmap(c, w, 0x1000));
	int c2 = dup(c);
	show("unmap_dup", unmap(c2, w + 0x1000, 0x1000));
	close(c2);

	/* A forked child takes the group out of the container, which frees the windows: the parent's next
	 * unmap, inside the run it holds a lease on, must fail as the daemon says. */
	show("lease_before_fork", unmap(c, w, 0x1000));
	pid_t child = fork();
	if (child == 0)
		_exit(ioctl(g, VFIO_GROUP_UNSET_CONTAINER) == 0 ? 0 : 1);
	int status = 0;
	waitpid(child, &status, 0);
	printf("child_unset=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	show("unmap_after_unset", unmap(c, w + 0x1000, 0x1000));
	close(c);
	close(g);
	return 0;
}
