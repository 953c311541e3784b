/* Helpers for the programs that run unmodified under the preload shim: print key=value results. */
#ifndef SHIM_TEST_H
#define SHIM_TEST_H
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A call's value, or the name of the errno it failed with. */
static inline void show(const char *key, long rc)
{
	if (rc >= 0)
		printf("%s=%ld\n", key, rc);
	else
		printf("%s=-%s\n", key, strerrorname_np(errno));
}

/* A boolean check: 1 if it holds, 0 if not. */
static inline void check(const char *key, int ok)
{
	printf("%s=%d\n", key, !!ok);
}
#endif
