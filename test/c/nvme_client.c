// A user-space NVMe driver (in the manner of SPDK's) for the default topology's NVMe function, written
// against the kernel ABI only. It maps one buffer for DMA through a SPAPR v2 container or an iommufd
// IOAS, turns on memory decoding and bus mastering, puts the admin queues in that buffer, enables the
// controller, identifies it, creates an I/O queue pair whose completions arrive on an MSI-X eventfd,
// writes a pattern through a PRP list, flushes, reads it back, sends bad commands, shuts the controller
// down, and finally points a read at an IOVA with no TCE so that the PE freezes. key=value output.
//
// usage: nvme_client spapr|iommufd BDF GROUP [verify|kill|intx]
//   verify: write nothing; read the pattern back from what the namespace already holds.
//   kill: fill the I/O queue with writes, ring, and SIGKILL itself before they complete.
//   intx: completions on the INTx eventfd (MSI-X left off), unmasked after each interrupt.
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
#include <linux/vfio.h>
#include <linux/iommufd.h>

#define REG_CAP 0x00
#define REG_VS 0x08
#define REG_CC 0x14
#define REG_CSTS 0x1c
#define REG_AQA 0x24
#define REG_ASQ 0x28
#define REG_ACQ 0x30
#define DOORBELL(i) (0x1000 + (i) * 4)
#define CC_EN 1u
#define CC_QES ((6u << 16) | (4u << 20))

#define BUF (2u << 20)
#define IOVA 0x100000ull
#define IOVA_UNMAPPED 0x800000ull
/* Where things live in the buffer (offsets; IOVA + offset on the bus). */
#define O_ASQ 0x0000
#define O_ACQ 0x1000
#define O_IOSQ 0x2000
#define O_IOCQ 0x3000
#define O_ID 0x4000
#define O_LIST 0x5000
#define O_WRITE 0x10000
#define O_READ 0x20000
#define QSIZE 16
#define XFER (32u << 10)
#define SLBA 16

static int dev;
static uint64_t bar0;
static unsigned char *mem;
static const char *group;

static void show(const char *key, long rc)
{
	if (rc >= 0)
		printf("%s=%ld\n", key, rc);
	else
		printf("%s=-%s\n", key, strerrorname_np(errno));
	fflush(stdout);
}

static uint32_t rd32(uint32_t reg)
{
	uint32_t v = 0;
	if (pread(dev, &v, 4, (off_t)(bar0 + reg)) != 4)
		printf("pread_%x=-%s\n", reg, strerrorname_np(errno));
	return v;
}

static uint64_t rd64(uint32_t reg)
{
	uint64_t v = 0;
	if (pread(dev, &v, 8, (off_t)(bar0 + reg)) != 8)
		printf("pread_%x=-%s\n", reg, strerrorname_np(errno));
	return v;
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

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	nanosleep(&ts, NULL);
}

/* CSTS until (csts & mask) == want, or all ones; 5 s at most. */
static uint32_t wait_csts(uint32_t mask, uint32_t want)
{
	uint32_t s = 0;
	for (int i = 0; i < 50000; i++) {
		s = rd32(REG_CSTS);
		if (s == 0xffffffffu || (s & mask) == want)
			break;
		pause_us(100);
	}
	return s;
}

struct queue {
	unsigned qid, off_sq, off_cq, tail, head, phase;
};

static struct queue admin = { 0, O_ASQ, O_ACQ, 0, 0, 1 }, io = { 1, O_IOSQ, O_IOCQ, 0, 0, 1 };
static uint16_t next_cid = 1;

