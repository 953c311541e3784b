// Finds its device the way VFIO programs written for Linux do, knowing nothing of tcefs: list
// /sys/bus/pci/devices, take the first function with an iommu_group link, read its sysfs attributes,
// open its group and check that the device fd's config region holds the bytes sysfs `config` has.
// Then lists the same tree through a directory fd (fdopendir, raw getdents64), scandir, nftw, ftw and
// glob, resolves links with realpath, and tries bad reads and writes on the attributes. Prints
// key=value lines.
#define _GNU_SOURCE
#include "shim_test.h"
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/vfio.h>

#define DEVICES "/sys/bus/pci/devices"

static char list_buf[4096];

static void add(const char *name)
{
	size_t n = strlen(list_buf);
	snprintf(list_buf + n, sizeof(list_buf) - n, "%s%s", n ? "," : "", name);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* The first line of a sysfs file, without its newline. */
static void attr(const char *bdf, const char *name, char *out, size_t cap)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), DEVICES "/%s/%s", bdf, name);
	FILE *f = fopen(p, "r");
	out[0] = 0;
	if (f && fgets(out, (int)cap, f))
		out[strcspn(out, "\n")] = 0;
	if (f)
		fclose(f);
	printf("%s=%s\n", name, f ? out : "(missing)");
}

static int walk_depth1(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	if (f->level == 1) {
		/* The callback's path is the program's, and base points at its last component. */
		if (strncmp(p, DEVICES "/", sizeof(DEVICES)) || strcmp(p + f->base, basename((char *)p)))
			add("BADPATH");
		add(p + f->base);
		if (flag != FTW_SL)
			add("NOTLINK");
	}
	return 0;
}

static int ftw_paths, ftw_foreign;
static char ftw_first[PATH_MAX];

/* ftw follows links, so it reaches functions through iommu_group/devices too; every path it hands
 * over must still be the program's spelling, never the mount's. */
static int ftw_step(const char *p, const struct stat *st, int flag)
{
	(void)st;
	(void)flag;
	if (!ftw_paths++)
		snprintf(ftw_first, sizeof(ftw_first), "%s", p);
	if (strncmp(p, DEVICES, sizeof(DEVICES) - 1))
		ftw_foreign++;
	return 0;
}

static long read_all(const char *path, unsigned char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	size_t got = 0;
	ssize_t n;
	while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
		got += (size_t)n;
	close(fd);
	return (long)got;
}

/* Write `s` to a sysfs file: the write's result, or the errno of the open or write. */
static void write_attr(const char *key, const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return show(key, -1);
	show(key, write(fd, s, strlen(s)));
	close(fd);
}

