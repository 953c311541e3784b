// libtcefs: kernel-ABI ioctls over tcefs request frames. Marshalling is driven entirely by the
// generated table in <tcefs/protocol.h>; nothing here knows any particular ioctl.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <tcefs/protocol.h>
#include <tcefs/tcefs.h>

/* Largest argument struct sent: VFIO info calls may ask for capability chains up to argsz. */
#define MAX_ARG (64 * 1024)
#define MAX_BLOB (16 * 1024 * 1024)

/* The client's own memory is read and written like the kernel does, with faults reported, not taken. */
static size_t mem_read(void *dst, uint64_t src, size_t n)
{
	struct iovec l = { dst, n }, r = { (void *)(uintptr_t)src, n };
	ssize_t got = src ? syscall(SYS_process_vm_readv, getpid(), &l, 1, &r, 1, 0) : -1;
	return got < 0 ? 0 : (size_t)got;
}

static int mem_write(uint64_t dst, const void *src, size_t n)
{
	struct iovec l = { (void *)src, n }, r = { (void *)(uintptr_t)dst, n };
	if (n == 0)
		return 0;
	return dst && syscall(SYS_process_vm_writev, getpid(), &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* The node path behind fd; *rel points at its part inside the mount ("/dev/..." or "/.tcefs/..."). */
static int fd_path(int fd, char *buf, size_t len, const char **rel)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, len - 1);
	if (n < 0)
		return -1;
	buf[n] = 0;
	const char *p = strstr(buf, "/dev/iommu");
	if (!p)
		p = strstr(buf, "/dev/vfio/");
	if (!p)
		p = strstr(buf, TCEFS_CLAIM_DIR "/");
	*rel = p;
	return p ? 0 : -1;
}

static int frame_roundtrip(int fd, const void *req, size_t len, unsigned char **reply, size_t *reply_len)
{
	ssize_t w = pwrite(fd, req, len, 0);
	if (w < 0)
		return -1;
	if ((size_t)w != len) {
		errno = EIO;
		return -1;
	}
	size_t cap = 4096, got = 0;
	unsigned char *buf = malloc(cap);
	for (;;) {
		if (!buf)
			return errno = ENOMEM, -1;
		ssize_t r = pread(fd, buf + got, cap - got, (off_t)got);
		if (r < 0) {
			free(buf);
			return -1;
		}
		got += (size_t)r;
		if (got >= sizeof(struct tcefs_frame_header)) {
			size_t want = ((struct tcefs_frame_header *)buf)->length;
			if (got >= want)
				break;
			if (want > cap) {
				cap = want;
				buf = realloc(buf, cap);
				continue;
			}
		}
		if (r == 0) {
			free(buf);
			return errno = EIO, -1;
		}
	}
	*reply = buf;
	*reply_len = got;
	return 0;
}

/* One request with no argument: HANDLE answers the handle in result and the kind in handle_field. */
static int query_handle(int fd, int *kind)
{
	struct {
		struct tcefs_frame_header h;
		struct tcefs_request r;
	} f = { { TCEFS_REQUEST_MAGIC, TCEFS_PROTOCOL_VERSION, 1, sizeof(f), (__u32)getpid() },
		{ sizeof(struct tcefs_request), TCEFS_OP_HANDLE, 0, 0, 0, 0 } };
	unsigned char *reply;
	size_t n;
	if (frame_roundtrip(fd, &f, sizeof(f), &reply, &n))
		return -1;
	struct tcefs_answer *a = (void *)(reply + sizeof(struct tcefs_frame_header));
	int h = (int)a->result;
	if (kind)
		*kind = (int)a->handle_field;
	free(reply);
	return h;
}

