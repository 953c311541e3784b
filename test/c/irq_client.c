// Interrupts through VFIO_DEVICE_SET_IRQS under the preload shim: eventfds attached to MSI-X, MSI and
// INTx vectors become readable when the user triggers them (DATA_NONE, DATA_BOOL) or the device raises
// them (the control node's "irq" command); INTx automasks, stays pending while masked and fires on
// unmask; count 0 disables; the errnos of bad calls; delivery after fork. Prints key=value lines.
//
// usage: irq_client BDF           the whole sequence
//        irq_client BDF armed     arm MSI-X vectors, print armed=1, then wait to be killed
//        irq_client BDF cdev NODE through the function's cdev NODE bound to an iommufd
//        irq_client BDF req       arm the request notifier and wait for it (the device being removed)
#define _GNU_SOURCE
#include "shim_test.h"
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vfio.h>

static const char *bdf;

static int set_irqs(int d, unsigned flags, unsigned index, unsigned start, unsigned count, const void *data, size_t len)
{
	unsigned char buf[sizeof(struct vfio_irq_set) + 256] = { 0 };
	struct vfio_irq_set *s = (void *)buf;
	s->argsz = sizeof(*s) + len;
	s->flags = flags;
	s->index = index;
	s->start = start;
	s->count = count;
	memcpy(s->data, data, len);
	return ioctl(d, VFIO_DEVICE_SET_IRQS, s);
}

static int set_fds(int d, unsigned index, unsigned start, unsigned count, const int32_t *fds)
{
	return set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, start, count, fds, 4 * count);
}

static int action(int d, unsigned act, unsigned index, unsigned start, unsigned count)
{
	return set_irqs(d, VFIO_IRQ_SET_DATA_NONE | act, index, start, count, NULL, 0);
}

/* Waits for the eventfd (a bounded wait, so a lost interrupt fails instead of hanging), then reads it. */
static long fired(int e, int wait_ms)
{
	struct pollfd p = { .fd = e, .events = POLLIN };
	if (poll(&p, 1, wait_ms) != 1)
		return 0;
	uint64_t v = 0;
	return read(e, &v, 8) == 8 ? (long)v : -1;
}

static void raise_irq(unsigned index, unsigned vector)
{
	char path[4096], cmd[128];
	snprintf(path, sizeof(path), "%s/.tcefs/control", getenv("TCEFS_MOUNT"));
	int c = open(path, O_WRONLY);
	int n = snprintf(cmd, sizeof(cmd), "irq %s %u %u\n", bdf, index, vector);
	if (c < 0 || write(c, cmd, n) != n)
		printf("raise_failed=%s\n", strerrorname_np(errno));
	close(c);
}

static unsigned config16(int d, unsigned off)
{
	uint16_t v = 0;
	pread(d, &v, 2, ((off_t)VFIO_PCI_CONFIG_REGION_INDEX << 40) + off);
	return v;
}

/* Offset of a capability in config space, 0 if none. */
static unsigned cap(int d, unsigned id)
{
	for (unsigned at = config16(d, 0x34) & 0xfc; at >= 0x40; at = (config16(d, at) >> 8) & 0xfc)
		if ((config16(d, at) & 0xff) == id)
			return at;
	return 0;
}

static int open_device(void)
{
	int c = open("/dev/vfio/vfio", O_RDWR);
	char gpath[64];
	int group = -1;
	char link[256], target[256];
	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n > 0) {
		target[n] = 0;
		group = atoi(strrchr(target, '/') + 1);
	}
	snprintf(gpath, sizeof(gpath), "/dev/vfio/%d", group);
	int g = open(gpath, O_RDWR);
	if (ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) || ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU))
		return -1;
	return ioctl(g, VFIO_GROUP_GET_DEVICE_FD, bdf);
}

static void info(int d)
{
	static const char *names[] = { "intx", "msi", "msix", "err", "req" };
	for (unsigned i = 0; i < 5; i++) {
		struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = i };
		char key[32];
		snprintf(key, sizeof(key), "info_%s", names[i]);
		show(key, ioctl(d, VFIO_DEVICE_GET_IRQ_INFO, &ii) ? -1 : (long)ii.count);
		printf("info_%s_flags=%u\n", names[i], ii.flags);
	}
}

