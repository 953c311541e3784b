// /proc/<pid>/status with what the emulated iommufd pinned: the real file, its VmPin: and VmLck: lines
// raised by what the daemon charged to that pid (.tcefs/vm/<pid>, src/tce/vm-status.ts), as a kernel
// whose iommufd had pinned those pages would show them. Any pid: a child may read its parent's.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1U
#endif

/* The pid a path names the status file of ("/proc/self/status", "/proc/<pid>/status"), or 0. */
static long status_pid(const char *path)
{
	if (strncmp(path, "/proc/", 6))
		return 0;
	const char *p = path + 6;
	const char *slash = strchr(p, '/');
	if (!slash || strcmp(slash, "/status"))
		return 0;
	if (slash - p == 4 && !strncmp(p, "self", 4))
		return (long)syscall(SYS_getpid);
	long pid = 0;
	for (const char *q = p; q < slash; q++) {
		if (*q < '0' || *q > '9' || pid > 1L << 31)
			return 0;
		pid = pid * 10 + (*q - '0');
	}
	return slash > p && *p != '0' ? pid : 0;
}

/* All of a file read through raw syscalls into buf (NUL-terminated); its length, or -1. */
static long slurp(const char *path, char *buf, size_t size)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	size_t len = 0;
	long n;
	while (len + 1 < size && (n = syscall(SYS_read, fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	int e = errno;
	syscall(SYS_close, fd);
	if (n < 0)
		return errno = e, -1;
	buf[len] = 0;
	return (long)len;
}

/* The kB the daemon holds for pid under `tag` ("VmPin"); 0 when it has nothing or cannot be asked. */
static unsigned long daemon_kb(const char *answer, const char *tag)
{
	size_t l = strlen(tag);
	for (const char *p = answer; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, tag, l) && p[l] == ' ')
			return strtoul(p + l + 1, NULL, 10);
	return 0;
}

int status_open(const char *path, int flags)
{
	if (!path || !shim_mnt_len || (flags & O_ACCMODE) != O_RDONLY || (flags & (O_DIRECTORY | O_PATH)))
		return -2;
	long pid = status_pid(path);
	if (!pid)
		return -2;
	static __thread char real[16384];
	char q[PATH_MAX + 32], answer[128];
	long len = slurp(path, real, sizeof(real));
	if (len < 0)
		return -1; /* the real file's errno: ENOENT for a pid that is gone */
	snprintf(q, sizeof(q), "%s/.tcefs/vm/%ld", shim_mnt, pid);
	if (slurp(q, answer, sizeof(answer)) < 0)
		answer[0] = 0;
	unsigned long add_pin = daemon_kb(answer, "VmPin"), add_lck = daemon_kb(answer, "VmLck");
	int fd = (int)syscall(SYS_memfd_create, "status", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0U);
	if (fd < 0)
		return -1;
	for (char *line = real; *line;) {
		char *end = strchrnul(line, '\n');
		char out[64];
		const char *w = line;
		size_t wn = (size_t)(end - line) + (*end == '\n');
		int pin = !strncmp(line, "VmPin:", 6), lck = !strncmp(line, "VmLck:", 6);
		if ((pin && add_pin) || (lck && add_lck)) {
			/* the kernel's layout: the value right-aligned in 8 columns after a tab */
			unsigned long v = strtoul(line + 6, NULL, 10) + (pin ? add_pin : add_lck);
			wn = (size_t)snprintf(out, sizeof(out), "%.6s\t%8lu kB\n", line, v);
			w = out;
		}
		if (syscall(SYS_write, fd, w, wn) != (long)wn) {
			syscall(SYS_close, fd);
			return errno = ENOMEM, -1;
		}
		line = *end ? end + 1 : end;
	}
	syscall(SYS_lseek, fd, 0, SEEK_SET);
	return fd;
}
