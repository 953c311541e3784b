// What an unmodified program sees of the emulated tree through path calls under the preload shim:
// sysfs links and attributes, directory walks, stat of the /dev nodes, relative paths and dirfds,
// and names the emulation does not have. Prints key=value lines.
#define _GNU_SOURCE
#include "shim_test.h"
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/vfio.h>

static void link_of(const char *key, const char *path)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return show(key, -1);
	buf[n] = 0;
	printf("%s=%s\n", key, buf);
}

static void first_line(const char *key, FILE *f)
{
	char line[256] = "";
	if (!f)
		return show(key, -1);
	if (fgets(line, sizeof(line), f))
		line[strcspn(line, "\n")] = 0;
	fclose(f);
	printf("%s=%s\n", key, line);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* The entries of a directory, sorted, dot entries left out. */
static void listing(const char *key, const char *path)
{
	struct dirent **list;
	int n = scandir(path, &list, NULL, by_name);
	if (n < 0)
		return show(key, -1);
	printf("%s=", key);
	for (int i = 0, first = 1; i < n; i++) {
		if (list[i]->d_name[0] != '.') {
			printf("%s%s", first ? "" : ",", list[i]->d_name);
			first = 0;
		}
		free(list[i]);
	}
	free(list);
	printf("\n");
}

static void node_type(const char *key, const char *path)
{
	struct stat st;
	if (stat(path, &st))
		return show(key, -1);
	if (S_ISCHR(st.st_mode))
		printf("%s=chr %u:%u\n", key, major(st.st_rdev), minor(st.st_rdev));
	else
		printf("%s=%s\n", key, S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "reg" : S_ISLNK(st.st_mode) ? "lnk" : "other");
}

int main(void)
{
	/* How VFIO users find a device's group: the iommu_group link and its basename. */
	link_of("iommu_group_link", "/sys/bus/pci/devices/0000:01:00.1/iommu_group");
	link_of("driver_link", "/sys/bus/pci/devices/0000:01:00.1/driver");
	char *rp = realpath("/sys/bus/pci/devices/0000:01:00.1/iommu_group", NULL);
	printf("iommu_group_realpath=%s\n", rp ? rp : "(null)");
	free(rp);
	char rbuf[PATH_MAX];
	printf("realpath_buffer=%s\n", realpath("/dev/vfio/../vfio/./0", rbuf) ? rbuf : "(null)");
	rp = canonicalize_file_name("/sys/kernel/iommu_groups/1/devices/0000:02:00.0");
	printf("canonical_device=%s\n", rp ? rp : "(null)");
	free(rp);
	first_line("vendor", fopen("/sys/bus/pci/devices/0000:01:00.0/vendor", "r"));
	first_line("group_name", fopen("/sys/kernel/iommu_groups/0/name", "r"));
	first_line("tcefs_view", fopen("/sys/kernel/debug/tcefs/groups/1/tce", "r"));

	/* Directory walks. */
	listing("groups", "/sys/kernel/iommu_groups");
	listing("group0_devices", "/sys/kernel/iommu_groups/0/devices");
	listing("vfio_dir", "/dev/vfio");
	listing("cdevs", "/dev/vfio/devices");
	listing("vfio_dev_of_0000:02:00.0", "/sys/bus/pci/devices/0000:02:00.0/vfio-dev");
	DIR *d = opendir("/sys/bus/pci/drivers/vfio-pci");
	int bound = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		bound += !strncmp(e->d_name, "0000:", 5);
	if (d)
		closedir(d);
	show("vfio_pci_bound", d ? bound : -1);

	/* Nodes read as character devices, as umockdev presents its nodes. */
	node_type("vfio_node", "/dev/vfio/vfio");
	node_type("iommu_node", "/dev/iommu");
	node_type("group1_node", "/dev/vfio/1");
	node_type("cdev2_node", "/dev/vfio/devices/vfio2");
	node_type("vfio_dir_node", "/dev/vfio");
	node_type("sysfs_attr_node", "/sys/kernel/iommu_groups/0/name");
	struct stat st;
	show("lstat_link", lstat("/sys/bus/pci/devices/0000:01:00.1/iommu_group", &st) ? -1 : S_ISLNK(st.st_mode));
	show("fstatat_chr", fstatat(AT_FDCWD, "/dev/vfio/vfio", &st, 0) ? -1 : S_ISCHR(st.st_mode));
	struct statx sx;
	show("statx_rdev_major", statx(AT_FDCWD, "/dev/vfio/0", 0, STATX_TYPE, &sx) ? -1 : (long)sx.stx_rdev_major);
	int c = open("/dev/vfio/vfio", O_RDWR);
	show("fstat_chr", fstat(c, &st) ? -1 : S_ISCHR(st.st_mode) && st.st_rdev == makedev(10, 196));
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", c);
	link_of("fd_link", self);
	close(c);
	show("access_rw", access("/dev/vfio/vfio", R_OK | W_OK));
	show("faccessat", faccessat(AT_FDCWD, "/dev/iommu", F_OK, 0));

	/* The emulation owns /dev/vfio: a name it lacks is absent, whatever the host has. */
	show("open_missing_group", open("/dev/vfio/99", O_RDWR));
	show("access_missing_group", access("/dev/vfio/99", F_OK));
	show("open_trailing_slash", open("/dev/vfio/vfio/", O_RDWR));

	/* Relative paths and dirfds. */
	show("chdir_device", chdir("/sys/bus/pci/devices/0000:02:00.0"));
	first_line("relative_vendor", fopen("vendor", "r"));
	link_of("relative_link", "iommu_group");
	show("chdir_root", chdir("/"));
	c = open("dev/vfio/vfio", O_RDWR);
	show("relative_open_api", ioctl(c, VFIO_GET_API_VERSION));
	close(c);
	int devdir = open("/dev", O_RDONLY | O_DIRECTORY);
	c = openat(devdir, "vfio/vfio", O_RDWR);
	show("openat_dirfd_api", ioctl(c, VFIO_GET_API_VERSION));
	close(c);
	close(devdir);
	int sysk = open("/sys/kernel", O_RDONLY | O_DIRECTORY);
	int n = openat(sysk, "iommu_groups/1/name", O_RDONLY);
	first_line("openat_sysfs_name", n < 0 ? NULL : fdopen(n, "r"));
	close(sysk);
	return 0;
}
