// A user-space driver for the tcefs copy engine (docs/devices.md), written against the kernel ABI only.
// It maps two buffers for DMA, programs a copy through BAR 0 register writes (pwrite on the device fd at
// the region offset), waits for completion, and checks the bytes. Then it points a copy at an IOVA with
// no TCE: the PE freezes, nothing is written, MMIO reads all ones; with the legacy container it recovers
// through VFIO_EEH_PE_OP and copies again. Run it under `tcefs run`; it prints key=value results.
//
// usage: copy_engine spapr|iommufd BDF GROUP [kill]   (kill: start a long copy, then SIGKILL itself)
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
/* vfio.h first: the generated iommufd.h would otherwise hide the system's SET_IRQS flags. */
#include <linux/vfio.h>
#include <linux/iommufd.h>

/* The engine's BAR 0 registers (docs/devices.md). */
#define REG_ID 0x00
#define REG_SRC 0x08
#define REG_DST 0x10
#define REG_LEN 0x18
#define REG_CTRL 0x20
#define REG_STATUS 0x24
#define REG_DOORBELL 0x28
#define REG_COMPLETED 0x2c
#define CTRL_IRQ (1u << 1)
#define CTRL_VECTOR(v) ((uint32_t)(v) << 16)
#define STATUS_BUSY (1u << 0)
#define STATUS_DONE (1u << 1)
#define STATUS_ERROR (1u << 2)

#define BUF (1u << 20)
#define IOVA_SRC 0x100000ull
#define IOVA_DST 0x200000ull
#define IOVA_UNMAPPED 0x400000ull

static int dev;
static uint64_t bar0;
static const char *group;

static void show(const char *key, long rc)
{
	if (rc >= 0)
		printf("%s=%ld\n", key, rc);
	else
		printf("%s=-%s\n", key, strerrorname_np(errno));
	fflush(stdout);
}

static void wr32(uint32_t reg, uint32_t v)
{
	if (pwrite(dev, &v, 4, (off_t)(bar0 + reg)) != 4)
		printf("pwrite_%x=-%s\n", reg, strerrorname_np(errno));
}

static void wr64(uint32_t reg, uint64_t v)
{
	if (pwrite(dev, &v, 8, (off_t)(bar0 + reg)) != 8)
		printf("pwrite_%x=-%s\n", reg, strerrorname_np(errno));
}

static uint32_t rd32(uint32_t reg)
{
	uint32_t v = 0;
	if (pread(dev, &v, 4, (off_t)(bar0 + reg)) != 4)
		printf("pread_%x=-%s\n", reg, strerrorname_np(errno));
	return v;
}

static void start_copy(uint64_t src, uint64_t dst, uint32_t len)
{
	wr32(REG_STATUS, STATUS_DONE | STATUS_ERROR);
	wr64(REG_SRC, src);
	wr64(REG_DST, dst);
	wr32(REG_LEN, len);
	wr32(REG_CTRL, CTRL_IRQ | CTRL_VECTOR(0));
	wr32(REG_DOORBELL, 1);
}

