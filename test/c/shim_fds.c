// fd bookkeeping under the preload shim: dup/dup2/dup3/F_DUPFD copies, fork, exec and close keep each
// descriptor pointing at the right emulated file, and a number the shim lost track of is never taken
// for a tcefs file. Prints key=value lines; the exec'd child prints its own.
//
// usage: shim_fds | shim_fds exec-child FD
#define _GNU_SOURCE
#include "shim_test.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

/* GROUP_GET_STATUS's flags, or -1 with errno. */
static long status(int fd)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	long r = ioctl(fd, VFIO_GROUP_GET_STATUS, &st);
	return r < 0 ? r : (long)st.flags;
}

static int open_group(int n)
{
	char path[32];
	snprintf(path, sizeof(path), "/dev/vfio/%d", n);
	return open(path, O_RDWR);
}

static int wait_status(pid_t p)
{
	int ws;
	if (waitpid(p, &ws, 0) != p)
		return -1;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* Threads sharing one container fd: each frame's reply must reach the thread that sent it. */
static int shared_container;

static void *hammer(void *arg)
{
	long wrong = 0;
	for (int i = 0; i < 300; i++) {
		wrong += ioctl(shared_container, VFIO_GET_API_VERSION) != 0;
		wrong += ioctl(shared_container, VFIO_CHECK_EXTENSION, arg) != ((long)arg == VFIO_SPAPR_TCE_v2_IOMMU);
	}
	return (void *)wrong;
}

/* After exec the shim starts afresh and must find the inherited group fd by itself. */
static int exec_child(int fd)
{
	show("exec_child_status", status(fd));
	struct stat st;
	check("exec_child_fstat_chr", fstat(fd, &st) == 0 && S_ISCHR(st.st_mode));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "exec-child"))
		return exec_child(atoi(argv[2]));

	int g = open_group(0);
	show("open", g < 0 ? -1 : 0);
	show("second_open", open_group(0));
	int d = dup(g);
	show("dup_status", status(d));
	int hi = fcntl(g, F_DUPFD_CLOEXEC, 100);
	check("dupfd_number", hi >= 100);
	show("dupfd_status", status(hi));
	show("dup2_status", status(dup2(g, 60)));
	show("dup3_status", status(dup3(g, 61, O_CLOEXEC)));
	close(g);
	show("status_after_closing_original", status(d));
	show("reopen_while_copies_open", open_group(0));

	/* A child shares the open file: it can use it, and its closing does not close the parent's. */
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		int ok = status(d) == VFIO_GROUP_FLAGS_VIABLE && status(60) == VFIO_GROUP_FLAGS_VIABLE;
		close(d);
		close(hi);
		close(60);
		close(61);
		_exit(ok ? 0 : 1);
	}
	show("fork_child", wait_status(p));
	show("status_after_child_closed", status(d));
	show("reopen_after_child_closed", open_group(0));

	fflush(stdout);
	p = fork();
	if (p == 0) {
		char fdarg[16];
		snprintf(fdarg, sizeof(fdarg), "%d", d);
		execl("/proc/self/exe", argv[0], "exec-child", fdarg, (char *)NULL);
		_exit(127);
	}
	show("exec_child", wait_status(p));

	/* Once every copy is closed, in every process, the group is free again. */
	close(d);
	close(hi);
	close(60);
	close(61);
	g = open_group(0);
	show("reopen_after_all_closed", g < 0 ? -1 : 0);
	show("reopened_status", status(g));

	/* A group a child opened and never closed is released when the child exits. */
	fflush(stdout);
	p = fork();
	if (p == 0)
		_exit(open_group(1) < 0 ? 1 : 0);
	show("child_opened_group1", wait_status(p));
	show("group1_after_child_exit", open_group(1) < 0 ? -1 : 0);

	/* A close the shim never saw (a raw syscall), then the number reused by a pipe. */
	int c = open("/dev/vfio/vfio", O_RDWR);
	show("container_api", ioctl(c, VFIO_GET_API_VERSION));
	syscall(SYS_close, c);
	int pfd[2];
	show("pipe", pipe2(pfd, O_NONBLOCK)); /* a read that finds nothing fails instead of hanging */
	check("pipe_took_the_number", pfd[0] == c);
	show("ioctl_on_reused_number", ioctl(pfd[0], VFIO_GET_API_VERSION));
	/* dup2 of a pipe over a tracked fd. */
	int c2 = open("/dev/vfio/vfio", O_RDWR);
	show("container2_api", ioctl(c2, VFIO_GET_API_VERSION));
	dup2(pfd[1], c2);
	show("ioctl_after_pipe_dup2_over_it", ioctl(c2, VFIO_GET_API_VERSION));
	show("write_after_pipe_dup2_over_it", write(c2, "x", 1));
	char x;
	show("pipe_got_it", read(pfd[0], &x, 1));
	/* An fd opened behind the shim's back (raw openat of the mount path) still gets its ioctls served. */
	char path[4096];
	snprintf(path, sizeof(path), "%s/dev/vfio/vfio", getenv("TCEFS_MOUNT"));
	int raw = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDWR, 0);
	show("raw_open_api", ioctl(raw, VFIO_GET_API_VERSION));
	show("raw_open_ext_v2", ioctl(raw, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU));
	/* A close the shim never saw, then the number reused, behind its back, by a mount file of another kind. */
	int c3 = open("/dev/vfio/vfio", O_RDWR);
	show("container3_api", ioctl(c3, VFIO_GET_API_VERSION));
	syscall(SYS_close, c3);
	snprintf(path, sizeof(path), "%s/dev/iommu", getenv("TCEFS_MOUNT"));
	int io = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDWR, 0);
	check("iommufd_took_the_number", io == c3);
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	show("ioas_alloc_on_reused_number", ioctl(io, IOMMU_IOAS_ALLOC, &alloc));
	show("ioas_id", alloc.out_ioas_id);
	shared_container = open("/dev/vfio/vfio", O_RDWR);
	pthread_t th[4];
	long wrong = 0;
	for (long i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer, (void *)(i % 2 ? (long)VFIO_SPAPR_TCE_v2_IOMMU : (long)VFIO_TYPE1v2_IOMMU));
	for (int i = 0; i < 4; i++) {
		void *w;
		pthread_join(th[i], &w);
		wrong += (long)w;
	}
	show("threads_wrong_answers", wrong);
	/* ioctls work on a node opened read-only or write-only, as on the kernel's. */
	show("rdonly_api", ioctl(open("/dev/vfio/vfio", O_RDONLY), VFIO_GET_API_VERSION));
	show("wronly_api", ioctl(open("/dev/iommu", O_WRONLY | O_CLOEXEC), VFIO_GET_API_VERSION));
	FILE *fc = fopen("/dev/vfio/vfio", "re");
	show("fopen_r_api", fc ? ioctl(fileno(fc), VFIO_GET_API_VERSION) : -1);
	if (fc)
		fclose(fc);
	return 0;
}
