// Config space as a VMM reads it: through the device fd at the config region's offset, walking the
// capability and extended capability lists, checking the MSI-X table and PBA against the BAR that
// VFIO_DEVICE_GET_REGION_INFO reports, and probing the bounds with odd offsets and sizes.
// Prints key=value lines.
//
// usage: config_walk BDF
#define _GNU_SOURCE
#include "shim_test.h"
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

static int dev;
static uint64_t cfg_off, cfg_size;

static uint32_t cfg(unsigned at, int n)
{
	uint32_t v = 0;
	if (pread(dev, &v, n, (off_t)(cfg_off + at)) != n)
		return 0xffffffff;
	return v;
}

static int region(unsigned index, struct vfio_region_info *r)
{
	memset(r, 0, sizeof(*r));
	r->argsz = sizeof(*r);
	r->index = index;
	return ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, r);
}

static int irq_count(unsigned index)
{
	struct vfio_irq_info i = { .argsz = sizeof(i), .index = index };
	return ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &i) < 0 ? -errno : (int)i.count;
}

static void walk(void)
{
	char list[512] = "";
	unsigned msix = 0, pcie = 0;
	if (cfg(0x06, 2) & 0x10) {
		for (unsigned at = cfg(0x34, 1) & ~3u, n = 0; at && n < 48; n++, at = cfg(at + 1, 1) & ~3u) {
			unsigned id = cfg(at, 1);
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%02x@%02x", *list ? "," : "", id, at);
			if (id == 0x11)
				msix = at;
			if (id == 0x10)
				pcie = at;
		}
	}
	printf("caps=%s\n", list);
	*list = 0;
	if (cfg_size > 256) {
		for (unsigned at = 0x100, n = 0; at >= 0x100 && n < 64; n++) {
			uint32_t h = cfg(at, 4);
			if (!h)
				break;
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%04x@%03x", *list ? "," : "", h & 0xffff, at);
			at = (h >> 20) & 0xffc;
		}
	}
	printf("ext_caps=%s\n", list);
	if (pcie) {
		uint32_t lnk = cfg(pcie + 0x12, 2);
		printf("link_speed_code=%u\nlink_width=%u\n", lnk & 0xf, (lnk >> 4) & 0x3f);
	}

	/* MSI-X: table and PBA inside the BARs their BIRs name, sized by the table size, apart and aligned. */
	if (msix) {
		unsigned n = (cfg(msix + 2, 2) & 0x7ff) + 1;
		uint32_t t = cfg(msix + 4, 4), p = cfg(msix + 8, 4);
		struct vfio_region_info tb, pb;
		int ok = region(t & 7, &tb) == 0 && region(p & 7, &pb) == 0;
		uint64_t to = t & ~7u, po = p & ~7u, ts = n * 16ull, ps = (n + 63) / 64 * 8ull;
		printf("msix_vectors=%u\nmsix_table=%u:0x%llx\nmsix_pba=%u:0x%llx\n", n, t & 7, (unsigned long long)to, p & 7, (unsigned long long)po);
		check("msix_table_in_bar", ok && tb.size && to + ts <= tb.size);
		check("msix_pba_in_bar", ok && pb.size && po + ps <= pb.size);
		check("msix_apart", (t & 7) != (p & 7) || to + ts <= po || po + ps <= to);
		check("msix_count_matches_irq_info", irq_count(VFIO_PCI_MSIX_IRQ_INDEX) == (int)n);
		/* The table is the host's: the BAR reads all-ones there once decoding is on. */
		uint16_t cmd = 0x2;
		pwrite(dev, &cmd, 2, (off_t)cfg_off + 4);
		uint32_t entry = 0;
		show("msix_table_read", pread(dev, &entry, 4, (off_t)(tb.offset + to)));
		printf("msix_table_word=0x%08x\n", entry);
		cmd = 0;
		pwrite(dev, &cmd, 2, (off_t)cfg_off + 4);
	}
	printf("irq_counts=%d,%d,%d,%d,%d\n", irq_count(0), irq_count(1), irq_count(2), irq_count(3), irq_count(4));
	check("intx_count_matches_pin", irq_count(VFIO_PCI_INTX_IRQ_INDEX) == (cfg(0x3d, 1) ? 1 : 0));
}

