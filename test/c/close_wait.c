// A last close has released the file in the daemon by the time close() returns; a close that is not the
// last (dup, dup2, F_DUPFD, fork) leaves it alone. After each close the program reads the daemon's own
// view (daemon.json) at once, with no retry, so a release still in flight shows up as a wrong count.
//
// usage: close_wait            under `tcefs run` (a private daemon: this program is its only client)
//        close_wait lib MNT    without the shim: libtcefs's tcefs_close on the nodes of mount MNT
//        close_wait open N     (run by itself) open group N once and print the result
//        close_wait inherited FD [MNT]  (run by itself) close the inherited group fd FD, print the view
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <tcefs/protocol.h>
#include <tcefs/tcefs.h>
#include "shim_test.h"

static const char *mnt = ""; /* the mount prefix in lib mode; empty under the shim */
static const char *self;
static int lib;

static int node_mode(const char *rel, int mode)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s%s", mnt, rel);
	return open(p, mode);
}

static int node(const char *rel)
{
	return node_mode(rel, O_RDWR);
}

static int do_ioctl(int fd, unsigned long req, void *arg)
{
	return lib ? tcefs_ioctl(fd, req, arg) : ioctl(fd, req, arg);
}

static int do_close(int fd)
{
	return lib ? tcefs_close(fd) : close(fd);
}

/* A number from the daemon's view: `"key": N` (top-level counts, or a kind in byKind); 0 if absent. */
static long view(const char *key)
{
	char buf[8192], pat[64];
	int fd = node_mode("/sys/kernel/debug/tcefs/daemon.json", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	char *p = strstr(buf, pat);
	return p ? strtol(p + strlen(pat), NULL, 10) : 0;
}

static int group_ok(int g)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	return do_ioctl(g, VFIO_GROUP_GET_STATUS, &st) == 0 && (st.flags & VFIO_GROUP_FLAGS_VIABLE);
}

/* close(device); UNSET_CONTAINER at once, many times over: the device must be gone each time. */
static void legacy(void)
{
	int c = node("/dev/vfio/vfio"), g = node("/dev/vfio/0");
	int fails = 0, left = 0;
	for (int k = 0; k < 20; k++) {
		if (do_ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) || do_ioctl(c, VFIO_SET_IOMMU, (void *)VFIO_SPAPR_TCE_v2_IOMMU)) {
			fails++;
			break;
		}
		int dev = do_ioctl(g, VFIO_GROUP_GET_DEVICE_FD, "0000:01:00.0");
		if (dev < 0) {
			fails++;
			break;
		}
		do_close(dev);
		fails += do_ioctl(g, VFIO_GROUP_UNSET_CONTAINER, NULL) != 0;
		left += view("device") != 0;
	}
	show("legacy_unset_failures", fails);
	show("legacy_devices_left", left);
	do_close(g);
	do_close(c);
	show("legacy_files_left", view("openFiles"));
}

/* A cdev closed and at once reopened, bound and attached, many times over. */
static void cdev(void)
{
	int i = node("/dev/iommu");
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	show("ioas_alloc", do_ioctl(i, IOMMU_IOAS_ALLOC, &alloc));
	int fails = 0, extra = 0, dev = -1;
	for (int k = 0; k < 30; k++) {
		do_close(dev);
		dev = node("/dev/vfio/devices/vfio2");
		struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = i };
		struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = alloc.out_ioas_id };
		if (dev < 0 || do_ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind) || do_ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at))
			fails++;
		/* only this open's file: the one closed just before it is gone */
		extra += view("device") != 1;
	}
	do_close(dev);
	int left = view("device");
	show("cdev_rebind_failures", fails);
	show("cdev_devices_before_close", extra);
	show("cdev_devices_left", left);
	do_close(i);
	show("cdev_files_left", view("openFiles"));
}

