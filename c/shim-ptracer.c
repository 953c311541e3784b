/* Device DMA lands in the client's memory through /proc/<pid>/mem, opened by the daemon. Under Yama
 * (ptrace_scope 1) only an ancestor or a declared tracer may open it, and the daemon is neither, so the
 * shim declares it: prctl(PR_SET_PTRACER, daemon pid), the pid read once from the mount's /.tcefs/pid.
 * Yama does not carry the declaration into a forked child, so the child declares it again. Without Yama
 * the call fails harmlessly. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

static long daemon_pid;

static void declare(void)
{
	if (daemon_pid > 0)
		prctl(PR_SET_PTRACER, (unsigned long)daemon_pid, 0, 0, 0);
}

void shim_permit_daemon(void)
{
	char path[PATH_MAX + 16], text[24];
	snprintf(path, sizeof(path), "%s/.tcefs/pid", shim_mnt);
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return;
	ssize_t n = syscall(SYS_read, fd, text, sizeof(text) - 1);
	syscall(SYS_close, fd);
	if (n <= 0)
		return;
	text[n] = 0;
	daemon_pid = strtol(text, NULL, 10);
	declare();
	pthread_atfork(NULL, NULL, declare);
}
