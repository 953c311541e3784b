// Which paths the shim sends to the mount, and what the program is told about them.
//
// The mount owns whole subtrees: /dev/iommu, /dev/vfio, /sys/kernel/iommu_groups, the PCI view
// (/sys/bus/pci/devices, /sys/bus/pci/drivers/vfio-pci, /sys/bus/pci/rescan, each emulated
// /sys/devices/pci<domain>:<bus>, the PHB IOMMU devices) and debugfs (/sys/kernel/debug: the
// emulated kernel's fault-injection knobs and tcefs's own state views).
// A path inside such a subtree goes to the mount when the mount provides the subtree's root, so a
// missing name there is ENOENT, as on a host that has exactly the emulated devices, and never a real
// host VFIO node or PCI function reached by accident. /sys/module, and with --host-pci
// /sys/bus/pci/devices and the emulated /sys/devices/pci<domain>:<bus>, list host entries too: an
// entry the daemon lists as a link with an absolute target is the host's, and its paths are left
// alone. A /sys/devices/pci* domain the mount does not have keeps the real sysfs.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "shim.h"

char shim_mnt[PATH_MAX];
size_t shim_mnt_len;
/* TCEFS_MOUNT as given, when symlinks make it differ from the canonical shim_mnt. */
static char alias[PATH_MAX];
static size_t alias_len;

static int walk(const char *in, char *out, size_t cap, int follow, int depth);

/* Collapse "//", "." and ".." by text (for paths with "..", normalize_links follows the links first).
 * `in` is absolute. A trailing slash is kept, since it makes the kernel insist on a directory. */
static int normalize(const char *in, char *out, size_t cap)
{
	return walk(in, out, cap, 0, 0);
}

static void do_init(void)
{
	const char *m = getenv("TCEFS_MOUNT");
	char abs[PATH_MAX];
	if (!m || !*m)
		return;
	if (m[0] != '/') {
		long n = syscall(SYS_getcwd, abs, sizeof(abs));
		if (n <= 0 || abs[0] != '/' || strlen(abs) + 1 + strlen(m) >= sizeof(abs))
			return;
		strcat(abs, "/");
		strcat(abs, m);
		m = abs;
	}
	if (normalize(m, alias, sizeof(alias)))
		return;
	size_t len = strlen(alias);
	while (len > 1 && alias[len - 1] == '/')
		alias[--len] = 0;
	if (len <= 1)
		return; /* "/" as the mount would redirect nothing sensible */
	/* /proc/self/fd names files by their canonical path, so that is the form the mount is known by;
	 * an O_PATH open of the mount point does not reach the daemon. */
	memcpy(shim_mnt, alias, len + 1);
	int fd = (int)syscall(SYS_openat, AT_FDCWD, alias, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd >= 0) {
		char link[48], real[PATH_MAX];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = syscall(SYS_readlinkat, AT_FDCWD, link, real, sizeof(real) - 1);
		if (n > 1 && real[0] == '/') {
			real[n] = 0;
			memcpy(shim_mnt, real, (size_t)n + 1);
		}
		syscall(SYS_close, fd);
	}
	shim_mnt_len = strlen(shim_mnt);
	alias_len = strcmp(alias, shim_mnt) ? len : 0;
	fd_adopt_inherited();
	shim_permit_daemon();
}

void shim_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, do_init);
}

static size_t under(const char *p, const char *prefix)
{
	size_t n = strlen(prefix);
	return !strncmp(p, prefix, n) && (p[n] == 0 || p[n] == '/') ? n : 0;
}

/* Length of the owned subtree root `p` lies in, 0 if it lies in none. */
static size_t trapped_root(const char *p)
{
	static const char *const roots[] = { "/dev/iommu", "/dev/vfio", "/sys/kernel/iommu_groups", "/sys/bus/pci/drivers/vfio-pci",
		"/sys/bus/pci/devices", "/sys/bus/pci/rescan", "/sys/devices/virtual/iommu", "/sys/class/iommu", "/sys/module",
		"/sys/kernel/debug" };
	static const char domains[] = "/sys/devices/pci";
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		size_t n = under(p, roots[i]);
		if (n)
			return n;
	}
	if (!strncmp(p, domains, sizeof(domains) - 1))
		return (size_t)(strchrnul(p + sizeof(domains) - 1, '/') - p);
	return 0;
}

