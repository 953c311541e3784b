/* Helpers shared by the C test programs: open a node under the mount, print key=value results. */
#ifndef TCEFS_TEST_H
#define TCEFS_TEST_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

static const char *mnt;

static int node(const char *rel, int flags)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", mnt, rel);
	return open(p, flags);
}

/* Print an ioctl's value, or the name of the errno it failed with. */
static void show(const char *key, long rc)
{
	if (rc >= 0)
		printf("%s=%ld\n", key, rc);
	else
		printf("%s=-%s\n", key, strerrorname_np(errno));
}
#endif
