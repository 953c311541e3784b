// A client for the reliability tests: it takes one IOMMU group through the legacy SPAPR v2 container or
// an iommufd with the group's cdev, then maps and unmaps 64 KiB slices of its own memory at random for a
// while, and checks after every few calls that the group's TCE view (a tcefs debug file) shows exactly
// its own mappings: every live TCE inside one of its mapped slices, pointing at its own address for that
// IOVA, and as many TCEs as those slices need. It talks to the mount through libtcefs.
//
// usage: rel_client MNT MODE GROUP CDEV ACTION [ARG]
//   MODE    spapr4k   SPAPR v2, the default 32-bit window (4 KiB TCEs, created by the first MAP)
//           spapr64k  SPAPR v2, the default window removed and a 1 GiB window of 64 KiB TCEs created
//           iommufd   /dev/iommu, the cdev bound, an IOAS, the automatic domain (4 KiB TCEs)
//   GROUP   the group number; CDEV the cdev node name (vfioN) for iommufd
//   ACTION  run SECONDS   map and unmap at random for SECONDS (and at least MIN_OPS times), check,
//                         unmap everything, exit 0
//           stop STEP [BDF]  stop after STEP (set_container, register, create, map, device; bind,
//                         attach, map), print "ready" and wait to be killed; "device" also opens the
//                         device BDF through the group after the map (SPAPR only)
//           hold          set up and map, print "ready", then for each line on stdin make one more
//                         call and print its result (to see what a client of a dead daemon gets)
// Prints key=value lines; "mismatch=..." lines say what the view got wrong. Exit 1 on any failure.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <tcefs/tcefs.h>

#define SLOTS 64
#define MIN_OPS 64
#define SLICE 0x10000ULL

static const char *mnt, *mode;
static int group_id;
static int g = -1, c = -1, dev = -1, iommu = -1;
static uint32_t ioas;
static uint8_t *va;
static uint64_t base;          /* IOVA of slot 0 */
static unsigned page;          /* TCE page size in the window used */
static int mapped[SLOTS];
static uint64_t hpa_of[SLOTS * 16]; /* first hpa seen per 4K-or-64K page of the slices, 0 if none yet */
static int failures;

static int node(const char *rel)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", mnt, rel);
	return open(p, O_RDWR);
}

static void fail(const char *what)
{
	printf("error=%s: %s\n", what, strerrorname_np(errno));
	fflush(stdout);
	exit(1);
}

static int is_spapr(void)
{
	return !strncmp(mode, "spapr", 5);
}

static int map_slot(int k)
{
	if (is_spapr()) {
		struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
						      .vaddr = (uintptr_t)(va + k * SLICE), .iova = base + k * SLICE, .size = SLICE };
		return tcefs_ioctl(c, VFIO_IOMMU_MAP_DMA, &m);
	}
	struct iommu_ioas_map m = { .size = sizeof(m), .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
				    .ioas_id = ioas, .user_va = (uintptr_t)(va + k * SLICE), .length = SLICE, .iova = base + k * SLICE };
	return tcefs_ioctl(iommu, IOMMU_IOAS_MAP, &m);
}

static int unmap_slot(int k)
{
	if (is_spapr()) {
		struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = base + k * SLICE, .size = SLICE };
		return tcefs_ioctl(c, VFIO_IOMMU_UNMAP_DMA, &u);
	}
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas, .iova = base + k * SLICE, .length = SLICE };
	return tcefs_ioctl(iommu, IOMMU_IOAS_UNMAP, &u);
}