struct sqe {
	uint32_t cdw0, nsid, cdw2, cdw3;
	uint64_t mptr, prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

static uint16_t submit(struct queue *q, struct sqe *e)
{
	uint16_t cid = next_cid++;
	e->cdw0 = (e->cdw0 & 0xffff) | ((uint32_t)cid << 16);
	memcpy(mem + q->off_sq + q->tail * 64, e, 64);
	q->tail = (q->tail + 1) % QSIZE;
	__sync_synchronize();
	wr32(DOORBELL(2 * q->qid), q->tail);
	return cid;
}

/* Polls the CQ for the next entry (phase tag); returns its status field, or -1 after 5 s. */
static int reap(struct queue *q, uint32_t *dw0, uint16_t *cid)
{
	volatile uint32_t *e = (volatile uint32_t *)(mem + q->off_cq + q->head * 16);
	for (int i = 0; i < 50000; i++) {
		if (((e[3] >> 16) & 1) == q->phase) {
			if (dw0)
				*dw0 = e[0];
			if (cid)
				*cid = e[3] & 0xffff;
			int status = (e[3] >> 17) & 0x7ff;
			q->head = (q->head + 1) % QSIZE;
			if (q->head == 0)
				q->phase ^= 1;
			wr32(DOORBELL(2 * q->qid + 1), q->head);
			return status;
		}
		pause_us(100);
	}
	return -1;
}

static int run(struct queue *q, struct sqe *e, uint32_t *dw0)
{
	uint16_t cid = submit(q, e), got = 0;
	int st = reap(q, dw0, &got);
	return st >= 0 && got != cid ? -2 : st;
}

/* ---- interrupts: MSI-X vectors 0 (admin) and 1 (I/O) on eventfds, or INTx on one ---- */

static int efd[2] = { -1, -1 };
static int intx;

static long arm_intx(void)
{
	char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	struct vfio_irq_set *s = (void *)buf;
	int32_t fd = efd[0] = efd[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->argsz = sizeof(buf);
	s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	s->index = VFIO_PCI_INTX_IRQ_INDEX;
	s->start = 0;
	s->count = 1;
	memcpy(s->data, &fd, sizeof(fd));
	return ioctl(dev, VFIO_DEVICE_SET_IRQS, s);
}

/* INTx is masked by the host when it fires; the driver unmasks it once it has looked at its queues. */
static void unmask_intx(void)
{
	struct vfio_irq_set s = { .argsz = sizeof(s), .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
		.index = VFIO_PCI_INTX_IRQ_INDEX, .start = 0, .count = 1 };
	if (ioctl(dev, VFIO_DEVICE_SET_IRQS, &s))
		printf("unmask=-%s\n", strerrorname_np(errno));
}

static long arm_msix(void)
{
	char buf[sizeof(struct vfio_irq_set) + 2 * sizeof(int32_t)];
	struct vfio_irq_set *s = (void *)buf;
	int32_t fds[2];
	for (int i = 0; i < 2; i++)
		fds[i] = efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->argsz = sizeof(buf);
	s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	s->index = VFIO_PCI_MSIX_IRQ_INDEX;
	s->start = 0;
	s->count = 2;
	memcpy(s->data, fds, sizeof(fds));
	return ioctl(dev, VFIO_DEVICE_SET_IRQS, s);
}

/* Interrupts counted on vector v so far (drains the eventfd); waits up to 5 s for one. */
static uint64_t fired(int v)
{
	struct pollfd p = { .fd = efd[v], .events = POLLIN };
	uint64_t n = 0;
	if (poll(&p, 1, 5000) == 1 && read(efd[v], &n, sizeof(n)) != sizeof(n))
		n = 0;
	if (intx)
		unmask_intx();
	return n;
}

/* Takes whatever interrupts are outstanding, so that the next one counted is the next one raised. */
static void drain(void)
{
	for (int i = 0; i < 20; i++) {
		struct pollfd p[2] = { { .fd = efd[0], .events = POLLIN }, { .fd = efd[1], .events = POLLIN } };
		uint64_t n;
		if (poll(p, 2, 100) <= 0)
			return;
		/* With INTx both entries are one eventfd: the second read may find it empty (EAGAIN). */
		for (int v = 0; v < 2; v++)
			if (p[v].revents & POLLIN && read(efd[v], &n, sizeof(n)) < 0 && errno != EAGAIN)
				return;
		if (intx)
			unmask_intx();
	}
}

/* ---- DMA setup ---- */

static int container;

static int spapr_setup(const char *bdf)
{
	char path[64];
	container = open("/dev/vfio/vfio", O_RDWR);
	snprintf(path, sizeof(path), "/dev/vfio/%s", group);
	int g = open(path, O_RDWR);
	show("set_container", ioctl(g, VFIO_GROUP_SET_CONTAINER, &container));
	show("set_iommu", ioctl(container, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU));
	struct vfio_iommu_spapr_register_memory reg = { .argsz = sizeof(reg), .vaddr = (uintptr_t)mem, .size = BUF };
	show("register", ioctl(container, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg));
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)mem, .iova = IOVA, .size = BUF };
	/* The default 32-bit window (64K TCEs) is there already. */
	show("map", ioctl(container, VFIO_IOMMU_MAP_DMA, &m));
	return ioctl(g, VFIO_GROUP_GET_DEVICE_FD, bdf);
}

