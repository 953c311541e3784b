// Page requests end to end on the mock IOMMU, written against the kernel ABI (the flow of the kernel
// selftest's test_cmd_trigger_iopf): a mock device on a HWPT made with a fault queue raises a request,
// poll() sees the queue readable, read() returns the record, write() answers it; a replace answers what
// is left; then the PASID test ops. Run it under `tcefs run --selftest`.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <tcefs/selftest.h>
#include "shim_test.h"

static int fd;

static int test_cmd(__u32 op, __u32 id, struct iommu_test_cmd *c)
{
	c->size = sizeof(*c);
	c->op = op;
	c->id = id;
	return ioctl(fd, IOMMU_TEST_CMD, c);
}

static int trigger(__u32 dev_id, __u32 pasid, __u64 addr)
{
	struct iommu_test_cmd c = { .trigger_iopf = { .dev_id = dev_id, .pasid = pasid, .grpid = 2, .perm = 3, .addr = addr } };
	return test_cmd(IOMMU_TEST_OP_TRIGGER_IOPF, 0, &c);
}

static int replace(__u32 stdev, __u32 pt)
{
	struct iommu_test_cmd c = { .mock_domain_replace = { .pt_id = pt } };
	return test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &c);
}

static int pasid_op(__u32 op, __u32 stdev, __u32 pasid, __u32 pt)
{
	struct iommu_test_cmd c = { .pasid_attach = { .pasid = pasid, .pt_id = pt } };
	return test_cmd(op, stdev, &c);
}

static int pasid_check(__u32 stdev, __u32 pasid, __u32 hwpt)
{
	struct iommu_test_cmd c = { .pasid_check = { .pasid = pasid, .hwpt_id = hwpt } };
	return test_cmd(IOMMU_TEST_OP_PASID_CHECK_HWPT, stdev, &c);
}

static __u32 hwpt_alloc(__u32 dev, __u32 pt, __u32 flags, __u32 fault_id)
{
	struct iommu_hwpt_alloc a = { .size = sizeof(a), .flags = flags, .dev_id = dev, .pt_id = pt, .fault_id = fault_id };
	return ioctl(fd, IOMMU_HWPT_ALLOC, &a) ? 0 : a.out_hwpt_id;
}

int main(void)
{
	fd = open("/dev/iommu", O_RDWR);
	struct iommu_ioas_alloc ia = { .size = sizeof(ia) };
	show("ioas_alloc", ioctl(fd, IOMMU_IOAS_ALLOC, &ia));
	struct iommu_test_cmd md = { .mock_domain_flags = { .dev_flags = MOCK_FLAGS_DEVICE_PASID } };
	show("mock_domain", test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, ia.out_ioas_id, &md));
	__u32 stdev = md.mock_domain_flags.out_stdev_id, dev = md.mock_domain_flags.out_idev_id;

	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	show("fault_alloc", ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa));
	int q = (int)fa.out_fault_fd;
	__u32 iopf = hwpt_alloc(dev, ia.out_ioas_id, IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID, fa.out_fault_id);
	check("iopf_hwpt", iopf != 0);
	show("replace_to_iopf", replace(stdev, iopf));

	struct pollfd p = { .fd = q, .events = POLLIN };
	show("poll_before", poll(&p, 1, 0));
	show("trigger", trigger(dev, 0, 0xdeadbeaf));
	show("poll_after", poll(&p, 1, 1000));
	printf("poll_revents=0x%x\n", p.revents);

	struct iommu_hwpt_pgfault f[2];
	show("read_short", read(q, f, sizeof(f[0]) - 8));
	show("read", read(q, f, sizeof(f)));
	printf("fault=flags:%u dev:%d pasid:%u grpid:%u perm:%u addr:0x%llx cookie:%u\n", f[0].flags, f[0].dev_id == dev, f[0].pasid, f[0].grpid,
	       f[0].perm, (unsigned long long)f[0].addr, f[0].cookie);
	struct iommu_hwpt_page_response r[2] = { { .cookie = f[0].cookie, .code = IOMMUFD_PAGE_RESP_SUCCESS }, { .cookie = f[0].cookie } };
	show("answer", write(q, r, sizeof(r[0])));
	show("answer_twice", write(q, r, sizeof(r[0])));

	/* Two requests, one read, one answered: the replace answers the other, and its cookie is gone. */
	trigger(dev, 0, 0x1000);
	trigger(dev, 0, 0x2000);
	show("read_two", read(q, f, sizeof(f)));
	show("answer_first_of_two", write(q, r, sizeof(r)));
	show("replace_away", replace(stdev, ia.out_ioas_id));
	r[0].cookie = f[1].cookie;
	show("answer_after_replace", write(q, r, sizeof(r[0])));
	show("destroy_queue_held", ({ struct iommu_destroy d = { .size = sizeof(d), .id = fa.out_fault_id }; ioctl(fd, IOMMU_DESTROY, &d); }));

	/* PASIDs: only PASID-compatible HWPTs, the RID on one too; a PASID's requests go to its HWPT's queue. */
	__u32 plain = hwpt_alloc(dev, ia.out_ioas_id, 0, 0);
	__u32 s2 = hwpt_alloc(dev, ia.out_ioas_id, IOMMU_HWPT_ALLOC_PASID, 0);
	show("pasid_attach_rid_not_compat", pasid_op(IOMMU_TEST_OP_PASID_ATTACH, stdev, 100, s2));
	show("replace_rid_compat", replace(stdev, s2));
	show("pasid_attach_plain", pasid_op(IOMMU_TEST_OP_PASID_ATTACH, stdev, 100, plain));
	show("pasid_attach", pasid_op(IOMMU_TEST_OP_PASID_ATTACH, stdev, 100, iopf));
	show("pasid_attach_again", pasid_op(IOMMU_TEST_OP_PASID_ATTACH, stdev, 100, s2));
	show("pasid_check", pasid_check(stdev, 100, iopf));
	show("pasid_check_other", pasid_check(stdev, 100, s2));
	show("trigger_pasid", trigger(dev, 100, 0x3000));
	show("read_pasid", read(q, f, sizeof(f)));
	printf("pasid_fault=flags:%u pasid:%u\n", f[0].flags, f[0].pasid);
	show("pasid_replace", pasid_op(IOMMU_TEST_OP_PASID_REPLACE, stdev, 100, s2));
	r[0].cookie = f[0].cookie;
	show("answer_after_pasid_replace", write(q, r, sizeof(r[0])));
	show("pasid_replace_unattached", pasid_op(IOMMU_TEST_OP_PASID_REPLACE, stdev, 200, s2));
	show("pasid_detach", pasid_op(IOMMU_TEST_OP_PASID_DETACH, stdev, 100, 0));
	show("pasid_check_detached", pasid_check(stdev, 100, 0));

	show("close_queue", close(q));
	show("close_iommufd", close(fd));
	return 0;
}