/* Read the group's TCE view and compare it with what this process mapped. Returns the mismatches. */
static int check_view(const char *when)
{
	char path[4096], line[512];
	snprintf(path, sizeof(path), "%s/sys/kernel/debug/tcefs/groups/%d/tce", mnt, group_id);
	FILE *f = fopen(path, "r");
	if (!f)
		fail("open tce view");
	int bad = 0, live = 0, want = 0;
	for (int k = 0; k < SLOTS; k++)
		want += mapped[k] ? (int)(SLICE / page) : 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long iova, tce, hpa, ua = 0;
		char perm[8], uas[32];
		if (line[0] == '#')
			continue;
		if (sscanf(line, "%llx tce=%llx %7s hpa=%llx ua=%31s", &iova, &tce, perm, &hpa, uas) != 5) {
			printf("mismatch=%s: unparsed line %s", when, line);
			bad++;
			continue;
		}
		ua = strcmp(uas, "-") ? strtoull(uas, NULL, 16) : 0;
		live++;
		uint64_t off = iova - base;
		int k = iova >= base ? (int)(off / SLICE) : -1;
		if (k < 0 || k >= SLOTS || !mapped[k]) {
			printf("mismatch=%s: TCE at 0x%llx is not one of mine (ua 0x%llx)\n", when, iova, ua);
			bad++;
			continue;
		}
		/* The TCE must point at this process's own page for that IOVA: its address, and a stable frame. */
		if (ua != (uintptr_t)va + off) {
			printf("mismatch=%s: TCE at 0x%llx has ua 0x%llx, mine is 0x%llx\n", when, iova, ua, (unsigned long long)((uintptr_t)va + off));
			bad++;
		}
		uint64_t *seen = &hpa_of[off / page];
		if (!*seen)
			*seen = hpa;
		else if (*seen != hpa) {
			printf("mismatch=%s: TCE at 0x%llx moved from hpa 0x%llx to 0x%llx\n", when, iova, (unsigned long long)*seen, hpa);
			bad++;
		}
	}
	fclose(f);
	if (live != want) {
		printf("mismatch=%s: %d live TCEs, %d expected\n", when, live, want);
		bad++;
	}
	failures += bad;
	fflush(stdout);
	return bad;
}

/* Take the group and set up its DMA, stopping after `stop` if given (the crash tests kill it there). */
static void setup(const char *stop)
{
	char rel[64];
#define STEP(name)                                   \
	do {                                         \
		if (stop && !strcmp(stop, name)) {   \
			printf("ready\n");           \
			fflush(stdout);              \
			for (;;)                     \
				pause();             \
		}                                    \
	} while (0)
	if (is_spapr()) {
		snprintf(rel, sizeof(rel), "dev/vfio/%d", group_id);
		if ((g = node(rel)) < 0)
			fail("open group");
		if ((c = node("dev/vfio/vfio")) < 0)
			fail("open container");
		if (tcefs_ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) < 0)
			fail("set container");
		STEP("set_container");
		if (tcefs_ioctl(c, VFIO_SET_IOMMU, (void *)VFIO_SPAPR_TCE_v2_IOMMU) < 0)
			fail("set iommu");
		struct vfio_iommu_spapr_register_memory reg = { .argsz = sizeof(reg), .vaddr = (uintptr_t)va, .size = SLOTS * SLICE };
		if (tcefs_ioctl(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg) < 0)
			fail("register");
		STEP("register");
		if (!strcmp(mode, "spapr64k")) {
			struct vfio_iommu_spapr_tce_remove rm = { .argsz = sizeof(rm), .start_addr = 0 };
			if (tcefs_ioctl(c, VFIO_IOMMU_SPAPR_TCE_REMOVE, &rm) < 0)
				fail("remove default window");
			struct vfio_iommu_spapr_tce_create cr = { .argsz = sizeof(cr), .page_shift = 16, .window_size = 1ULL << 30, .levels = 1 };
			if (tcefs_ioctl(c, VFIO_IOMMU_SPAPR_TCE_CREATE, &cr) < 0)
				fail("create");
			base = cr.start_addr;
			page = 0x10000;
		} else {
			struct vfio_iommu_spapr_tce_info info = { .argsz = sizeof(info) };
			if (tcefs_ioctl(c, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &info) < 0)
				fail("get info");
			base = info.dma32_window_start + 0x100000;
			page = 0x1000;
		}
		STEP("create");
	} else {
		snprintf(rel, sizeof(rel), "dev/vfio/devices/%s", getenv("REL_CDEV"));
		if ((dev = node(rel)) < 0)
			fail("open cdev");
		if ((iommu = node("dev/iommu")) < 0)
			fail("open iommufd");
		struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = iommu };
		if (tcefs_ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0)
			fail("bind");
		STEP("bind");
		struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
		if (tcefs_ioctl(iommu, IOMMU_IOAS_ALLOC, &alloc) < 0)
			fail("ioas alloc");
		ioas = alloc.out_ioas_id;
		struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = ioas };
		if (tcefs_ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at) < 0)
			fail("attach");
		STEP("attach");
		base = 0x1000000;
		page = 0x1000;
	}
	if (map_slot(0) < 0)
		fail("first map");
	mapped[0] = 1;
	STEP("map");
	if (is_spapr() && getenv("REL_BDF")) {
		/* A device file from the group keeps the group in its container until it is closed too. */
		if (tcefs_ioctl(g, VFIO_GROUP_GET_DEVICE_FD, (void *)getenv("REL_BDF")) < 0)
			fail("get device fd");
		STEP("device");
	}
}