/* A group this process closed opens at once in a process started after the close returned. */
static void handover(void)
{
	int g = node("/dev/vfio/1");
	show("handover_open", g < 0 ? -1 : 0);
	do_close(g);
	show("handover_groups_left", view("group"));
	pid_t p = fork();
	if (p == 0) {
		execl(self, self, "open", "1", (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(p, &st, 0);
	show("handover_child_exit", WIFEXITED(st) ? WEXITSTATUS(st) : 128);
}

/* A not-last close leaves the group open and usable; the last one releases it. */
static void not_last(void)
{
	int g = node("/dev/vfio/0");
	int d1 = dup(g);
	do_close(g);
	show("dup_kept", view("group") == 1 && group_ok(d1));
	int d2 = dup2(d1, 50);
	do_close(d1);
	show("dup2_kept", view("group") == 1 && group_ok(d2));
	int d3 = fcntl(d2, F_DUPFD, 60);
	do_close(d2);
	show("dupfd_kept", view("group") == 1 && group_ok(d3));

	/* A forked child closes its copy; the parent's stays open, and its own close is the last. */
	pid_t p = fork();
	if (p == 0)
		_exit(do_close(d3) == 0 ? 0 : 1);
	int st;
	waitpid(p, &st, 0);
	show("fork_child_closed", WIFEXITED(st) ? WEXITSTATUS(st) : 128);
	show("fork_kept", view("group") == 1 && group_ok(d3));

	/* So does an exec'd child closing the copy it inherited. */
	char num[16];
	snprintf(num, sizeof(num), "%d", d3);
	p = fork();
	if (p == 0) {
		execl(self, self, "inherited", num, lib ? mnt : (char *)NULL, (char *)NULL);
		_exit(127);
	}
	waitpid(p, &st, 0);
	show("exec_child_exit", WIFEXITED(st) ? WEXITSTATUS(st) : 128);
	show("exec_kept", view("group") == 1 && group_ok(d3));
	do_close(d3);
	show("last_close_released", view("group"));

	/* The parent closes first while a child still holds the file: it stays open until the child goes. */
	g = node("/dev/vfio/0");
	int go[2];
	if (pipe(go))
		return;
	p = fork();
	if (p == 0) {
		char c;
		close(go[1]);
		ssize_t n = read(go[0], &c, 1);
		_exit(n == 0 && group_ok(g) ? 0 : 1);
	}
	close(go[0]);
	do_close(g);
	show("child_holds", view("group"));
	close(go[1]);
	waitpid(p, &st, 0);
	show("child_used_it", WIFEXITED(st) ? WEXITSTATUS(st) : 128);
	g = node("/dev/vfio/0");
	show("reopen_after_child_exit", g < 0 ? -1 : 0);
	do_close(g);
	show("groups_left", view("group"));
}

/* The other ways a descriptor goes under the shim: dup2 over it, close_range, closefrom, fclose. */
static void other_closes(void)
{
	int g = node("/dev/vfio/0"), c = node("/dev/vfio/vfio");
	dup2(c, g);
	show("dup2_over_released", view("group"));
	close(g);
	close(c);
	g = node("/dev/vfio/0");
	close_range(g, g, 0);
	show("close_range_released", view("group"));
	g = node("/dev/vfio/0");
	dup2(g, 200);
	close(g);
	show("moved_kept", view("group"));
	closefrom(200);
	show("closefrom_released", view("group"));
	FILE *f = fopen("/dev/vfio/0", "r+");
	show("fopen", f ? 0 : -1);
	fclose(f);
	show("fclose_released", view("group"));
}

/* An iommufd's objects survive a not-last close and go with the last. */
static void iommufd(void)
{
	int i = node("/dev/iommu");
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	do_ioctl(i, IOMMU_IOAS_ALLOC, &alloc);
	int j = dup(i);
	do_close(i);
	struct iommu_ioas_alloc again = { .size = sizeof(again) };
	show("iommufd_dup_kept", view("iommufdObjects") == 1 && do_ioctl(j, IOMMU_IOAS_ALLOC, &again) == 0);
	pid_t p = fork();
	if (p == 0)
		_exit(do_close(j) == 0 ? 0 : 1);
	int st;
	waitpid(p, &st, 0);
	show("iommufd_fork_child_closed", WIFEXITED(st) ? WEXITSTATUS(st) : 128);
	struct iommu_destroy d = { .size = sizeof(d), .id = again.out_ioas_id };
	show("iommufd_fork_kept", view("iommufdObjects") == 2 && do_ioctl(j, IOMMU_DESTROY, &d) == 0);
	do_close(j);
	show("iommufd_objects_left", view("iommufdObjects"));
	show("iommufd_files_left", view("iommufd"));
}

/* The daemon's side, asked directly: a lookup under .tcefs/release answers once the file is released. */
static void release_lookup(void)
{
	char p[4096];
	int g = node("/dev/vfio/1");
	int h = tcefs_handle(g);
	snprintf(p, sizeof(p), "%s" TCEFS_RELEASE_DIR "/%x-%d-1", mnt, h, (int)getpid());
	show("release_lookup_open", access(p, F_OK));
	/* the open file's handle and one more than a wait may name: refused at once, not waited for */
	int len = snprintf(p, sizeof(p), "%s" TCEFS_RELEASE_DIR "/%x", mnt, h);
	for (int k = 0; k < TCEFS_RELEASE_WAIT_MAX; k++)
		len += snprintf(p + len, sizeof(p) - len, ".%x", k + 1);
	show("release_lookup_too_many", access(p, F_OK));
	show("release_close", tcefs_close(g));
	/* the first name again: the earlier answer was not cached, the daemon answers anew */
	snprintf(p, sizeof(p), "%s" TCEFS_RELEASE_DIR "/%x-%d-1", mnt, h, (int)getpid());
	show("release_lookup_closed", access(p, F_OK));
	snprintf(p, sizeof(p), "%s" TCEFS_RELEASE_DIR "/not-a-handle", mnt);
	show("release_lookup_bad", access(p, F_OK));
	show("release_close_bad_fd", tcefs_close(g));
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	self = argv[0];
	if (argc >= 3 && !strcmp(argv[1], "inherited")) {
		lib = argc == 4;
		mnt = lib ? argv[3] : "";
		show("exec_child_close", do_close(atoi(argv[2])));
		show("exec_child_groups", view("group"));
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "open")) {
		char rel[32];
		snprintf(rel, sizeof(rel), "/dev/vfio/%s", argv[2]);
		int g = node(rel);
		show("handover_reopen", g < 0 ? -1 : 0);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "lib")) {
		lib = 1;
		mnt = argv[2];
	}
	legacy();
	cdev();
	if (!lib)
		handover();
	not_last();
	if (!lib)
		other_closes();
	iommufd();
	if (lib)
		release_lookup();
	return 0;
}
