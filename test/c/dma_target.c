// A process for device DMA to land in, for in-process tests and the bench: it maps SIZE bytes aligned to
// 64 KiB, fills byte i with i * 7 + 3 (mod 256), prints "pid=N addr=0x... size=N" and waits until its
// stdin closes. The daemon reaches the buffer through /proc/<pid>/mem.
//
// usage: dma_target SIZE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t size = argc > 1 ? strtoull(argv[1], NULL, 0) : 1 << 20, align = 1 << 16;
	unsigned char *raw = mmap(NULL, size + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return perror("mmap"), 1;
	unsigned char *buf = (unsigned char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	for (size_t i = 0; i < size; i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	printf("pid=%d addr=%p size=%zu\n", getpid(), (void *)buf, size);
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
	return 0;
}