int tcefs_kind(int fd)
{
	char path[PATH_MAX];
	const char *rel;
	if (fd_path(fd, path, sizeof(path), &rel))
		return errno = ENOTTY, -1;
	if (!strcmp(rel, "/dev/iommu"))
		return TCEFS_KIND_IOMMUFD;
	if (!strcmp(rel, "/dev/vfio/vfio"))
		return TCEFS_KIND_CONTAINER;
	if (!strncmp(rel, "/dev/vfio/devices/", 18))
		return TCEFS_KIND_DEVICE;
	if (!strncmp(rel, "/dev/vfio/", 10))
		return TCEFS_KIND_GROUP;
	int kind;
	return query_handle(fd, &kind) < 0 ? -1 : kind;
}

int tcefs_handle(int fd)
{
	return query_handle(fd, NULL);
}

int tcefs_fd_to_handle(int fd)
{
	if (fd < 0)
		return fd;
	if (fcntl(fd, F_GETFD) < 0)
		return TCEFS_HANDLE_NONE;
	char path[PATH_MAX];
	const char *rel;
	if (fd_path(fd, path, sizeof(path), &rel))
		return TCEFS_HANDLE_FOREIGN;
	int h = tcefs_handle(fd);
	return h > 0 ? h : TCEFS_HANDLE_FOREIGN;
}

static const struct tcefs_cmd_desc *find_cmd(int kind, unsigned long request)
{
	unsigned long r = request & 0xffffffffUL;
	if ((r & 0xff00) != 0x3b00 || ((r & 0xffff0000UL) != 0 && (r & 0xffff0000UL) != 0x20000000UL))
		return NULL;
	for (int i = 0; i < TCEFS_NCMDS; i++)
		if (tcefs_cmds[i].nr == (r & 0xff) && (tcefs_cmds[i].kinds & kind))
			return &tcefs_cmds[i];
	return NULL;
}

struct blob {
	__u32 field_offset;
	__u32 len;
	unsigned char *data;
};

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static uint64_t field_u64(const unsigned char *a, size_t alen, unsigned off)
{
	uint64_t v = 0;
	if (off + 8 <= alen)
		memcpy(&v, a + off, 8);
	return v;
}

/* Bytes of the argument to send, as the kernel would read them. */
static size_t arg_bytes(const struct tcefs_cmd_desc *c, void *arg, unsigned char *buf)
{
	switch (c->arg) {
	case TCEFS_ARG_ARGSZ:
	case TCEFS_ARG_SIZE: {
		__u32 sz;
		if (mem_read(&sz, (uintptr_t)arg, 4) != 4)
			return 0;
		size_t want = sz > c->struct_size ? sz : c->struct_size;
		if (want > MAX_ARG)
			want = MAX_ARG;
		return mem_read(buf, (uintptr_t)arg, want);
	}
	case TCEFS_ARG_FDPTR: {
		int v;
		if (mem_read(&v, (uintptr_t)arg, 4) != 4)
			return 0;
		v = tcefs_fd_to_handle(v);
		memcpy(buf, &v, 4);
		return 4;
	}
	case TCEFS_ARG_U32PTR:
		return mem_read(buf, (uintptr_t)arg, 4);
	case TCEFS_ARG_STRING: {
		size_t n = mem_read(buf, (uintptr_t)arg, 4096);
		size_t len = strnlen((char *)buf, n);
		return len < n ? len + 1 : n;
	}
	default:
		return 0;
	}
}