/* Roots whose listing merges host entries in: the daemon lists a host entry there as a link with an
 * absolute target, which tells the shim to leave that entry's paths to the host. */
static int merged_root(const char *p, size_t root)
{
	return (root == 20 && !strncmp(p, "/sys/bus/pci/devices", 20)) || (root == 11 && !strncmp(p, "/sys/module", 11)) ||
	       !strncmp(p, "/sys/devices/pci", 16);
}

/* Whether the mount's entry at buf (a merged root's child) stands for the host's own. */
static int host_entry(const char *buf)
{
	char target[2];
	return syscall(SYS_readlinkat, AT_FDCWD, buf, target, sizeof(target)) > 0 && target[0] == '/';
}

static const char *strip(const char *path, const char *prefix, size_t len)
{
	if (!len || strncmp(path, prefix, len))
		return NULL;
	if (path[len] == '/')
		return path + len;
	return path[len] ? NULL : "/";
}

const char *shim_unmount(const char *path)
{
	const char *rel = strip(path, shim_mnt, shim_mnt_len);
	return rel ? rel : strip(path, alias, alias_len);
}

/* Whether the absolute, normalized `norm` is the mount's: if so, its path in the mount goes to buf. */
static int redirect(const char *norm, char *buf)
{
	size_t root = trapped_root(norm);
	size_t len = strlen(norm);
	if (!root || shim_mnt_len + len >= PATH_MAX)
		return 0;
	memcpy(buf, shim_mnt, shim_mnt_len);
	memcpy(buf + shim_mnt_len, norm, root);
	buf[shim_mnt_len + root] = 0;
	/* Only a mount that provides this subtree takes it; a dead or foreign mount leaves the host's. */
	if (syscall(SYS_faccessat, AT_FDCWD, buf, F_OK) != 0)
		return 0;
	memcpy(buf + shim_mnt_len, norm, len + 1);
	if (len > root && merged_root(norm, root)) {
		char *end = strchrnul(buf + shim_mnt_len + root + 1, '/');
		char keep = *end;
		*end = 0;
		int host = host_entry(buf);
		*end = keep;
		if (host)
			return 0;
	}
	return 1;
}

/*
 * The lexical walk behind normalize(), and with `follow` normalize_links(): a ".." after a symlink goes
 * up from where the link leads, as the kernel's walk does (sysfs paths like /sys/bus/pci/devices/<BDF>/../..
 * are built by libpci and others). Only the prefixes a ".." follows are looked at, each where the shim
 * would send it.
 */
