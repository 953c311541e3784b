// IOMMU_TEST_CMD as a selftest client sends it, without the kernel's iommufd_test.h: the ioctl number,
// a struct of its size (72 bytes) with an op, and what came back. Under `tcefs run` without --selftest
// the ioctl does not exist (ENOTTY, as on a kernel without CONFIG_IOMMUFD_TEST); with it, op 0 is an
// unknown op (EOPNOTSUPP), SET_TEMP_MEMORY_LIMIT succeeds, and MOCK_DOMAIN on a fresh IOAS gives the
// device and HWPT IDs.
//
// usage: selftest_cmd
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/iommufd.h>

#define TEST_CMD _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32)
enum { OP_MOCK_DOMAIN = 2, OP_SET_TEMP_MEMORY_LIMIT = 9 };

/* The header, the 48-byte union and `last`, as iommufd_test.h lays them out on LP64. */
struct test_cmd {
	uint32_t size, op, id, reserved;
	union {
		struct { uint32_t out_stdev_id, out_hwpt_id, out_idev_id; } mock_domain;
		struct { uint32_t limit; } memory_limit;
		uint64_t pad[6];
	};
	uint32_t last;
};

static const char *rc_name(int rc)
{
	return rc ? strerrorname_np(errno) : "0";
}

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR);
	if (fd < 0) {
		perror("open /dev/iommu");
		return 1;
	}
	printf("size=%zu\n", sizeof(struct test_cmd));
	struct test_cmd cmd = { .size = sizeof(cmd), .op = 0 };
	printf("op0=%s\n", rc_name(ioctl(fd, TEST_CMD, &cmd)));
	cmd = (struct test_cmd){ .size = sizeof(cmd), .op = OP_SET_TEMP_MEMORY_LIMIT, .memory_limit.limit = 65536 };
	printf("limit=%s\n", rc_name(ioctl(fd, TEST_CMD, &cmd)));
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	if (ioctl(fd, IOMMU_IOAS_ALLOC, &alloc)) {
		perror("IOMMU_IOAS_ALLOC");
		return 1;
	}
	cmd = (struct test_cmd){ .size = sizeof(cmd), .op = OP_MOCK_DOMAIN, .id = alloc.out_ioas_id };
	int rc = ioctl(fd, TEST_CMD, &cmd);
	printf("mock_domain=%s\n", rc_name(rc));
	if (!rc)
		printf("ioas=%u\nstdev=%u\nidev=%u\nhwpt=%u\n", alloc.out_ioas_id, cmd.mock_domain.out_stdev_id,
		       cmd.mock_domain.out_idev_id, cmd.mock_domain.out_hwpt_id);
	close(fd);
	return 0;
}
