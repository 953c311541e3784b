// What one client can do to another's state, for the --allow-other tests. Prints key=value lines.
//
// usage: rel_perm MNT opens [PENDING_HANDLE_HEX]
//          open every kind of node (and a pending file's claim path) and print the result of each
//        rel_perm MNT guess NODE N [SKIP|=USE...]
//          on a fresh open of NODE, send one batch of N requests that put random handles (none of the
//          SKIP values, none of its own; the =USE values first, as they are) in an fd field:
//          VFIO_GROUP_SET_CONTAINER on a group, IOMMU_IOAS_MAP_FILE on /dev/iommu; print how the
//          answers came out
//        rel_perm MNT fork GROUP
//          set up a SPAPR v2 container on GROUP, fork, and let the child (another pid, same fd) try
//          to map, register and unmap on it
#include "tcefs_test.h"
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <tcefs/protocol.h>
#include <tcefs/tcefs.h>

static void opens(const char *pending)
{
	static const struct { const char *key, *path; int flags; } nodes[] = {
		{ "iommufd", "dev/iommu", O_RDWR },
		{ "container", "dev/vfio/vfio", O_RDWR },
		{ "group0", "dev/vfio/0", O_RDWR },
		{ "group1", "dev/vfio/1", O_RDWR },
		{ "cdev", "dev/vfio/devices/vfio2", O_RDWR },
		{ "control", ".tcefs/control", O_WRONLY },
		{ "sysfs_vendor", "sys/bus/pci/devices/0000:02:00.0/vendor", O_RDONLY },
		{ "view_host", "sys/kernel/debug/tcefs/host.json", O_RDONLY },
		{ "view_tce", "sys/kernel/debug/tcefs/groups/1/tce", O_RDONLY },
	};
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		int fd = node(nodes[i].path, nodes[i].flags);
		show(nodes[i].key, fd < 0 ? -1 : 0);
		if (fd >= 0)
			close(fd);
	}
	if (pending) {
		char rel[64];
		snprintf(rel, sizeof(rel), ".tcefs/fd/%s", pending);
		int fd = node(rel, O_RDWR);
		show("claim", fd < 0 ? -1 : 0);
		if (fd >= 0)
			close(fd);
	}
}

static uint32_t rnd31(void)
{
	return ((uint32_t)rand() << 16 ^ (uint32_t)rand()) & 0x7fffffff;
}