static void msix(int d)
{
	int e0 = eventfd(0, 0), e1 = eventfd(0, 0), e5 = eventfd(0, 0);
	int32_t two[2] = { e0, e1 };
	unsigned at = cap(d, 0x11);
	show("msix_enable", set_fds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, two));
	check("msix_config_enabled", at && (config16(d, at + 2) & 0x8000));
	show("msix_trigger_none", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1));
	printf("msix_e1_after_none=%ld\n", fired(e1, 5000));
	printf("msix_e0_untouched=%ld\n", fired(e0, 0));
	uint8_t bools[2] = { 1, 0 };
	show("msix_trigger_bool", set_irqs(d, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, bools, 2));
	printf("msix_e0_after_bool=%ld\n", fired(e0, 5000));
	printf("msix_e1_bool0=%ld\n", fired(e1, 0));
	/* A vector added while MSI-X is on; the program keeps only a duplicate of what it attached. */
	int keep = dup(e5);
	int32_t one = e5;
	show("msix_add_vector5", set_fds(d, VFIO_PCI_MSIX_IRQ_INDEX, 5, 1, &one));
	close(e5);
	raise_irq(VFIO_PCI_MSIX_IRQ_INDEX, 5);
	printf("msix_e5_after_close_raise=%ld\n", fired(keep, 5000));
	show("msix_trigger_both", set_irqs(d, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, (uint8_t[]){ 1, 1 }, 2));
	printf("msix_e1_after_both=%ld\n", fired(e1, 5000));
	printf("msix_e0_after_both=%ld\n", fired(e0, 5000));
	/* Unassign vector 0 with -1: triggering it is a no-op. */
	int32_t none = -1;
	show("msix_unassign0", set_fds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &none));
	show("msix_trigger_unassigned", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2));
	printf("msix_e1_after_unassign=%ld\n", fired(e1, 5000));
	printf("msix_e0_after_unassign=%ld\n", fired(e0, 0));
	/* MSI cannot be enabled while MSI-X is; masking MSI-X is not vfio-pci's to do. */
	show("msi_while_msix", set_fds(d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &one));
	show("msix_mask", action(d, VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1));
	show("msix_disable", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0));
	check("msix_config_disabled", at && !(config16(d, at + 2) & 0x8000));
	show("msix_trigger_disabled", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1));
	raise_irq(VFIO_PCI_MSIX_IRQ_INDEX, 5);
	show("msix_reenable_closed_fd", set_fds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &one));
	close(e0);
	close(e1);
	close(keep);
}

static void msi(int d)
{
	int e = eventfd(0, 0);
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_MSI_IRQ_INDEX };
	ioctl(d, VFIO_DEVICE_GET_IRQ_INFO, &ii);
	/* One more vector than the capability offers. */
	int32_t fds[2049];
	for (unsigned i = 0; i <= ii.count && i < 2049; i++)
		fds[i] = e;
	unsigned at = cap(d, 0x05);
	show("msi_too_many", set_fds(d, VFIO_PCI_MSI_IRQ_INDEX, 0, ii.count + 1, fds));
	show("msi_enable", set_fds(d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, fds));
	/* vfio-pci keeps the enable bit a driver writes only while SET_IRQS has MSI on, as QEMU writes it. */
	uint16_t flags = (uint16_t)(config16(d, at + 2) | 1);
	pwrite(d, &flags, 2, ((off_t)VFIO_PCI_CONFIG_REGION_INDEX << 40) + at + 2);
	check("msi_config_enabled", at && (config16(d, at + 2) & 1));
	raise_irq(VFIO_PCI_MSI_IRQ_INDEX, 0);
	printf("msi_after_raise=%ld\n", fired(e, 5000));
	show("intx_while_msi", set_fds(d, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, fds));
	show("msi_disable", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSI_IRQ_INDEX, 0, 0));
	/* With MSI off through SET_IRQS, the enable bit a driver writes no longer sticks. */
	pwrite(d, &flags, 2, ((off_t)VFIO_PCI_CONFIG_REGION_INDEX << 40) + at + 2);
	check("msi_config_disabled", at && !(config16(d, at + 2) & 1));
	close(e);
}