static void bounds(void)
{
	uint8_t whole[4096], part[16];
	show("config_read_all", pread(dev, whole, cfg_size, (off_t)cfg_off));
	int same = 1;
	static const unsigned odd[][2] = { { 0x3f, 3 }, { 0x45, 7 }, { 0x9b, 6 }, { 0xfd, 7 }, { 0x101, 3 } };
	for (unsigned i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		if (odd[i][0] + odd[i][1] > cfg_size)
			continue;
		same &= pread(dev, part, odd[i][1], (off_t)(cfg_off + odd[i][0])) == (ssize_t)odd[i][1] && !memcmp(part, whole + odd[i][0], odd[i][1]);
	}
	check("odd_reads_agree", same);
	show("config_read_last_byte", pread(dev, part, 1, (off_t)(cfg_off + cfg_size - 1)));
	show("config_read_across_end", pread(dev, part, 2, (off_t)(cfg_off + cfg_size - 1)));
	show("config_read_at_end", pread(dev, part, 1, (off_t)(cfg_off + cfg_size)));
	show("config_write_across_end", pwrite(dev, part, 4, (off_t)(cfg_off + cfg_size - 2)));
	uint16_t zero = 0;
	show("config_write_vendor", pwrite(dev, &zero, 2, (off_t)cfg_off));
	check("vendor_unchanged", cfg(0, 2) == (uint32_t)(whole[0] | whole[1] << 8));

	/* BARs: sizing through config space, decoding off means EIO, the end is EINVAL or a short access. */
	struct vfio_region_info b0, rom;
	region(VFIO_PCI_BAR0_REGION_INDEX, &b0);
	uint32_t ones = 0xffffffff, v = 0;
	pwrite(dev, &ones, 4, (off_t)cfg_off + 0x10);
	v = cfg(0x10, 4);
	check("bar0_sizing", (uint64_t)(uint32_t)~(v & ~0xfu) + 1 == (b0.size & 0xffffffffu ? b0.size : 0x100000000ull));
	show("bar0_read_decode_off", pread(dev, &v, 4, (off_t)b0.offset));
	uint16_t cmd = 0x2;
	pwrite(dev, &cmd, 2, (off_t)cfg_off + 4);
	show("bar0_read", pread(dev, &v, 4, (off_t)b0.offset));
	show("bar0_read_at_end", pread(dev, &v, 4, (off_t)(b0.offset + b0.size)));
	show("bar0_read_across_end", pread(dev, part, 8, (off_t)(b0.offset + b0.size - 3)));
	show("bar0_write_across_end", pwrite(dev, part, 8, (off_t)(b0.offset + b0.size - 5)));
	struct vfio_region_info b1;
	region(1, &b1);
	show("bar1_read", pread(dev, &v, 4, (off_t)b1.offset));
	show("rom_info", region(VFIO_PCI_ROM_REGION_INDEX, &rom));
	printf("rom_size=%llu\nrom_flags=%u\n", (unsigned long long)rom.size, rom.flags);
	if (rom.size) {
		uint16_t sig = 0;
		show("rom_read", pread(dev, &sig, 2, (off_t)rom.offset));
		printf("rom_signature=0x%04x\n", sig);
		show("rom_write", pwrite(dev, &sig, 2, (off_t)rom.offset));
		pwrite(dev, &ones, 4, (off_t)cfg_off + 0x30);
		check("rom_sizing", (uint64_t)(uint32_t)~(cfg(0x30, 4) & ~0x7ffu) + 1 == rom.size);
	} else {
		show("rom_read", pread(dev, &v, 2, (off_t)rom.offset));
	}
	struct vfio_region_info vga;
	region(VFIO_PCI_VGA_REGION_INDEX, &vga);
	show("vga_read", pread(dev, &v, 1, (off_t)vga.offset));
	show("region9_read", pread(dev, &v, 1, (off_t)9 << 40));
	cmd = 0;
	pwrite(dev, &cmd, 2, (off_t)cfg_off + 4);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *bdf = argv[1];
	char path[PATH_MAX], link[PATH_MAX];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return perror(path), 1;
	link[n] = 0;
	snprintf(path, sizeof(path), "/dev/vfio/%s", basename(link));
	int g = open(path, O_RDWR);
	int c = open("/dev/vfio/vfio", O_RDWR);
	if (ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) || ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU))
		return perror("container"), 1;
	dev = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (dev < 0)
		return perror("device"), 1;
	struct vfio_region_info r;
	show("config_info", region(VFIO_PCI_CONFIG_REGION_INDEX, &r));
	cfg_off = r.offset;
	cfg_size = r.size;
	printf("config_size=%llu\nconfig_cap_offset=%u\n", (unsigned long long)r.size, r.cap_offset);
	printf("ids=%04x:%04x\nsubsystem=%04x:%04x\n", cfg(0, 2), cfg(2, 2), cfg(0x2c, 2), cfg(0x2e, 2));
	walk();
	bounds();
	close(dev);
	close(g);
	close(c);
	return 0;
}
