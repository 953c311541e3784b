// Interrupt latency under the preload shim: a DATA_NONE|ACTION_TRIGGER SET_IRQS on an armed MSI-X
// vector until its eventfd is readable, against a VFIO_DEVICE_GET_IRQ_INFO (one FUSE round trip).
//
// Paced: one call at a time with a pause before each, so the delivery thread has re-armed its read and
// the interrupt's own path is what is timed; the kinds alternate call by call, and each block prints
// the medians. Besides the loopback trigger, the device raises the vector (a control-node write, one
// FUSE request, standing in for a device model inside the daemon) until the eventfd is readable. Back to back: blocks of calls without pauses, where every interrupt also pays for
// the thread's next read (a third FUSE request besides the ioctl's write and read).
// Prints "paced_rt=NS paced_irq=NS paced_raise=NS rt=NS irq=NS" per block (ns per operation).
//
// usage: irq_bench BDF BLOCKS PER_BLOCK
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>

static uint64_t now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int device(const char *bdf)
{
	char link[256], target[256], gpath[64];
	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return -1;
	target[n] = 0;
	snprintf(gpath, sizeof(gpath), "/dev/vfio/%s", strrchr(target, '/') + 1);
	int c = open("/dev/vfio/vfio", O_RDWR), g = open(gpath, O_RDWR);
	if (ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) || ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU))
		return -1;
	return ioctl(g, VFIO_GROUP_GET_DEVICE_FD, bdf);
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	int blocks = atoi(argv[2]), per = atoi(argv[3]);
	int d = device(argv[1]), e = eventfd(0, 0);
	unsigned char buf[sizeof(struct vfio_irq_set) + 4];
	struct vfio_irq_set *s = (void *)buf;
	*s = (struct vfio_irq_set){ .argsz = sizeof(buf), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 1 };
	memcpy(s->data, &e, 4);
	if (d < 0 || ioctl(d, VFIO_DEVICE_SET_IRQS, s)) {
		perror("irq_bench: setup");
		return 1;
	}
	struct vfio_irq_set trig = { .argsz = sizeof(trig), .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 1 };
	struct vfio_irq_info info = { .argsz = sizeof(info), .index = VFIO_PCI_MSIX_IRQ_INDEX };
	/* The device side raises through the control node, as a device model inside the daemon would. */
	char ctl[4096], cmd[64];
	snprintf(ctl, sizeof(ctl), "%s/.tcefs/control", getenv("TCEFS_MOUNT"));
	int c = open(ctl, O_WRONLY);
	int cmdlen = snprintf(cmd, sizeof(cmd), "irq %s %d 0\n", argv[1], VFIO_PCI_MSIX_IRQ_INDEX);
	uint64_t *prt = calloc(per, 8), *pirq = calloc(per, 8), *praise = calloc(per, 8);
	for (int b = -1; b < blocks; b++) { /* block -1 warms up */
		for (int i = 0; i < per; i++) {
			uint64_t v;
			usleep(300);
			uint64_t a = now();
			if (ioctl(d, VFIO_DEVICE_GET_IRQ_INFO, &info))
				return 1;
			prt[i] = now() - a;
			usleep(300);
			a = now();
			if (ioctl(d, VFIO_DEVICE_SET_IRQS, &trig) || read(e, &v, 8) != 8)
				return 1;
			pirq[i] = now() - a;
			usleep(300);
			a = now();
			if (write(c, cmd, cmdlen) != cmdlen || read(e, &v, 8) != 8)
				return 1;
			praise[i] = now() - a;
		}
		qsort(prt, per, 8, cmp);
		qsort(pirq, per, 8, cmp);
		qsort(praise, per, 8, cmp);
		uint64_t t0 = now();
		for (int i = 0; i < per; i++)
			if (ioctl(d, VFIO_DEVICE_GET_IRQ_INFO, &info))
				return 1;
		uint64_t t1 = now();
		for (int i = 0; i < per; i++) {
			uint64_t v;
			if (ioctl(d, VFIO_DEVICE_SET_IRQS, &trig) || read(e, &v, 8) != 8)
				return 1;
		}
		uint64_t t2 = now();
		if (b >= 0)
			printf("paced_rt=%llu paced_irq=%llu paced_raise=%llu rt=%llu irq=%llu\n", (unsigned long long)prt[per / 2],
			       (unsigned long long)pirq[per / 2], (unsigned long long)praise[per / 2],
			       (unsigned long long)((t1 - t0) / per), (unsigned long long)((t2 - t1) / per));
	}
	return 0;
}
