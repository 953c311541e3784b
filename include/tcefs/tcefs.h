/* libtcefs: run kernel-ABI ioctls against a tcefs mount by request frames (docs/protocol.md). */
#ifndef TCEFS_H
#define TCEFS_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Run `request` on `fd` (an open tcefs node) exactly as ioctl(fd, request, arg) would on the real
 * device: the argument struct, the data behind its user pointers and its fd fields are marshalled from
 * the generated descriptor table, results are copied back, and an fd the ioctl returns is a real fd.
 * Returns the ioctl's value, or -1 with errno set.
 */
int tcefs_ioctl(int fd, unsigned long request, void *arg);

/* The file kind of a tcefs fd (TCEFS_KIND_*), or -1 with errno ENOTTY if fd is not a tcefs node. */
int tcefs_kind(int fd);

/* The daemon-side handle of a tcefs fd, as put in fd-valued fields; -1 with errno on failure. */
int tcefs_handle(int fd);

/* Translate a client fd for an fd-valued field: a tcefs fd's handle, a negative fd unchanged,
 * TCEFS_HANDLE_NONE for an fd that is not open, TCEFS_HANDLE_FOREIGN for any other file. */
int tcefs_fd_to_handle(int fd);

/*
 * close(fd), and if that was the last descriptor of its open file in this process, wait until the
 * daemon has released the file (a VFIO group freed for another open, a device's binding undone), as a
 * kernel driver has when close() returns. The wait is bounded (200 ms): a file still held by another
 * process, such as a forked child, stays open and is released by that process's last close. Returns what
 * close() returns.
 */
int tcefs_close(int fd);

/*
 * pread()/pwrite() on a VFIO device fd's region space (region i at offset i << 40, as
 * VFIO_DEVICE_GET_REGION_INFO reports). Region 0 (BAR0) starts at offset 0, where a plain pread()
 * would read the frame stream instead, so region access always goes through these. They return what
 * pread()/pwrite() on the kernel's device fd would: bytes moved, or -1 with errno.
 */
ssize_t tcefs_region_read(int fd, void *buf, size_t count, uint64_t offset);
ssize_t tcefs_region_write(int fd, const void *buf, size_t count, uint64_t offset);

/*
 * read()/write() on an event-queue fd (IOMMU_FAULT_QUEUE_ALLOC's out_fault_fd, IOMMU_VEVENTQ_ALLOC's
 * out_veventq_fd) at `offset`, which is 0 for read() and write(): whole fault or vEVENT records out,
 * page responses in, as the kernel's queue file takes them (a non-zero offset is ESPIPE).
 */
ssize_t tcefs_queue_read(int fd, void *buf, size_t count, uint64_t offset);
ssize_t tcefs_queue_write(int fd, const void *buf, size_t count, uint64_t offset);

#ifdef __cplusplus
}
#endif
#endif