#include "cdev_test.h"

static int iommufd_setup(const char *bdf)
{
	int i;
	__u32 ioas;
	int d = cdev_attach(bdf, &i, &ioas);
	struct iommu_ioas_map m = { .size = sizeof(m), .ioas_id = ioas, .length = BUF, .user_va = (uintptr_t)mem, .iova = IOVA,
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE };
	show("map", ioctl(i, IOMMU_IOAS_MAP, &m));
	return d;
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

static void trimmed(const char *key, const unsigned char *s, int n)
{
	while (n > 0 && s[n - 1] == ' ')
		n--;
	printf("%s=%.*s\n", key, n, s);
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return fprintf(stderr, "usage: nvme_client spapr|iommufd BDF GROUP [verify|kill]\n"), 2;
	int verify = argc > 4 && !strcmp(argv[4], "verify");
	int kill_self = argc > 4 && !strcmp(argv[4], "kill");
	intx = argc > 4 && !strcmp(argv[4], "intx");
	group = argv[3];
	size_t align = 1 << 16;
	void *p = mmap(NULL, BUF + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return perror("mmap"), 1;
	mem = (unsigned char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	memset(mem, 0, BUF);
	dev = !strcmp(argv[1], "spapr") ? spapr_setup(argv[2]) : iommufd_setup(argv[2]);
	show("device", dev);
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX };
	show("region_info", ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri));
	bar0 = ri.offset;
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg);
	uint16_t cmd = 0x6; /* memory decoding, bus master */
	show("enable_memory", pwrite(dev, &cmd, 2, (off_t)cfg.offset + 4));

	uint64_t cap = rd64(REG_CAP);
	printf("mqes=%llu\ndstrd=%llu\nmpsmax=%llu\ncss_nvm=%llu\n", (unsigned long long)(cap & 0xffff), (unsigned long long)((cap >> 32) & 0xf),
	       (unsigned long long)((cap >> 52) & 0xf), (unsigned long long)((cap >> 37) & 1));
	printf("vs=0x%x\n", rd32(REG_VS));
	printf("cap_halves=%d\n", (uint64_t)rd32(REG_CAP) | ((uint64_t)rd32(REG_CAP + 4) << 32) ? ((uint64_t)rd32(REG_CAP) | ((uint64_t)rd32(REG_CAP + 4) << 32)) == cap : 0);

	/* Admin queues in the mapped buffer, then enable. */
	wr32(REG_CC, 0);
	printf("disabled=0x%x\n", wait_csts(1, 0));
	wr32(REG_AQA, ((QSIZE - 1) << 16) | (QSIZE - 1));
	wr64(REG_ASQ, IOVA + O_ASQ);
	wr64(REG_ACQ, IOVA + O_ACQ);
	wr32(REG_CC, CC_EN | CC_QES);
	printf("ready=0x%x\n", wait_csts(1, 1));
	show("set_irqs", intx ? arm_intx() : arm_msix());

	struct sqe e = { .cdw0 = 0x06, .prp1 = IOVA + O_ID, .cdw10 = 1 };
	printf("identify_ctrl=%d\n", run(&admin, &e, NULL));
	trimmed("model", mem + O_ID + 24, 40);
	printf("nn=%u\n", *(uint32_t *)(mem + O_ID + 516));
	printf("admin_irq=%d\n", fired(0) > 0);
	e = (struct sqe){ .cdw0 = 0x06, .nsid = 1, .prp1 = IOVA + O_ID, .cdw10 = 0 };
	printf("identify_ns=%d\n", run(&admin, &e, NULL));
	printf("nsze=%llu\n", (unsigned long long)*(uint64_t *)(mem + O_ID));
	printf("lbads=%u\n", mem[O_ID + 128 + 2]);
	uint32_t dw0 = 0;
	e = (struct sqe){ .cdw0 = 0x09, .cdw10 = 0x07, .cdw11 = 0 };
	printf("set_queues=%d\n", run(&admin, &e, &dw0));
	printf("queues=0x%x\n", dw0);
	e = (struct sqe){ .cdw0 = 0x05, .prp1 = IOVA + O_IOCQ, .cdw10 = ((QSIZE - 1) << 16) | 1, .cdw11 = (1u << 16) | 3 };
	printf("create_cq=%d\n", run(&admin, &e, NULL));
	e = (struct sqe){ .cdw0 = 0x01, .prp1 = IOVA + O_IOSQ, .cdw10 = ((QSIZE - 1) << 16) | 1, .cdw11 = (1u << 16) | 1 };
	printf("create_sq=%d\n", run(&admin, &e, NULL));
	drain();

	/* 32 KiB at LBA 16: PRP1 the first 4K page, PRP2 a list of the seven others. */
	for (unsigned i = 0; i < XFER; i++)
		mem[O_WRITE + i] = (unsigned char)(i * 31 + 7);
	uint64_t *list = (uint64_t *)(mem + O_LIST);
	for (unsigned i = 1; i < XFER / 4096; i++)
		list[i - 1] = IOVA + O_WRITE + i * 4096;
	if (kill_self) {
		for (unsigned i = 0; i < QSIZE - 1; i++) {
			e = (struct sqe){ .cdw0 = 0x01, .nsid = 1, .prp1 = IOVA + O_WRITE, .prp2 = IOVA + O_LIST, .cdw10 = SLBA + i * 64, .cdw12 = XFER / 512 - 1 };
			submit(&io, &e);
		}
		printf("killing=1\n");
		fflush(stdout);
		raise(SIGKILL);
	}
	if (!verify) {
		e = (struct sqe){ .cdw0 = 0x01, .nsid = 1, .prp1 = IOVA + O_WRITE, .prp2 = IOVA + O_LIST, .cdw10 = SLBA, .cdw12 = XFER / 512 - 1 };
		printf("write=%d\n", run(&io, &e, NULL));
		printf("io_irq=%d\n", fired(1) > 0);
		e = (struct sqe){ .cdw0 = 0x00, .nsid = 1 };
		printf("flush=%d\n", run(&io, &e, NULL));
	}
	for (unsigned i = 1; i < XFER / 4096; i++)
		list[i - 1] = IOVA + O_READ + i * 4096;
	e = (struct sqe){ .cdw0 = 0x02, .nsid = 1, .prp1 = IOVA + O_READ, .prp2 = IOVA + O_LIST, .cdw10 = SLBA, .cdw12 = XFER / 512 - 1 };
	printf("read=%d\n", run(&io, &e, NULL));
	printf("readback=%s\n", !memcmp(mem + O_READ, mem + O_WRITE, XFER) ? "ok" : "bad");
	if (verify)
		return 0;

	/* Bad commands: LBA past the namespace, an unknown opcode, an unknown namespace. */
	uint64_t nsze = *(uint64_t *)(mem + O_ID);
	e = (struct sqe){ .cdw0 = 0x02, .nsid = 1, .prp1 = IOVA + O_READ, .cdw10 = (uint32_t)nsze, .cdw11 = (uint32_t)(nsze >> 32) };
	printf("lba_range=0x%x\n", run(&io, &e, NULL));
	e = (struct sqe){ .cdw0 = 0x7e, .nsid = 1 };
	printf("bad_opcode=0x%x\n", run(&io, &e, NULL));
	e = (struct sqe){ .cdw0 = 0x02, .nsid = 9, .prp1 = IOVA + O_READ };
	printf("bad_ns=0x%x\n", run(&io, &e, NULL));

	/* Shutdown notification: SHST reports complete. */
	wr32(REG_CC, CC_EN | CC_QES | (1u << 14));
	printf("shst=%u\n", (wait_csts(0xc, 0x8) >> 2) & 3);
	wr32(REG_CC, CC_EN | CC_QES);

	/* A read into an IOVA with no TCE: the PE freezes, MMIO reads all ones, no completion arrives. */
	e = (struct sqe){ .cdw0 = 0x02, .nsid = 1, .prp1 = IOVA_UNMAPPED, .cdw10 = SLBA };
	submit(&io, &e);
	printf("fault_csts=0x%x\n", wait_csts(0xffffffffu, 0xffffffffu));
	view_faults();
	return 0;
}
