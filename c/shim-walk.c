// Directory walks that glibc does internally: glob, nftw/ftw and scandirat open directories through
// glibc's own opendir, which no preloaded library can interpose, so they are wrapped as a whole.
//
// glob runs with GLOB_ALTDIRFUNC and the shim's own opendir/stat/lstat, so every directory it reads at
// any depth is redirected as a direct call would be, and the names it returns are the program's.
// nftw and ftw walk the mount's copy of a redirected tree and hand the callback the path the program
// asked for: the mount prefix swapped back for the caller's own spelling of the starting point.
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shim.h"

#define EXPORT __attribute__((visibility("default")))

static void *next(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

#define REAL(name)                                                                \
	({                                                                        \
		static void *real_;                                               \
		if (!real_)                                                       \
			real_ = next(#name);                                      \
		(__typeof__(&name))real_;                                         \
	})

#define MISSING()                 \
	do {                      \
		errno = ENOSYS;   \
		return -1;        \
	} while (0)

/* ---- glob ---- */

static int walk_stat(const char *p, struct stat *st)
{
	return stat(p, st);
}

static int walk_lstat(const char *p, struct stat *st)
{
	return lstat(p, st);
}

static int walk_stat64(const char *p, struct stat64 *st)
{
	return stat64(p, st);
}

static int walk_lstat64(const char *p, struct stat64 *st)
{
	return lstat64(p, st);
}

static void *walk_opendir(const char *p)
{
	return opendir(p);
}

static void walk_closedir(void *d)
{
	closedir(d);
}

static struct dirent *walk_readdir(void *d)
{
	return readdir(d);
}

static struct dirent64 *walk_readdir64(void *d)
{
	return readdir64(d);
}

EXPORT int glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g)
{
	int (*real)(const char *, int, int (*)(const char *, int), glob_t *) = REAL(glob);
	if (!real)
		return GLOB_ABORTED;
	shim_init();
	/* A caller's own directory functions are its business (they reach the shim anyway). */
	if (!shim_mnt_len || (flags & GLOB_ALTDIRFUNC))
		return real(pattern, flags, errfunc, g);
	g->gl_opendir = walk_opendir;
	g->gl_readdir = walk_readdir;
	g->gl_closedir = walk_closedir;
	g->gl_stat = walk_stat;
	g->gl_lstat = walk_lstat;
	int r = real(pattern, flags | GLOB_ALTDIRFUNC, errfunc, g);
	g->gl_flags &= ~GLOB_ALTDIRFUNC;
	return r;
}

EXPORT int glob64(const char *pattern, int flags, int (*errfunc)(const char *, int), glob64_t *g)
{
	int (*real)(const char *, int, int (*)(const char *, int), glob64_t *) = REAL(glob64);
	if (!real)
		return GLOB_ABORTED;
	shim_init();
	if (!shim_mnt_len || (flags & GLOB_ALTDIRFUNC))
		return real(pattern, flags, errfunc, g);
	g->gl_opendir = walk_opendir;
	g->gl_readdir = walk_readdir64;
	g->gl_closedir = walk_closedir;
	g->gl_stat = walk_stat64;
	g->gl_lstat = walk_lstat64;
	int r = real(pattern, flags | GLOB_ALTDIRFUNC, errfunc, g);
	g->gl_flags &= ~GLOB_ALTDIRFUNC;
	return r;
}

/* ---- nftw, ftw ---- */

/* One walk over a redirected tree; a callback that starts another walk stacks a second one. */
struct walk {
	const char *user; /* the starting path as the caller wrote it */
	size_t user_len;
	size_t use_len; /* length of the mount's spelling of it, which prefixes every path the walk sees */
	union {
		int (*nftw)(const char *, const struct stat *, int, struct FTW *);
		int (*nftw64)(const char *, const struct stat64 *, int, struct FTW *);
		int (*ftw)(const char *, const struct stat *, int);
		int (*ftw64)(const char *, const struct stat64 *, int);
	} fn;
	struct walk *prev;
	char view[PATH_MAX];
};

static __thread struct walk *walking;

/* The program's name for a path of the walk, and where its last component starts there. */
static const char *view(struct walk *w, const char *p, int *base)
{
	size_t n = strlen(p);
	if (n < w->use_len || w->user_len + (n - w->use_len) >= sizeof(w->view))
		return p;
	memcpy(w->view, w->user, w->user_len);
	memcpy(w->view + w->user_len, p + w->use_len, n - w->use_len + 1);
	if (base)
		*base += (int)w->user_len - (int)w->use_len;
	return w->view;
}

static int nftw_step(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	struct walk *w = walking;
	struct FTW mine = *f;
	const char *v = view(w, p, &mine.base);
	walking = w->prev;
	int r = w->fn.nftw(v, st, flag, &mine);
	walking = w;
	return r;
}

static int nftw64_step(const char *p, const struct stat64 *st, int flag, struct FTW *f)
{
	struct walk *w = walking;
	struct FTW mine = *f;
	const char *v = view(w, p, &mine.base);
	walking = w->prev;
	int r = w->fn.nftw64(v, st, flag, &mine);
	walking = w;
	return r;
}

static int ftw_step(const char *p, const struct stat *st, int flag)
{
	struct walk *w = walking;
	const char *v = view(w, p, NULL);
	walking = w->prev;
	int r = w->fn.ftw(v, st, flag);
	walking = w;
	return r;
}

static int ftw64_step(const char *p, const struct stat64 *st, int flag)
{
	struct walk *w = walking;
	const char *v = view(w, p, NULL);
	walking = w->prev;
	int r = w->fn.ftw64(v, st, flag);
	walking = w;
	return r;
}

/* Run `call` on the mount's copy of a redirected start, with `w` on the stack of walks. */
#define WALK(path, fnfield, cb, real_call_user, real_call_mount)             \
	do {                                                                   \
		struct target t;                                               \
		shim_resolve(AT_FDCWD, path, &t);                              \
		if (t.how != TARGET_REDIRECTED)                                \
			return real_call_user;                                 \
		struct walk w = { .user = path, .user_len = strlen(path), .use_len = strlen(t.use), .prev = walking }; \
		w.fn.fnfield = cb;                                             \
		walking = &w;                                                  \
		int r_ = real_call_mount;                                      \
		walking = w.prev;                                              \
		return r_;                                                     \
	} while (0)

EXPORT int nftw(const char *path, int (*fn)(const char *, const struct stat *, int, struct FTW *), int fds, int flags)
{
	int (*real)(const char *, int (*)(const char *, const struct stat *, int, struct FTW *), int, int) = REAL(nftw);
	if (!real)
		MISSING();
	WALK(path, nftw, fn, real(path, fn, fds, flags), real(t.use, nftw_step, fds, flags));
}

EXPORT int nftw64(const char *path, int (*fn)(const char *, const struct stat64 *, int, struct FTW *), int fds, int flags)
{
	int (*real)(const char *, int (*)(const char *, const struct stat64 *, int, struct FTW *), int, int) = REAL(nftw64);
	if (!real)
		MISSING();
	WALK(path, nftw64, fn, real(path, fn, fds, flags), real(t.use, nftw64_step, fds, flags));
}

EXPORT int ftw(const char *path, int (*fn)(const char *, const struct stat *, int), int fds)
{
	int (*real)(const char *, int (*)(const char *, const struct stat *, int), int) = REAL(ftw);
	if (!real)
		MISSING();
	WALK(path, ftw, fn, real(path, fn, fds), real(t.use, ftw_step, fds));
}

EXPORT int ftw64(const char *path, int (*fn)(const char *, const struct stat64 *, int), int fds)
{
	int (*real)(const char *, int (*)(const char *, const struct stat64 *, int), int) = REAL(ftw64);
	if (!real)
		MISSING();
	WALK(path, ftw64, fn, real(path, fn, fds), real(t.use, ftw64_step, fds));
}

/* ---- scandirat ---- */

EXPORT int scandirat(int dirfd, const char *path, struct dirent ***list, int (*sel)(const struct dirent *),
	int (*cmp)(const struct dirent **, const struct dirent **))
{
	int (*real)(int, const char *, struct dirent ***, int (*)(const struct dirent *), int (*)(const struct dirent **, const struct dirent **)) =
		REAL(scandirat);
	if (!real)
		MISSING();
	struct target t;
	shim_resolve(dirfd, path, &t);
	return real(dirfd, t.use, list, sel, cmp);
}

EXPORT int scandirat64(int dirfd, const char *path, struct dirent64 ***list, int (*sel)(const struct dirent64 *),
	int (*cmp)(const struct dirent64 **, const struct dirent64 **))
{
	int (*real)(int, const char *, struct dirent64 ***, int (*)(const struct dirent64 *), int (*)(const struct dirent64 **, const struct dirent64 **)) =
		REAL(scandirat64);
	if (!real)
		MISSING();
	struct target t;
	shim_resolve(dirfd, path, &t);
	return real(dirfd, t.use, list, sel, cmp);
}