/* Completion by polling STATUS: until BUSY clears, or all ones (a frozen PE answers nothing else). */
static uint32_t wait_status(void)
{
	for (int i = 0; i < 20000; i++) {
		uint32_t s = rd32(REG_STATUS);
		if (s == 0xffffffffu || !(s & STATUS_BUSY))
			return s;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	return rd32(REG_STATUS);
}

/*
 * Completion by interrupt: MSI-X vector 0 signals an eventfd (VFIO_DEVICE_SET_IRQS). Kept apart from the
 * rest: where SET_IRQS is not there yet the program says so and polls STATUS alone.
 */
static int irq_fd = -1;

static long arm_msix(void)
{
	char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	struct vfio_irq_set *s = (void *)buf;
	int32_t efd = eventfd(0, EFD_CLOEXEC);
	s->argsz = sizeof(buf);
	s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	s->index = VFIO_PCI_MSIX_IRQ_INDEX;
	s->start = 0;
	s->count = 1;
	memcpy(s->data, &efd, sizeof(efd));
	long rc = ioctl(dev, VFIO_DEVICE_SET_IRQS, s);
	if (rc == 0)
		irq_fd = efd;
	else
		close(efd);
	return rc;
}

/* 1 when the completion interrupt arrived on the eventfd within 5 s, else 0. */
static int wait_msix(void)
{
	struct pollfd p = { .fd = irq_fd, .events = POLLIN };
	uint64_t n = 0;
	return poll(&p, 1, 5000) == 1 && read(irq_fd, &n, sizeof(n)) == sizeof(n) && n > 0;
}

static void view_faults(void)
{
	char path[4096], line[512];
	const char *mnt = getenv("TCEFS_MOUNT");
	snprintf(path, sizeof(path), "%s/sys/kernel/debug/tcefs/groups/%s/tce", mnt ? mnt : "", group);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "dma fault")) {
			line[strcspn(line, "\n")] = 0;
			printf("fault_view=%s\n", line + 2);
		}
	if (f)
		fclose(f);
}

