// Small BAR writes as an unmodified program makes them (QEMU's doorbells): pwrite on the device fd under
// the preload shim, which posts them down the daemon's socket (docs/protocol.md, "Posted writes"). What a
// program can see must not change: a read after writes sees the last one, a write with decoding off
// fails EIO at once, a bad buffer is EFAULT, a write past the BAR is shortened, and a forked child's
// writes land too. The NVMe function's AQA register (BAR0 0x24, bits 0x0fff0fff) holds what was written.
//
// usage: posted_writes BDF     key=value output
#define _GNU_SOURCE
#include "shim_test.h"
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vfio.h>

#define AQA 0x24

static int dev;
static uint64_t cfg_off, bar0_off, bar0_size;

static int region(unsigned index, uint64_t *off, uint64_t *size)
{
	struct vfio_region_info r = { .argsz = sizeof(r), .index = index };
	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r))
		return -1;
	*off = r.offset, *size = r.size;
	return 0;
}

static void command(uint16_t v)
{
	pwrite(dev, &v, 2, (off_t)(cfg_off + 4));
}

static uint32_t aqa(void)
{
	uint32_t v = 0xdeadbeef;
	return pread(dev, &v, 4, (off_t)(bar0_off + AQA)) == 4 ? v : 0xdeadbeef;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	char path[PATH_MAX], link[PATH_MAX];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", argv[1]);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return perror(path), 1;
	link[n] = 0;
	snprintf(path, sizeof(path), "/dev/vfio/%s", basename(link));
	int g = open(path, O_RDWR), c = open("/dev/vfio/vfio", O_RDWR);
	if (ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) || ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU))
		return perror("container"), 1;
	dev = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, argv[1]);
	uint64_t cfg_size;
	if (dev < 0 || region(VFIO_PCI_CONFIG_REGION_INDEX, &cfg_off, &cfg_size) || region(VFIO_PCI_BAR0_REGION_INDEX, &bar0_off, &bar0_size))
		return perror("device"), 1;

	command(0x2); /* memory decoding on */
	int all = 1;
	for (uint32_t i = 1; i <= 1000; i++) {
		uint32_t v = (i & 0xfff) | ((i & 0xfff) << 16);
		all &= pwrite(dev, &v, 4, (off_t)(bar0_off + AQA)) == 4;
	}
	check("writes_answered", all);
	/* A read pushes the writes before it: it sees the thousandth. */
	printf("aqa_after_writes=0x%08x\n", aqa());

	/* Decoding off through config space, then a write at once: vfio-pci's EIO, not a posted success. */
	command(0x0);
	uint32_t v = 0x00070007;
	show("write_decode_off", pwrite(dev, &v, 4, (off_t)(bar0_off + AQA)));
	command(0x2);
	show("write_decode_on", pwrite(dev, &v, 4, (off_t)(bar0_off + AQA)));
	printf("aqa_after_decode_on=0x%08x\n", aqa());

	/* An address nothing is mapped at, hidden from the compiler's bounds checks. */
	const void *volatile bad = (const void *)16;
	show("write_bad_buffer", pwrite(dev, bad, 4, (off_t)(bar0_off + AQA)));
	uint64_t w = 0;
	show("write_across_end", pwrite(dev, &w, 8, (off_t)(bar0_off + bar0_size - 4)));
	show("write_past_end", pwrite(dev, &w, 4, (off_t)(bar0_off + bar0_size)));

	/* A forked child shares the open file: its writes land in the same register. */
	pid_t p = fork();
	if (p == 0) {
		uint32_t cv = 0x00030003;
		_exit(pwrite(dev, &cv, 4, (off_t)(bar0_off + AQA)) == 4 ? 0 : 1);
	}
	int st = 0;
	waitpid(p, &st, 0);
	check("child_wrote", WIFEXITED(st) && WEXITSTATUS(st) == 0);
	printf("aqa_after_child=0x%08x\n", aqa());

	/* The fd closed and its number reused for another open of the device: writes still land. */
	close(dev);
	dev = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, argv[1]);
	command(0x2);
	v = 0x00050005;
	show("write_reopened", pwrite(dev, &v, 4, (off_t)(bar0_off + AQA)));
	printf("aqa_after_reopen=0x%08x\n", aqa());
	close(dev);
	close(g);
	close(c);
	return 0;
}