/* One batch of raw requests, each with a guessed handle where the kernel would read an fd. */
static void guess(const char *path, int n, char **skip, int nskip)
{
	int fd = node(path, O_RDWR);
	if (fd < 0) {
		show("guess_open", -1);
		return;
	}
	int own = tcefs_handle(fd);
	int group = !strncmp(path, "dev/vfio/", 9) && path[9] >= '0' && path[9] <= '9';
	struct iommu_ioas_map_file mf = { .size = sizeof(mf), .flags = IOMMU_IOAS_MAP_READABLE, .ioas_id = 1, .length = 0x10000 };
	uint32_t arglen = group ? 4 : sizeof(mf);
	uint32_t reclen = sizeof(struct tcefs_request) + ((arglen + 7) & ~7u);
	size_t len = sizeof(struct tcefs_frame_header) + (size_t)n * reclen;
	uint8_t *frame = calloc(1, len);
	struct tcefs_frame_header *h = (void *)frame;
	*h = (struct tcefs_frame_header){ TCEFS_REQUEST_MAGIC, TCEFS_PROTOCOL_VERSION, (uint16_t)n, (uint32_t)len, (uint32_t)getpid() };
	srand(getpid());
	for (int i = 0; i < n; i++) {
		uint8_t *r = frame + sizeof(*h) + (size_t)i * reclen;
		struct tcefs_request *q = (void *)r;
		*q = (struct tcefs_request){ .length = reclen, .op = TCEFS_OP_IOCTL, .request = group ? VFIO_GROUP_SET_CONTAINER : IOMMU_IOAS_MAP_FILE, .arg_len = arglen };
		int32_t hv = 0;
		int forced = 0;
		for (int k = 0, seen = 0; k < nskip; k++)
			if (skip[k][0] == '=' && seen++ == i) {
				hv = (int32_t)strtol(skip[k] + 1, NULL, 0);
				forced = 1;
			}
		while (!forced) {
			hv = (int32_t)rnd31();
			int bad = hv == own || hv == TCEFS_HANDLE_NONE || hv == TCEFS_HANDLE_FOREIGN;
			for (int k = 0; k < nskip; k++)
				bad |= skip[k][0] != '=' && hv == (int32_t)strtol(skip[k], NULL, 0);
			if (!bad)
				break;
		}
		if (group)
			memcpy(r + sizeof(*q), &hv, 4);
		else {
			mf.fd = hv;
			memcpy(r + sizeof(*q), &mf, sizeof(mf));
		}
	}
	if (pwrite(fd, frame, len, 0) != (ssize_t)len) {
		show("guess_write", -1);
		return;
	}
	size_t cap = sizeof(struct tcefs_frame_header) + (size_t)n * (sizeof(struct tcefs_answer) + 64);
	uint8_t *reply = malloc(cap);
	size_t got = 0;
	for (ssize_t k; (k = pread(fd, reply + got, cap - got, 0)) > 0;)
		got += k;
	long ok = 0, ebadf = 0, other = 0;
	size_t at = sizeof(struct tcefs_frame_header);
	for (int i = 0; i < n && at + sizeof(struct tcefs_answer) <= got; i++) {
		struct tcefs_answer *a = (void *)(reply + at);
		if (a->result >= 0)
			ok++;
		else if (a->result == -EBADF)
			ebadf++;
		else {
			if (!other)
				printf("guess_first_other=%lld\n", (long long)a->result);
			other++;
		}
		at += a->length;
	}
	printf("guess_ok=%ld\nguess_ebadf=%ld\nguess_other=%ld\n", ok, ebadf, other);
	close(fd);
}

static void forked(int group_id)
{
	char rel[64];
	snprintf(rel, sizeof(rel), "dev/vfio/%d", group_id);
	int g = node(rel, O_RDWR), c = node("dev/vfio/vfio", O_RDWR);
	show("set_container", tcefs_ioctl(g, VFIO_GROUP_SET_CONTAINER, &c));
	show("set_iommu", tcefs_ioctl(c, VFIO_SET_IOMMU, (void *)VFIO_SPAPR_TCE_v2_IOMMU));
	/* Registered memory is whole host pages: 64 KiB on the emulated host. */
	uint8_t *va = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	va = (uint8_t *)(((uintptr_t)va + 0xffff) & ~(uintptr_t)0xffff);
	struct vfio_iommu_spapr_register_memory reg = { .argsz = sizeof(reg), .vaddr = (uintptr_t)va, .size = 1 << 20 };
	show("register", tcefs_ioctl(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg));
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = 3, .vaddr = (uintptr_t)va, .iova = 0x100000, .size = 0x10000 };
	show("map", tcefs_ioctl(c, VFIO_IOMMU_MAP_DMA, &m));
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		/* The same container fd, another process: the SPAPR driver is bound to the parent's mm. */
		m.iova = 0x200000;
		show("child_map", tcefs_ioctl(c, VFIO_IOMMU_MAP_DMA, &m));
		struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = 0x100000, .size = 0x10000 };
		show("child_unmap", tcefs_ioctl(c, VFIO_IOMMU_UNMAP_DMA, &u));
		show("child_register", tcefs_ioctl(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg));
		show("child_unregister", tcefs_ioctl(c, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, &reg));
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	m.iova = 0x300000;
	show("parent_map_after", tcefs_ioctl(c, VFIO_IOMMU_MAP_DMA, &m));
	close(c);
	close(g);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	mnt = argv[1];
	if (!strcmp(argv[2], "opens"))
		opens(argc > 3 ? argv[3] : NULL);
	else if (!strcmp(argv[2], "guess") && argc > 4)
		guess(argv[3], atoi(argv[4]), argv + 5, argc - 5);
	else if (!strcmp(argv[2], "fork") && argc > 3)
		forked(atoi(argv[3]));
	else
		return 2;
	return 0;
}