static void intx(int d)
{
	int e = eventfd(0, EFD_NONBLOCK), probe = eventfd(0, 0);
	int32_t fd = e, pfd = probe;
	/* Interrupts reach the eventfds in the order they fire: one on the REQ probe, once seen, shows that
	 * an INTx raised before it did not fire. */
	show("intx_probe_set", set_fds(d, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &pfd));
	show("intx_unmask_disabled", action(d, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1));
	show("intx_enable", set_fds(d, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd));
	show("intx_trigger_none", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 1));
	printf("intx_after_trigger=%ld\n", fired(e, 5000));
	raise_irq(VFIO_PCI_INTX_IRQ_INDEX, 0); /* fires and automasks */
	printf("intx_after_raise=%ld\n", fired(e, 5000));
	raise_irq(VFIO_PCI_INTX_IRQ_INDEX, 0); /* masked: stays pending */
	show("intx_probe", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX, 0, 1));
	printf("intx_probe_fired=%ld\n", fired(probe, 5000));
	printf("intx_masked_raise=%ld\n", fired(e, 0));
	show("intx_unmask", action(d, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1));
	printf("intx_pending_on_unmask=%ld\n", fired(e, 5000));
	show("intx_unmask_again", action(d, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1));
	raise_irq(VFIO_PCI_INTX_IRQ_INDEX, 0); /* unmasked again: fires */
	printf("intx_after_unmasked_raise=%ld\n", fired(e, 5000));
	show("intx_unmask_after_raise", action(d, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1));
	uint8_t yes = 1;
	show("intx_mask_bool", set_irqs(d, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &yes, 1));
	raise_irq(VFIO_PCI_INTX_IRQ_INDEX, 0);
	show("intx_unmask_bool", set_irqs(d, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &yes, 1));
	printf("intx_pending_on_bool_unmask=%ld\n", fired(e, 5000));
	show("intx_mask_eventfd", set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd, 4));
	show("intx_count2", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 2));
	show("intx_disable", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 0));
	show("intx_trigger_disabled", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 1));
	show("intx_probe_clear", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX, 0, 0));
	close(probe);
	close(e);
}

static void notifiers(int d)
{
	int e = eventfd(0, 0);
	int32_t fd = e;
	show("req_none_unset", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX, 0, 1));
	show("req_set", set_fds(d, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &fd));
	show("req_trigger", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX, 0, 1));
	printf("req_after_trigger=%ld\n", fired(e, 5000));
	show("req_unmask", action(d, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_REQ_IRQ_INDEX, 0, 1));
	show("req_clear", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX, 0, 0));
	show("req_none_cleared", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX, 0, 1));
	close(e);
}

static void bad(int d)
{
	int e = eventfd(0, 0), notev = open("/dev/null", O_RDONLY);
	unsigned char buf[64] = { 0 };
	struct vfio_irq_set *s = (void *)buf;
	*s = (struct vfio_irq_set){ .argsz = 19, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, .index = 2, .count = 1 };
	show("bad_argsz", ioctl(d, VFIO_DEVICE_SET_IRQS, s));
	show("bad_null", ioctl(d, VFIO_DEVICE_SET_IRQS, NULL));
	show("bad_two_data", action(d, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1));
	show("bad_two_actions", action(d, VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1));
	show("bad_unknown_flag", action(d, 0x40 | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1));
	show("bad_index", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, 5, 0, 1));
	show("bad_range", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 30, 10));
	show("bad_overflow", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 1, 0xffffffff));
	/* Data the argsz does not cover. */
	show("bad_short_data", set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, &e, 4));
	int32_t closed = 999;
	show("bad_fd_closed", set_fds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &closed));
	int32_t notevfd = notev;
	show("bad_fd_not_eventfd", set_fds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &notevfd));
	show("bad_err_index", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_ERR_IRQ_INDEX, 0, 1));
	close(notev);
	close(e);
}