int tcefs_ioctl(int fd, unsigned long request, void *arg)
{
	int kind = tcefs_kind(fd);
	if (kind < 0)
		return -1;
	const struct tcefs_cmd_desc *c = find_cmd(kind, request);
	static unsigned char abuf[MAX_ARG];
	size_t alen = c ? arg_bytes(c, arg, abuf) : 0;
	struct blob blobs[2];
	int nblobs = 0;
	if (c && (c->arg == TCEFS_ARG_ARGSZ || c->arg == TCEFS_ARG_SIZE)) {
		for (int i = 0; i < c->nfds; i++) {
			if ((size_t)c->fd_offsets[i] + 4 <= alen) {
				int v;
				memcpy(&v, abuf + c->fd_offsets[i], 4);
				v = tcefs_fd_to_handle(v);
				memcpy(abuf + c->fd_offsets[i], &v, 4);
			}
		}
		for (int i = 0; i < c->nptrs; i++) {
			const struct tcefs_ptr_desc *p = &c->ptrs[i];
			uint64_t ptr = field_u64(abuf, alen, p->field_offset);
			uint64_t len = p->bytes;
			if (!len && p->len_offset + p->len_size <= alen) {
				__u32 l32 = 0;
				memcpy(&l32, abuf + p->len_offset, p->len_size > 4 ? 4 : p->len_size);
				len = (uint64_t)l32 * p->elem;
			}
			if (!ptr || !len || len > MAX_BLOB)
				continue;
			unsigned char *d = malloc(len);
			if (!d || mem_read(d, ptr, len) != len) {
				free(d); /* unreadable: sent without data, the daemon answers EFAULT if it needs it */
				continue;
			}
			blobs[nblobs++] = (struct blob){ p->field_offset, (__u32)len, d };
		}
	}
	size_t rlen = sizeof(struct tcefs_request) + pad8(alen);
	for (int i = 0; i < nblobs; i++)
		rlen += sizeof(struct tcefs_blob) + pad8(blobs[i].len);
	size_t flen = sizeof(struct tcefs_frame_header) + rlen;
	unsigned char *f = calloc(1, flen);
	if (!f)
		return errno = ENOMEM, -1;
	*(struct tcefs_frame_header *)f = (struct tcefs_frame_header){ TCEFS_REQUEST_MAGIC, TCEFS_PROTOCOL_VERSION, 1, (__u32)flen, (__u32)getpid() };
	struct tcefs_request *r = (void *)(f + sizeof(struct tcefs_frame_header));
	*r = (struct tcefs_request){ (__u32)rlen, TCEFS_OP_IOCTL, (__u16)nblobs, (__u32)request, (__u32)alen,
		c && c->arg == TCEFS_ARG_VALUE ? (__u64)(uintptr_t)arg : 0 };
	unsigned char *p = (unsigned char *)(r + 1);
	memcpy(p, abuf, alen);
	p += pad8(alen);
	for (int i = 0; i < nblobs; i++) {
		*(struct tcefs_blob *)p = (struct tcefs_blob){ blobs[i].field_offset, blobs[i].len };
		memcpy(p + sizeof(struct tcefs_blob), blobs[i].data, blobs[i].len);
		p += sizeof(struct tcefs_blob) + pad8(blobs[i].len);
		free(blobs[i].data);
	}
	unsigned char *reply;
	size_t n;
	int rc = frame_roundtrip(fd, f, flen, &reply, &n);
	free(f);
	if (rc)
		return -1;
	struct tcefs_answer *a = (void *)(reply + sizeof(struct tcefs_frame_header));
	unsigned char *q = (unsigned char *)(a + 1);
	long long result = a->result;
	int fault = mem_write((uintptr_t)arg, q, a->out_len);
	q += pad8(a->out_len);
	for (unsigned i = 0; i < a->nblobs && !fault; i++) {
		struct tcefs_blob *b = (void *)q;
		uint64_t dst = field_u64(abuf, alen, b->field_offset);
		fault = mem_write(dst, b + 1, b->length);
		q += sizeof(*b) + pad8(b->length);
	}
	if (result >= 0 && a->new_handle) {
		char path[PATH_MAX], claim[PATH_MAX + 32];
		const char *rel;
		fd_path(fd, path, sizeof(path), &rel);
		snprintf(claim, sizeof(claim), "%.*s%s/%x", (int)(rel - path), path, TCEFS_CLAIM_DIR, a->new_handle);
		int nfd = open(claim, O_RDWR | O_CLOEXEC);
		if (nfd < 0)
			result = -errno;
		else if (a->handle_field == TCEFS_HANDLE_IN_RESULT)
			result = nfd;
		else if (mem_write((uintptr_t)arg + a->handle_field, &nfd, 4))
			fault = 1;
	}
	free(reply);
	if (fault && result >= 0)
		result = -EFAULT;
	if (result < 0) {
		errno = (int)-result;
		return -1;
	}
	return (int)result;
}