static int walk(const char *in, char *out, size_t cap, int follow, int depth)
{
	if (depth > 40)
		return -1;
	size_t o = 0;
	out[o++] = '/';
	out[o] = 0;
	for (const char *p = in; *p;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = strchrnul(p, '/');
		size_t n = (size_t)(e - p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			/* ".." at the root stays there */
			if (o > 1 && follow) {
				char where[PATH_MAX], target[PATH_MAX], joined[PATH_MAX];
				const char *look = redirect(out, where) ? where : out;
				ssize_t t = syscall(SYS_readlinkat, AT_FDCWD, look, target, sizeof(target) - 1);
				if (t > 0) {
					target[t] = 0;
					if (target[0] == '/')
						snprintf(joined, sizeof(joined), "%s", target);
					else {
						while (o > 1 && out[o - 1] != '/')
							o--;
						out[o] = 0;
						if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", out, target) >= sizeof(joined))
							return -1;
					}
					if (walk(joined, out, cap, 1, depth + 1))
						return -1;
					o = strlen(out);
					while (o > 1 && out[o - 1] == '/')
						out[--o] = 0;
				}
			}
			while (o > 1 && out[o - 1] != '/')
				o--;
			if (o > 1)
				o--;
		} else if (!(n == 1 && p[0] == '.')) {
			if (o + n + 2 >= cap)
				return -1;
			if (o > 1)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		out[o] = 0;
		p = e;
	}
	size_t len = strlen(in);
	if (o > 1 && len && in[len - 1] == '/')
		out[o++] = '/';
	out[o] = 0;
	return 0;
}

static int normalize_links(const char *in, char *out, size_t cap)
{
	return walk(in, out, cap, 1, 0);
}

/* Whether a path has a ".." component. */
static int has_dotdot(const char *p)
{
	for (const char *d = strstr(p, ".."); d; d = strstr(d + 1, ".."))
		if ((d == p || d[-1] == '/') && (d[2] == 0 || d[2] == '/'))
			return 1;
	return 0;
}

static void resolve(int dirfd, const char *path, struct target *t)
{
	t->how = TARGET_UNTOUCHED;
	t->use = path;
	t->rel = NULL;
	t->have_norm = 0;
	shim_init();
	if (!shim_mnt_len || !path || !*path)
		return;
	char abs[PATH_MAX];
	const char *src = path;
	if (path[0] != '/') {
		if (dirfd == AT_FDCWD) {
			if (syscall(SYS_getcwd, abs, sizeof(abs)) <= 0)
				return;
		} else {
			char link[48];
			snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
			ssize_t n = syscall(SYS_readlinkat, AT_FDCWD, link, abs, sizeof(abs) - 1);
			if (n <= 0)
				return;
			abs[n] = 0;
		}
		/* "(unreachable)/..." cwds, "pipe:[...]" dirfds and the like name nothing we could trap. */
		if (abs[0] != '/' || strlen(abs) + 1 + strlen(path) >= sizeof(abs))
			return;
		strcat(abs, "/");
		strcat(abs, path);
		src = abs;
	}
	if (has_dotdot(src) ? normalize_links(src, t->norm, sizeof(t->norm)) : normalize(src, t->norm, sizeof(t->norm)))
		return;
	t->have_norm = 1;
	const char *in = shim_unmount(t->norm);
	if (in) {
		t->how = TARGET_IN_MOUNT;
		t->rel = in;
		return;
	}
	if (!redirect(t->norm, t->buf))
		return;
	t->how = TARGET_REDIRECTED;
	t->use = t->buf;
	t->rel = t->buf + shim_mnt_len;
}

/* A lookup that fails here is no error of the caller's call, so errno is left as it was. */
void shim_resolve(int dirfd, const char *path, struct target *t)
{
	int e = errno;
	resolve(dirfd, path, t);
	errno = e;
}

/*
 * Device numbers for the nodes the program sees as character devices. /dev/vfio/vfio is the misc
 * device 10:196 on every kernel. The others are dynamic on a real kernel, so tcefs picks fixed values:
 * /dev/iommu 10:126, groups 510:<group>, and cdevs 511:<index>, which is what the mount's
 * /sys/bus/pci/devices/<BDF>/vfio-dev/vfio<index>/dev file says (src/transport/tree.ts).
 */
dev_t shim_chr_rdev(const char *rel)
{
	if (!strcmp(rel, "/dev/vfio/vfio"))
		return makedev(10, 196);
	if (!strcmp(rel, "/dev/iommu"))
		return makedev(10, 126);
	const char *n = NULL;
	unsigned major = 0;
	if (!strncmp(rel, "/dev/vfio/devices/vfio", 22)) {
		n = rel + 22;
		major = 511;
	} else if (!strncmp(rel, "/dev/vfio/", 10)) {
		n = rel + 10;
		major = 510;
	}
	if (!n || !*n || strspn(n, "0123456789") != strlen(n) || strlen(n) > 9)
		return 0;
	return makedev(major, (unsigned)strtoul(n, NULL, 10));
}