int main(int argc, char **argv)
{
	if (argc < 6)
		return 2;
	mnt = argv[1];
	mode = argv[2];
	group_id = atoi(argv[3]);
	setenv("REL_CDEV", argv[4], 1);
	const char *action = argv[5];
	/* The memory is only an address range to the emulator: reserve it, never touch it. */
	va = mmap(NULL, SLOTS * SLICE + SLICE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	va = (uint8_t *)(((uintptr_t)va + SLICE - 1) & ~(uintptr_t)(SLICE - 1));
	printf("pid=%d\nva=0x%" PRIxPTR "\nlen=0x%llx\n", getpid(), (uintptr_t)va, (unsigned long long)(SLOTS * SLICE));
	fflush(stdout);

	if (!strcmp(action, "stop")) {
		if (argc > 7)
			setenv("REL_BDF", argv[7], 1);
		setup(argc > 6 ? argv[6] : "map");
		return 1;
	}
	if (!strcmp(action, "hold")) {
		setup(NULL);
		printf("ready\n");
		fflush(stdout);
		char line[64];
		while (fgets(line, sizeof(line), stdin)) {
			int rc = is_spapr() ? tcefs_ioctl(c, VFIO_CHECK_EXTENSION, (void *)VFIO_SPAPR_TCE_v2_IOMMU)
					    : tcefs_ioctl(iommu, IOMMU_IOAS_ALLOC, &(struct iommu_ioas_alloc){ .size = sizeof(struct iommu_ioas_alloc) });
			if (rc < 0)
				printf("after=-%s\n", strerrorname_np(errno));
			else
				printf("after=%d\n", rc);
			fflush(stdout);
		}
		return 0;
	}
	if (strcmp(action, "run") || argc < 7)
		return 2;
	double seconds = atof(argv[6]);
	setup(NULL);
	check_view("setup");
	srand(getpid());
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long ops = 0, checks = 1;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		/* At least MIN_OPS calls however slow the machine, so that every client interleaves with the others. */
		if (now.tv_sec - t0.tv_sec + (now.tv_nsec - t0.tv_nsec) / 1e9 >= seconds && ops >= MIN_OPS)
			break;
		int k = rand() % SLOTS;
		if (mapped[k] ? unmap_slot(k) < 0 : map_slot(k) < 0)
			fail(mapped[k] ? "unmap" : "map");
		mapped[k] = !mapped[k];
		/* An iommufd pins per mapping: a page unmapped and mapped again may get another frame. Registered
		   (preregistered) memory stays pinned, so under SPAPR a page keeps its frame for good. */
		if (!mapped[k] && !is_spapr())
			memset(&hpa_of[k * SLICE / page], 0, SLICE / page * sizeof(hpa_of[0]));
		if (++ops % 16 == 0) {
			check_view("loop");
			checks++;
		}
	}
	for (int k = 0; k < SLOTS; k++)
		if (mapped[k]) {
			if (unmap_slot(k) < 0)
				fail("final unmap");
			mapped[k] = 0;
		}
	check_view("unmapped");
	checks++;
	printf("ops=%ld\nchecks=%ld\nfailures=%d\n", ops, checks, failures);
	close(dev);
	close(iommu);
	close(c);
	close(g);
	return failures ? 1 : 0;
}