/* Aligned to the emulated host's 64K pages, as SPAPR memory registration wants. */
static unsigned char *buffer(void)
{
	size_t align = 1 << 16;
	void *p = mmap(NULL, BUF + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	return p == MAP_FAILED ? NULL : (unsigned char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
}

/* ---- the legacy container over SPAPR v2 ---- */

static int container;

static int spapr_setup(const char *bdf, unsigned char *src, unsigned char *dst)
{
	char path[64];
	container = open("/dev/vfio/vfio", O_RDWR);
	snprintf(path, sizeof(path), "/dev/vfio/%s", group);
	int g = open(path, O_RDWR);
	show("set_container", ioctl(g, VFIO_GROUP_SET_CONTAINER, &container));
	show("set_iommu", ioctl(container, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU));
	struct vfio_iommu_spapr_register_memory reg = { .argsz = sizeof(reg) };
	reg.vaddr = (uintptr_t)src, reg.size = BUF;
	show("register_src", ioctl(container, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg));
	reg.vaddr = (uintptr_t)dst;
	show("register_dst", ioctl(container, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg));
	struct vfio_iommu_spapr_tce_remove rm = { .argsz = sizeof(rm), .start_addr = 0 };
	show("remove_default", ioctl(container, VFIO_IOMMU_SPAPR_TCE_REMOVE, &rm));
	struct vfio_iommu_spapr_tce_create cr = { .argsz = sizeof(cr), .page_shift = 12, .window_size = 1ull << 30, .levels = 1 };
	show("create", ioctl(container, VFIO_IOMMU_SPAPR_TCE_CREATE, &cr));
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE };
	m.vaddr = (uintptr_t)src, m.iova = IOVA_SRC, m.size = BUF;
	show("map_src", ioctl(container, VFIO_IOMMU_MAP_DMA, &m));
	m.vaddr = (uintptr_t)dst, m.iova = IOVA_DST;
	show("map_dst", ioctl(container, VFIO_IOMMU_MAP_DMA, &m));
	struct vfio_eeh_pe_op op = { .argsz = sizeof(op), .op = VFIO_EEH_PE_ENABLE };
	show("eeh_enable", ioctl(container, VFIO_EEH_PE_OP, &op));
	return ioctl(g, VFIO_GROUP_GET_DEVICE_FD, bdf);
}

static long eeh(unsigned op_code)
{
	struct vfio_eeh_pe_op op = { .argsz = sizeof(op), .op = op_code };
	return ioctl(container, VFIO_EEH_PE_OP, &op);
}

/* ---- iommufd and the VFIO cdev ---- */

#include "cdev_test.h"

static int iommufd_setup(const char *bdf, unsigned char *src, unsigned char *dst)
{
	int i;
	__u32 ioas;
	int d = cdev_attach(bdf, &i, &ioas);
	struct iommu_ioas_map m = { .size = sizeof(m), .ioas_id = ioas, .length = BUF,
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE };
	m.user_va = (uintptr_t)src, m.iova = IOVA_SRC;
	show("map_src", ioctl(i, IOMMU_IOAS_MAP, &m));
	m.user_va = (uintptr_t)dst, m.iova = IOVA_DST;
	show("map_dst", ioctl(i, IOMMU_IOAS_MAP, &m));
	return d;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return fprintf(stderr, "usage: copy_engine spapr|iommufd BDF GROUP [kill]\n"), 2;
	int spapr = !strcmp(argv[1], "spapr");
	group = argv[3];
	unsigned char *src = buffer(), *dst = buffer();
	if (!src || !dst)
		return perror("mmap"), 1;
	for (unsigned i = 0; i < BUF; i++)
		src[i] = (unsigned char)(i * 13 + 1);
	memset(dst, 0x5a, BUF);
	dev = spapr ? spapr_setup(argv[2], src, dst) : iommufd_setup(argv[2], src, dst);
	show("device", dev);
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX };
	show("region_info", ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri));
	bar0 = ri.offset;
	/* BAR access needs memory decoding, and the engine's DMA bus mastering, as on any PCI function. */
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	show("config_info", ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg));
	uint16_t cmd = 0x6;
	show("enable_memory", pwrite(dev, &cmd, 2, (off_t)cfg.offset + 4));
	printf("id=0x%08x\n", rd32(REG_ID));

	if (argc > 4 && !strcmp(argv[4], "kill")) {
		/* The whole buffer, then gone before the engine is done. */
		start_copy(IOVA_SRC, IOVA_DST, BUF);
		printf("killing=1\n");
		fflush(stdout);
		raise(SIGKILL);
	}

	/* A copy that crosses IOMMU pages at odd offsets. */
	long armed = arm_msix();
	show("set_irqs", armed);
	start_copy(IOVA_SRC + 0x123, IOVA_DST + 0x7ff, 0x5432);
	if (armed == 0)
		printf("msix=%d\n", wait_msix());
	uint32_t s = wait_status();
	printf("status=0x%x\n", s);
	printf("completed=%u\n", rd32(REG_COMPLETED));
	printf("copy=%s\n", !memcmp(dst + 0x7ff, src + 0x123, 0x5432) && dst[0x7fe] == 0x5a && dst[0x7ff + 0x5432] == 0x5a ? "ok" : "bad");

	/* Register accesses of any size and offset: taken, or refused past the BAR. */
	unsigned char junk[16] = { 0 };
	show("odd_write", pwrite(dev, junk, 3, (off_t)(bar0 + 0x25)));
	show("odd_read", pread(dev, junk, 7, (off_t)(bar0 + 0x31)));
	/* vfio-pci shortens an access that runs past the end of a BAR */
	show("past_bar", pwrite(dev, junk, 8, (off_t)(bar0 + ri.size - 4)));

	/* A copy to an IOVA with no TCE: the PE freezes and nothing lands anywhere. */
	memset(dst, 0x5a, BUF);
	start_copy(IOVA_SRC, IOVA_UNMAPPED, 0x1000);
	s = wait_status();
	printf("fault_status=0x%x\n", s);
	printf("fault_mmio=0x%08x\n", rd32(REG_ID));
	int untouched = 1;
	for (unsigned i = 0; i < BUF; i++)
		untouched &= dst[i] == 0x5a;
	printf("untouched=%d\n", untouched);
	view_faults();
	if (spapr) {
		show("eeh_state", eeh(VFIO_EEH_PE_GET_STATE));
		show("unfreeze_io", eeh(VFIO_EEH_PE_UNFREEZE_IO));
		printf("error_status=0x%x\n", rd32(REG_STATUS));
		show("unfreeze_dma", eeh(VFIO_EEH_PE_UNFREEZE_DMA));
		show("eeh_state_after", eeh(VFIO_EEH_PE_GET_STATE));
		start_copy(IOVA_SRC, IOVA_DST, 0x1000);
		printf("recovered_status=0x%x\n", wait_status());
		printf("recovered=%s\n", !memcmp(dst, src, 0x1000) ? "ok" : "bad");
	}
	return 0;
}
