// Under the preload shim, files outside the emulated tree behave exactly as without it: pipes, regular
// files, ttys, host device nodes and host sysfs. Prints key=value lines.
//
// usage: shim_foreign [HOST_BDF]   (a PCI function of the real host, to read its real sysfs)
#define _GNU_SOURCE
#include "shim_test.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>
#include <linux/vfio.h>

int main(int argc, char **argv)
{
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	int p[2];
	show("pipe", pipe(p));
	show("pipe_write", write(p[1], "abc", 3));
	int avail = -1;
	show("pipe_fionread", ioctl(p[0], FIONREAD, &avail));
	printf("pipe_available=%d\n", avail);
	show("pipe_vfio_ioctl", ioctl(p[0], VFIO_GET_API_VERSION));
	show("pipe_group_status", ioctl(p[0], VFIO_GROUP_GET_STATUS, &gs));
	char buf[64] = "";
	show("pipe_read", read(p[0], buf, sizeof(buf)));

	char tmpl[] = "/tmp/tcefs-shim-foreign-XXXXXX";
	int f = mkstemp(tmpl);
	show("file_write", write(f, "0123456789", 10));
	show("file_pwrite", pwrite(f, "AB", 2, 4));
	memset(buf, 0, sizeof(buf));
	show("file_pread", pread(f, buf, 6, 2));
	printf("file_data=%s\n", buf);
	show("file_lseek", lseek(f, 0, SEEK_SET));
	memset(buf, 0, sizeof(buf));
	show("file_read", read(f, buf, 3));
	printf("file_head=%s\n", buf);
	show("file_vfio_ioctl", ioctl(f, VFIO_GET_API_VERSION));
	int fl = 0;
	show("file_fionread", ioctl(f, FIONREAD, &fl));
	printf("file_remaining=%d\n", fl);
	struct stat st;
	check("file_is_regular", fstat(f, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 10);
	char *m = mmap(NULL, 10, PROT_READ, MAP_SHARED, f, 0);
	check("file_mmap", m != MAP_FAILED && !memcmp(m, "0123AB6789", 10));
	FILE *fp = fopen(tmpl, "r");
	memset(buf, 0, sizeof(buf));
	check("file_fopen", fp && fgets(buf, sizeof(buf), fp) && !strcmp(buf, "0123AB6789"));
	if (fp)
		fclose(fp);
	int f2 = dup(f);
	show("file_dup_pread", pread(f2, buf, 2, 0));
	unlink(tmpl);

	int t = posix_openpt(O_RDWR | O_NOCTTY);
	if (t >= 0) {
		struct termios tio;
		show("tty_tcgetattr", tcgetattr(t, &tio));
		show("tty_vfio_ioctl", ioctl(t, VFIO_GET_API_VERSION));
		show("tty_fionbio", ioctl(t, FIONBIO, &(int){ 1 }));
		check("tty_nonblocking", fcntl(t, F_GETFL) & O_NONBLOCK);
	} else
		printf("tty=none\n");

	/* Host nodes and host sysfs stay the host's. */
	check("dev_null", stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
	int null = open("/dev/null", O_RDWR);
	show("dev_null_write", write(null, "x", 1));
	show("dev_null_vfio_ioctl", ioctl(null, VFIO_GET_API_VERSION));
	DIR *dev = opendir("/dev");
	int saw_null = 0;
	for (struct dirent *e; dev && (e = readdir(dev));)
		saw_null |= !strcmp(e->d_name, "null");
	check("dev_listing_is_hosts", saw_null);
	if (dev)
		closedir(dev);
	show("absent_bdf", open("/sys/bus/pci/devices/0000:ff:1f.7/vendor", O_RDONLY));
	if (argc > 1) {
		char path[256];
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", argv[1]);
		fp = fopen(path, "r");
		memset(buf, 0, sizeof(buf));
		if (fp && fgets(buf, sizeof(buf), fp))
			buf[strcspn(buf, "\n")] = 0;
		if (fp)
			fclose(fp);
		printf("host_vendor=%s\n", buf);
	}

	/* A sysfs attribute of the mount answers ioctls as a sysfs file does. */
	int name = open("/sys/kernel/iommu_groups/0/name", O_RDONLY);
	show("sysfs_vfio_ioctl", ioctl(name, VFIO_GET_API_VERSION));
	show("sysfs_read", read(name, buf, sizeof(buf)));
	return 0;
}
