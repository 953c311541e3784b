// Event-queue files written only against the kernel ABI: IOMMU_FAULT_QUEUE_ALLOC hands out an fd whose
// read() returns page-request records and whose write() takes page responses; IOMMU_VEVENTQ_ALLOC needs
// a vIOMMU. On a TCE host no domain can raise page requests, so the queue stays empty: what is checked
// is the fd itself (the errnos of bad reads and writes, ENOTTY for ioctls, its name in /proc), the
// object's lifetime (DESTROY is EBUSY while the fd is open, the fd keeps the context alive) and that a
// HWPT cannot take a fault queue. Run it under `tcefs run`.
//
// usage: fault_queue BDF
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include "shim_test.h"

static int open_cdev(const char *bdf)
{
	char path[512];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "vfio", 4)) {
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s", e->d_name);
			closedir(d);
			return open(path, O_RDWR);
		}
	return -1;
}

static int destroy(int i, __u32 id)
{
	struct iommu_destroy d = { .size = sizeof(d), .id = id };
	return ioctl(i, IOMMU_DESTROY, &d);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int i = open("/dev/iommu", O_RDWR);

	struct iommu_fault_alloc fa = { .size = sizeof(fa), .flags = 1 };
	show("alloc_bad_flags", ioctl(i, IOMMU_FAULT_QUEUE_ALLOC, &fa));
	fa.flags = 0;
	show("alloc", ioctl(i, IOMMU_FAULT_QUEUE_ALLOC, &fa));
	int q = (int)fa.out_fault_fd;
	check("fd_is_new", q > i);
	check("cloexec", (fcntl(q, F_GETFD) & FD_CLOEXEC) != 0);
	show("fault_id", fa.out_fault_id);

	char link[64], name[128] = "";
	snprintf(link, sizeof(link), "/proc/self/fd/%d", q);
	ssize_t n = readlink(link, name, sizeof(name) - 1);
	if (n > 0)
		name[n] = 0;
	printf("fd_name=%s\n", name);

	struct iommu_hwpt_pgfault rec[4];
	show("read_empty", read(q, rec, sizeof(rec)));
	show("read_zero", read(q, rec, 0));
	show("read_not_whole", read(q, rec, sizeof(rec[0]) + 1));
	show("pread_offset", pread(q, rec, sizeof(rec), 8));
	show("pread_zero", pread(q, rec, sizeof(rec), 0));
	show("read_nonblock", (fcntl(q, F_SETFL, O_NONBLOCK), read(q, rec, sizeof(rec))));

	/* poll(): a fault queue is always writable, readable only with records waiting. */
	int pipefd[2];
	if (pipe(pipefd))
		return 1;
	struct pollfd pf[2] = { { .fd = q, .events = POLLIN | POLLOUT }, { .fd = pipefd[0], .events = POLLIN } };
	show("poll_writable", poll(pf, 2, 0));
	printf("poll_writable_revents=0x%x,0x%x\n", pf[0].revents, pf[1].revents);
	pf[0].events = POLLIN;
	show("poll_empty_times_out", poll(pf, 2, 30));
	if (write(pipefd[1], "x", 1) != 1)
		return 1;
	show("poll_other_fd", poll(pf, 2, 1000));
	printf("poll_other_fd_revents=0x%x,0x%x\n", pf[0].revents, pf[1].revents);
	close(pipefd[0]);
	close(pipefd[1]);

	struct iommu_hwpt_page_response resp[2] = { { .cookie = 1, .code = IOMMUFD_PAGE_RESP_SUCCESS }, { .cookie = 2, .code = 7 } };
	show("write_unknown_cookie", write(q, resp, sizeof(resp[0])));
	show("write_bad_code", write(q, &resp[1], sizeof(resp[1])));
	show("write_not_whole", write(q, resp, sizeof(resp[0]) - 1));
	show("pwrite_offset", pwrite(q, resp, sizeof(resp[0]), 8));
	show("write_zero", write(q, resp, 0));
	show("ioctl_on_queue", ioctl(q, IOMMU_DESTROY, &(struct iommu_destroy){ .size = 8, .id = fa.out_fault_id }));

	/* A TCE domain cannot deliver page requests: FAULT_ID_VALID is refused before the ID is looked at. */
	int dev = open_cdev(argv[1]);
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = i };
	show("bind", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	struct iommu_ioas_alloc ia = { .size = sizeof(ia) };
	show("ioas_alloc", ioctl(i, IOMMU_IOAS_ALLOC, &ia));
	struct iommu_hwpt_alloc ha = { .size = sizeof(ha), .flags = IOMMU_HWPT_FAULT_ID_VALID, .dev_id = bind.out_devid,
				       .pt_id = ia.out_ioas_id, .fault_id = fa.out_fault_id };
	show("hwpt_with_fault", ioctl(i, IOMMU_HWPT_ALLOC, &ha));
	ha.fault_id = 999;
	show("hwpt_with_bad_fault", ioctl(i, IOMMU_HWPT_ALLOC, &ha));

	/* PASIDs through the cdev: vfio-pci takes the flag, but no TCE domain is PASID-compatible. */
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .flags = VFIO_DEVICE_ATTACH_PASID, .pt_id = ia.out_ioas_id, .pasid = 5 };
	show("pasid_attach_ioas", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	at.pt_id = 999;
	show("pasid_attach_missing", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	at.argsz = offsetof(struct vfio_device_attach_iommufd_pt, pasid);
	show("pasid_attach_short", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	at = (struct vfio_device_attach_iommufd_pt){ .argsz = sizeof(at), .pt_id = ia.out_ioas_id };
	show("rid_attach", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	at = (struct vfio_device_attach_iommufd_pt){ .argsz = sizeof(at), .flags = VFIO_DEVICE_ATTACH_PASID, .pt_id = at.pt_id, .pasid = 5 };
	show("pasid_attach_hwpt", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	struct vfio_device_detach_iommufd_pt dt = { .argsz = sizeof(dt), .flags = VFIO_DEVICE_DETACH_PASID, .pasid = 5 };
	show("pasid_detach_unattached", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt));
	dt.flags = 2;
	show("detach_bad_flags", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt));

	/* vEVENTQs hang off a vIOMMU, and a TCE host makes none. */
	struct iommu_veventq_alloc va = { .size = sizeof(va), .viommu_id = ia.out_ioas_id, .type = 1 /* ARM SMMUv3 */, .veventq_depth = 2 };
	show("veventq_no_viommu", ioctl(i, IOMMU_VEVENTQ_ALLOC, &va));
	va.veventq_depth = 0;
	show("veventq_depth_zero", ioctl(i, IOMMU_VEVENTQ_ALLOC, &va));

	/* The fd holds the object: DESTROY is EBUSY until it is closed. */
	show("destroy_open", destroy(i, fa.out_fault_id));
	int q2 = dup(q);
	show("close", close(q));
	show("destroy_dup_open", destroy(i, fa.out_fault_id));
	show("read_dup", read(q2, rec, sizeof(rec)));
	show("close_dup", close(q2));
	show("read_closed", read(q2, rec, sizeof(rec)));
	show("destroy_closed", destroy(i, fa.out_fault_id));
	show("destroy_again", destroy(i, fa.out_fault_id));

	/* A queue fd outlives its context's fd: reads still work, and closing it lets the context go. */
	struct iommu_fault_alloc fb = { .size = sizeof(fb) };
	show("alloc_second", ioctl(i, IOMMU_FAULT_QUEUE_ALLOC, &fb));
	close(dev);
	show("close_iommufd", close(i));
	show("read_after_ctx_close", read((int)fb.out_fault_fd, rec, sizeof(rec)));
	show("write_after_ctx_close", write((int)fb.out_fault_fd, resp, sizeof(resp[0])));
	show("close_last", close((int)fb.out_fault_fd));
	return 0;
}
