/* DPDK's own EAL initialisation, which scans /sys/bus/pci/devices for its PCI bus and probes VFIO support,
 * built without DPDK's -dev headers: rte_eal_init is all this needs. Its log says what it found. */
#include <stdio.h>

int rte_eal_init(int argc, char **argv);
int rte_eal_cleanup(void);

int main(int argc, char **argv)
{
	int r = rte_eal_init(argc, argv);
	printf("rte_eal_init=%d\n", r);
	if (r >= 0)
		rte_eal_cleanup();
	return r < 0;
}