/* Whether fd is connected to the daemon's socket (its abstract name starts "tcefs-post-"). */
static int daemon_socket(int fd)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);
	return !getpeername(fd, (struct sockaddr *)&a, &len) && a.sun_family == AF_UNIX && len > sizeof(sa_family_t) + 12 &&
	       !a.sun_path[0] && !strncmp(a.sun_path + 1, "tcefs-post-", 11);
}

/* True if some fd of this process is where the library's delivery thread reads: a tcefs interrupt event
 * node, or the daemon's socket. */
static int holds_event_node(void)
{
	for (int fd = 0; fd < 4096; fd++) {
		char link[64], target[4096];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			if (strstr(target, "/.tcefs/irq/") || (!strncmp(target, "socket:[", 8) && daemon_socket(fd)))
				return 1;
		}
	}
	return 0;
}

/* After fork the child has no delivery thread and drops the library's fds; the parent's thread keeps
 * delivering to the eventfd both share, whoever triggers. */
static void forked(int d)
{
	int e = eventfd(0, 0);
	int32_t fd = e;
	show("fork_arm", set_fds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &fd));
	check("fork_parent_holds_node", holds_event_node());
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		check("fork_child_holds_node", holds_event_node());
		show("fork_child_trigger", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1));
		printf("fork_child_sees=%ld\n", fired(e, 5000));
		fflush(stdout);
		_exit(0);
	}
	int ws;
	waitpid(p, &ws, 0);
	show("fork_parent_trigger", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1));
	printf("fork_parent_sees=%ld\n", fired(e, 5000));
	show("fork_disable", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0));
	close(e);
}

static void reset(int d)
{
	int e = eventfd(0, 0);
	int32_t fd = e;
	show("reset_arm", set_fds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &fd));
	show("reset", ioctl(d, VFIO_DEVICE_RESET));
	show("reset_trigger_after", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1));
	close(e);
}

/* The same delivery on a cdev bound to an iommufd. */
static int cdev(const char *node)
{
	int ictx = open("/dev/iommu", O_RDWR), d = open(node, O_RDWR);
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = ictx };
	show("cdev_bind", ioctl(d, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	int e = eventfd(0, 0);
	int32_t fd = e;
	show("cdev_arm", set_fds(d, VFIO_PCI_MSIX_IRQ_INDEX, 3, 1, &fd));
	raise_irq(VFIO_PCI_MSIX_IRQ_INDEX, 3);
	printf("cdev_after_raise=%ld\n", fired(e, 5000));
	close(d);
	close(ictx);
	close(e);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	bdf = argv[1];
	if (argc > 3 && !strcmp(argv[2], "cdev"))
		return cdev(argv[3]);
	int d = open_device();
	show("device", d < 0 ? -1 : 0);
	if (d < 0)
		return 1;
	if (argc > 2 && !strcmp(argv[2], "req")) {
		/* Wait for the request notifier, which fires when the device is being removed. */
		int e = eventfd(0, 0);
		int32_t fd = e;
		show("req_armed", set_fds(d, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &fd));
		fflush(stdout);
		printf("req_fired=%ld\n", fired(e, 20000));
		struct vfio_device_info di = { .argsz = sizeof(di) };
		show("req_after_remove", ioctl(d, VFIO_DEVICE_GET_INFO, &di));
		return 0;
	}
	if (argc > 2 && !strcmp(argv[2], "armed")) {
		int e = eventfd(0, 0);
		int32_t fds[3] = { e, e, e };
		show("armed_set", set_fds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3, fds));
		show("armed_trigger", action(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1));
		printf("armed=%ld\n", fired(e, 5000));
		fflush(stdout);
		for (;;)
			pause();
	}
	info(d);
	msix(d);
	msi(d);
	intx(d);
	notifiers(d);
	bad(d);
	forked(d);
	reset(d);
	close(d);
	return 0;
}