int main(void)
{
	/* 1. Enumerate as everyone does. */
	DIR *dir = opendir(DEVICES);
	if (!dir)
		return perror(DEVICES), 1;
	char bdf[256] = "", group[64] = "";
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		add(e->d_name);
		char p[PATH_MAX], link[PATH_MAX];
		snprintf(p, sizeof(p), DEVICES "/%s/iommu_group", e->d_name);
		ssize_t n = readlink(p, link, sizeof(link) - 1);
		if (n > 0 && !bdf[0]) {
			link[n] = 0;
			snprintf(bdf, sizeof(bdf), "%s", e->d_name);
			snprintf(group, sizeof(group), "%.60s", basename(link));
		}
	}
	closedir(dir);
	printf("readdir=%s\n", list_buf);
	if (!bdf[0])
		return fprintf(stderr, "no function with an iommu_group\n"), 1;
	printf("bdf=%s\ngroup=%s\n", bdf, group);
	char v[256];
	attr(bdf, "vendor", v, sizeof(v));
	attr(bdf, "device", v, sizeof(v));
	attr(bdf, "class", v, sizeof(v));
	attr(bdf, "resource", v, sizeof(v));
	attr(bdf, "numa_node", v, sizeof(v));
	attr(bdf, "enable", v, sizeof(v));

	char p[PATH_MAX];
	snprintf(p, sizeof(p), DEVICES "/%s/config", bdf);
	static unsigned char cfg[8192], region[8192];
	struct stat st;
	show("config_st_size", stat(p, &st) ? -1 : st.st_size);
	long clen = read_all(p, cfg, sizeof(cfg));
	show("config_len", clen);

	/* 2. The group and the device fd. */
	snprintf(p, sizeof(p), "/dev/vfio/%s", group);
	int g = open(p, O_RDWR);
	int c = open("/dev/vfio/vfio", O_RDWR);
	show("set_container", ioctl(g, VFIO_GROUP_SET_CONTAINER, &c));
	show("set_iommu", ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU));
	int d = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, bdf);
	show("device_fd", d < 0 ? -1 : 0);
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	show("config_region_info", ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &ri));
	show("config_region_size", (long)ri.size);
	long rlen = pread(d, region, ri.size, (off_t)ri.offset);
	check("config_matches_region", rlen == clen && !memcmp(cfg, region, (size_t)clen));
	snprintf(p, sizeof(p), DEVICES "/%s/enable", bdf);
	read_all(p, (unsigned char *)v, sizeof(v));
	printf("enable_while_open=%c\n", v[0]);
	close(d);
	close(g);
	close(c);

	/* 3. The same tree through the other walkers: an fd of the directory (fdopendir, raw getdents64)... */
	int dfd = openat(AT_FDCWD, DEVICES, O_RDONLY | O_DIRECTORY);
	char dents[8192];
	long got = syscall(SYS_getdents64, dfd, dents, sizeof(dents));
	list_buf[0] = 0;
	for (long at = 0; at < got;) {
		struct dirent64 *de = (struct dirent64 *)(dents + at);
		if (de->d_name[0] != '.')
			add(de->d_type == DT_LNK ? "lnk" : "other");
		at += de->d_reclen;
	}
	printf("getdents64_types=%s\n", list_buf);
	lseek(dfd, 0, SEEK_SET);
	DIR *fdir = fdopendir(dfd);
	int count = 0;
	while (fdir && (e = readdir(fdir)))
		count += e->d_name[0] != '.';
	show("fdopendir_count", count);
	if (fdir)
		closedir(fdir);
	/* ...scandir, nftw, ftw, glob. */
	struct dirent **names;
	int n = scandir(DEVICES, &names, NULL, by_name);
	list_buf[0] = 0;
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.')
			add(names[i]->d_name);
		free(names[i]);
	}
	if (n >= 0)
		free(names);
	printf("scandir=%s\n", list_buf);
	list_buf[0] = 0;
	show("nftw", nftw(DEVICES, walk_depth1, 8, FTW_PHYS));
	printf("nftw_entries=%s\n", list_buf);
	show("ftw", ftw(DEVICES, ftw_step, 8));
	printf("ftw_first=%s\nftw_foreign=%d\n", ftw_first, ftw_foreign);
	check("ftw_many", ftw_paths > 3 * 20);
	glob_t gl;
	show("glob", glob(DEVICES "/*/vendor", 0, NULL, &gl));
	list_buf[0] = 0;
	for (size_t i = 0; i < gl.gl_pathc; i++)
		add(gl.gl_pathv[i]);
	printf("glob_paths=%s\n", list_buf);
	globfree(&gl);
	show("glob_groups", glob("/sys/kernel/iommu_groups/*/devices/*", 0, NULL, &gl));
	show("glob_groups_count", (long)gl.gl_pathc);
	globfree(&gl);
	snprintf(p, sizeof(p), DEVICES "/%s", bdf);
	char *rp = realpath(p, NULL);
	printf("realpath=%s\n", rp ? rp : "(null)");
	free(rp);
	snprintf(p, sizeof(p), "/sys/kernel/iommu_groups/%s/devices/%s", group, bdf);
	rp = realpath(p, NULL);
	printf("group_realpath=%s\n", rp ? rp : "(null)");
	free(rp);
	snprintf(p, sizeof(p), DEVICES "/%s", bdf);
	char target[PATH_MAX];
	ssize_t tn = readlink(p, target, sizeof(target) - 1);
	target[tn > 0 ? tn : 0] = 0;
	printf("readlink=%s\n", target);
	struct stat lst;
	check("lstat_is_link", !lstat(p, &lst) && S_ISLNK(lst.st_mode));
	check("stat_is_dir", !stat(p, &lst) && S_ISDIR(lst.st_mode));

	/* 4. Bad input: odd offsets and the end of config, writes the kernel refuses. */
	snprintf(p, sizeof(p), DEVICES "/%s/config", bdf);
	int cf = open(p, O_RDWR);
	unsigned char b[16];
	long r = pread(cf, b, 3, 1);
	check("config_odd_offset", r == 3 && !memcmp(b, cfg + 1, 3));
	show("config_read_at_end_minus_2", pread(cf, b, 8, clen - 2));
	show("config_read_at_end", pread(cf, b, 8, clen));
	show("config_read_past_end", pread(cf, b, 8, clen + 4096));
	show("config_write_past_end", pwrite(cf, b, 4, clen));
	close(cf);
	snprintf(p, sizeof(p), DEVICES "/%s/vendor", bdf);
	write_attr("vendor_write", p, "0x1234\n");
	snprintf(p, sizeof(p), DEVICES "/%s/remove", bdf);
	show("remove_open_read", open(p, O_RDONLY));
	snprintf(p, sizeof(p), DEVICES "/%s/enable", bdf);
	write_attr("enable_garbage", p, "yes\n");
	write_attr("enable_zero_when_off", p, "0\n");
	attr(bdf, "enable", v, sizeof(v));
	snprintf(p, sizeof(p), DEVICES "/%s/numa_node", bdf);
	write_attr("numa_node_offline", p, "7\n");
	write_attr("numa_node_garbage", p, "zero\n");
	write_attr("numa_node_none", p, "-1\n");
	attr(bdf, "numa_node", v, sizeof(v));
	write_attr("numa_node_back", p, "0\n");
	snprintf(p, sizeof(p), DEVICES "/%s/driver_override", bdf);
	write_attr("driver_override_set", p, "foo\nbar");
	attr(bdf, "driver_override", v, sizeof(v));
	write_attr("driver_override_clear", p, "\n");
	attr(bdf, "driver_override", v, sizeof(v));
	write_attr("bind_bound", "/sys/bus/pci/drivers/vfio-pci/bind", bdf);
	show("missing_bdf", open(DEVICES "/0000:7f:00.0/vendor", O_RDONLY));
	return 0;
}
