// Access and dma-buf fds of the selftest driver, written against the kernel ABI: what the kernel's
// selftests take for granted about the files themselves. The access fd is a new close-on-exec fd that
// the ops name by number (EBADFD for any other fd), it holds the IOAS (EBUSY) and the context (the access
// outlives a close of /dev/iommu), and its close drops every pin; a dma-buf fd maps with MAP_FILE, and its
// mapping outlives the fd. Run it under `tcefs run --selftest`.
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
#include <tcefs/selftest.h>
#include "shim_test.h"

static int fd;

static int test_cmd(int on, __u32 op, __u32 id, struct iommu_test_cmd *c)
{
	c->size = sizeof(*c);
	c->op = op;
	c->id = id;
	return ioctl(on, IOMMU_TEST_CMD, c);
}

static int destroy(__u32 id)
{
	struct iommu_destroy d = { .size = sizeof(d), .id = id };
	return ioctl(fd, IOMMU_DESTROY, &d);
}

static int refs(void *buf, size_t len, __u32 n)
{
	struct iommu_test_cmd c = { .check_refs = { .length = len, .uptr = (uintptr_t)buf, .refs = n } };
	return test_cmd(fd, IOMMU_TEST_OP_MD_CHECK_REFS, 0, &c);
}

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	char *buf = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset(buf, 0x5a, 4 * page);
	fd = open("/dev/iommu", O_RDWR);
	struct iommu_ioas_alloc ia = { .size = sizeof(ia) };
	show("ioas_alloc", ioctl(fd, IOMMU_IOAS_ALLOC, &ia));
	struct iommu_ioas_map m = { .size = sizeof(m), .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
				    .ioas_id = ia.out_ioas_id, .user_va = (uintptr_t)buf, .length = 4 * page, .iova = 1 << 24 };
	show("map", ioctl(fd, IOMMU_IOAS_MAP, &m));

	struct iommu_test_cmd c = { .create_access = { .flags = 0x100 } };
	show("create_bad_flags", test_cmd(fd, IOMMU_TEST_OP_CREATE_ACCESS, ia.out_ioas_id, &c));
	memset(&c, 0, sizeof(c));
	show("create_no_ioas", test_cmd(fd, IOMMU_TEST_OP_CREATE_ACCESS, 999, &c));
	memset(&c, 0, sizeof(c));
	c.create_access.flags = MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES;
	show("create", test_cmd(fd, IOMMU_TEST_OP_CREATE_ACCESS, ia.out_ioas_id, &c));
	int afd = c.create_access.out_access_fd;
	check("access_fd_new", afd > fd);
	check("cloexec", fcntl(afd, F_GETFD) == FD_CLOEXEC);

	struct iommu_test_cmd p = { .access_pages = { .iova = 1 << 24, .length = 2 * page, .uptr = (uintptr_t)buf } };
	show("pages_on_iommufd_fd", test_cmd(fd, IOMMU_TEST_OP_ACCESS_PAGES, fd, &p));
	show("pages_on_stdin", test_cmd(fd, IOMMU_TEST_OP_ACCESS_PAGES, 0, &p));
	show("pages_on_closed_fd", test_cmd(fd, IOMMU_TEST_OP_ACCESS_PAGES, 1000, &p));
	p.access_pages.uptr = (uintptr_t)buf + page;
	show("pages_wrong_uptr", test_cmd(fd, IOMMU_TEST_OP_ACCESS_PAGES, afd, &p));
	show("refs_after_wrong_uptr", refs(buf, 4 * page, 0));
	p.access_pages.uptr = (uintptr_t)buf;
	show("pages", test_cmd(fd, IOMMU_TEST_OP_ACCESS_PAGES, afd, &p));
	show("refs_pinned", refs(buf, 2 * page, 1));
	show("refs_rest", refs(buf + 2 * page, 2 * page, 0));
	show("destroy_ioas_held", destroy(ia.out_ioas_id));
	struct iommu_destroy dd = { .size = sizeof(dd), .id = ia.out_ioas_id };
	show("ioctl_on_access_fd", ioctl(afd, IOMMU_DESTROY, &dd));

	struct iommu_test_cmd rw = { .access_rw = { .iova = 1 << 24, .length = 16, .uptr = (uintptr_t)buf + 3 * page } };
	show("rw_on_pin_access", test_cmd(fd, IOMMU_TEST_OP_ACCESS_RW, afd, &rw));
	char tmp[16];
	memset(tmp, 0x33, sizeof(tmp));
	rw.access_rw.uptr = (uintptr_t)tmp;
	rw.access_rw.flags = MOCK_ACCESS_RW_WRITE;
	show("rw_write", test_cmd(fd, IOMMU_TEST_OP_ACCESS_RW, afd, &rw));
	check("rw_wrote", buf[0] == 0x33 && buf[15] == 0x33 && buf[16] == 0x5a);
	rw.access_rw.iova = (1 << 24) + 4 * page - 8;
	show("rw_past_area", test_cmd(fd, IOMMU_TEST_OP_ACCESS_RW, afd, &rw));
	rw.access_rw.flags = 1 << 1;
	show("rw_bad_flags", test_cmd(fd, IOMMU_TEST_OP_ACCESS_RW, afd, &rw));

	/* The access holds the context: it still works after /dev/iommu is closed, through another one. */
	show("close_iommufd", close(fd));
	fd = open("/dev/iommu", O_RDWR);
	show("refs_still_pinned", refs(buf, 2 * page, 1));
	rw.access_rw.flags = 0;
	rw.access_rw.iova = 1 << 24;
	memset(tmp, 0, sizeof(tmp));
	show("rw_through_other_ctx", test_cmd(fd, IOMMU_TEST_OP_ACCESS_RW, afd, &rw));
	check("rw_read", tmp[0] == 0x33);
	show("close_access", close(afd));
	show("refs_after_close", refs(buf, 4 * page, 0));
	show("pages_after_close", test_cmd(fd, IOMMU_TEST_OP_ACCESS_PAGES, afd, &p));

	/* A dma-buf: mapped through MAP_FILE, revoked, and the mapping outlives its fd. */
	struct iommu_ioas_alloc ib = { .size = sizeof(ib) };
	show("ioas2_alloc", ioctl(fd, IOMMU_IOAS_ALLOC, &ib));
	struct iommu_test_cmd d = { .dmabuf_get = { .length = 0, .open_flags = O_CLOEXEC } };
	show("dmabuf_zero", test_cmd(fd, IOMMU_TEST_OP_DMABUF_GET, 0, &d));
	d.dmabuf_get.length = 513 * page;
	show("dmabuf_too_big", test_cmd(fd, IOMMU_TEST_OP_DMABUF_GET, 0, &d));
	d.dmabuf_get.length = page + 1;
	int dfd = test_cmd(fd, IOMMU_TEST_OP_DMABUF_GET, 0, &d);
	check("dmabuf_fd", dfd > 2);
	struct iommu_ioas_map_file mf = { .size = sizeof(mf), .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
					  .ioas_id = ib.out_ioas_id, .fd = dfd, .start = 0, .length = 2 * page };
	show("map_rounded_up", ioctl(fd, IOMMU_IOAS_MAP_FILE, &mf));
	struct iommu_test_cmd r = { .dmabuf_revoke = { .dmabuf_fd = fd, .revoked = 1 } };
	show("revoke_not_dmabuf", test_cmd(fd, IOMMU_TEST_OP_DMABUF_REVOKE, 0, &r));
	r.dmabuf_revoke.dmabuf_fd = 1000;
	show("revoke_closed_fd", test_cmd(fd, IOMMU_TEST_OP_DMABUF_REVOKE, 0, &r));
	r.dmabuf_revoke.dmabuf_fd = dfd;
	show("revoke", test_cmd(fd, IOMMU_TEST_OP_DMABUF_REVOKE, 0, &r));
	show("map_revoked", ioctl(fd, IOMMU_IOAS_MAP_FILE, &mf));
	show("close_dmabuf", close(dfd));
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ib.out_ioas_id, .iova = 0, .length = UINT64_MAX };
	show("unmap_all", ioctl(fd, IOMMU_IOAS_UNMAP, &u));
	printf("unmapped=0x%llx\n", (unsigned long long)u.length);
	show("close_last", close(fd));
	return 0;
}
