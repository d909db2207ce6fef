/* The mount-namespace checklist, run in the container's first process before exec:
 *   1. make every inherited mount private (one recursive call) so nothing propagates back to the host
 *   2. the rootfs becomes a mount point (overlay, or a bind of root.path onto itself)
 *   3. config mounts, in order; targets are resolved INSIDE the rootfs with openat2(RESOLVE_IN_ROOT)
 *      so a symlink in an untrusted image cannot redirect a mount onto the host
 *      (CVE-2015-1328-style escapes, runc's /proc mount-over-symlink CVE-2019-19921 and
 *      CVE-2019-16884)
 *   4. default /dev nodes and symlinks, sysctls, masked paths, read-only paths
 *   5. pivot_root(".", ".") and detach the old root, then make / read-only when asked
 */
#include "jl-container.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <linux/openat2.h>

static int open_in_root(int rootfd, const char *path, int flags) {
  struct open_how how = {
    .flags = (uint64_t)(flags | O_CLOEXEC),
    /* Magic links (/proc/self/root and friends) would jump out of the rootfs. */
    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  while (*path == '/') path++;
  if (!*path) path = ".";
  return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

/* Create the missing components of path (all directories, or a file at the end). */
static int mkdir_in_root(int rootfd, const char *path, bool file, struct jl_err *err) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  char *slash = buf;
  while (slash) {
    slash = strchr(slash + 1, '/');
    if (slash) *slash = 0;
    cleanup_fd int fd = open_in_root(rootfd, buf, O_PATH);
    if (fd < 0 && errno == ENOENT) {
      char *base = strrchr(buf, '/');
      *base = 0;
      cleanup_fd int parent = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
      *base = '/';
      if (parent < 0) return jl_syserr(err, "open %s", buf);
      int r = (file && !slash) ? mknodat(parent, base + 1, S_IFREG | 0644, 0) : mkdirat(parent, base + 1, 0755);
      if (r < 0 && errno != EEXIST) return jl_syserr(err, "create %s in rootfs", buf);
    } else if (fd < 0) {
      return jl_syserr(err, "open %s in rootfs", buf);
    }
    if (slash) *slash = '/';
  }
  return 0;
}

static int target_fd(int rootfd, const char *dest, bool file, struct jl_err *err) {
  int fd = open_in_root(rootfd, dest, O_PATH);
  if (fd >= 0 || errno != ENOENT) return fd >= 0 ? fd : jl_syserr(err, "open %s in rootfs", dest);
  if (mkdir_in_root(rootfd, dest, file, err) < 0) return -1;
  fd = open_in_root(rootfd, dest, O_PATH);
  return fd >= 0 ? fd : jl_syserr(err, "open %s in rootfs", dest);
}

static unsigned long long attr_of(unsigned long f) {
  unsigned long long a = 0;
  if (f & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
  if (f & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
  if (f & MS_NODEV) a |= MOUNT_ATTR_NODEV;
  if (f & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
  if (f & MS_NODIRATIME) a |= MOUNT_ATTR_NODIRATIME;
  if (f & MS_NOATIME) a |= MOUNT_ATTR_NOATIME;
  else if (f & MS_STRICTATIME) a |= MOUNT_ATTR_STRICTATIME;
  return a;
}

/* Bind with the new mount API: clone the source tree, set flags on the detached copy (so a
 * read-only bind is never briefly writable), then attach it onto the target fd. */
static int bind_at(const char *src, int tfd, const struct jl_mount *m, struct jl_err *err) {
  unsigned int rec = m->recursive ? AT_RECURSIVE : 0;
  cleanup_fd int t = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
  if (t < 0) return jl_syserr(err, "open_tree %s", src);
  struct mount_attr attr = {.attr_set = attr_of(m->flags), .propagation = m->propagation & ~MS_REC};
  if (attr.attr_set & (MOUNT_ATTR_NOATIME | MOUNT_ATTR_STRICTATIME)) attr.attr_clr = MOUNT_ATTR__ATIME;
  if ((attr.attr_set || attr.propagation) && mount_setattr(t, "", AT_EMPTY_PATH | rec, &attr, sizeof attr) < 0)
    return jl_syserr(err, "mount_setattr %s", m->dest);
  if (move_mount(t, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return jl_syserr(err, "move_mount %s onto %s", src, m->dest);
  return 0;
}

static int mount_one(int rootfd, const struct jl_config *cfg, const struct jl_mount *m, struct jl_err *err) {
  char src[PATH_MAX];
  struct stat st;
  bool file = false;
  if (m->bind) {
    if (m->source[0] == '/' || !cfg->bundle[0]) snprintf(src, sizeof src, "%s", m->source);
    else if (snprintf(src, sizeof src, "%s/%s", cfg->bundle, m->source) >= (int)sizeof src)
      return jl_fail(err, "invalid_argument", "bind source %s: path too long", m->source);
    if (stat(src, &st) < 0) return jl_syserr(err, "bind source %s", src);
    file = !S_ISDIR(st.st_mode);
  }
  cleanup_fd int tfd = target_fd(rootfd, m->dest, file, err);
  if (tfd < 0) return -1;
  if (m->bind) return bind_at(src, tfd, m, err);
  char fdpath[64];
  snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", tfd);
  if (mount(m->source, fdpath, m->type, m->flags, m->data && *m->data ? m->data : NULL) < 0)
    return jl_syserr(err, "mount %s (%s) on %s", m->source, m->type, m->dest);
  if (m->propagation) {
    /* tfd still names the covered directory; reopen to reach the new mount on top of it. */
    cleanup_fd int nfd = open_in_root(rootfd, m->dest, O_PATH);
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", nfd);
    if (nfd < 0 || mount(NULL, fdpath, NULL, m->propagation, NULL) < 0)
      return jl_syserr(err, "set propagation of %s", m->dest);
  }
  return 0;
}

/* Nodes every OCI container gets. mknod is one syscall each; a bind of the host node (what a
 * rootless runtime must do) is the fallback when mknod is refused. */
static const struct { const char *name; unsigned maj, min; } devices[] = {
  {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};
static const struct { const char *name, *target; } dev_links[] = {
  {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
  {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"}, {"core", "/proc/kcore"},
};

static int setup_dev(int rootfd, struct jl_err *err) {
  cleanup_fd int dev = target_fd(rootfd, "/dev", false, err);
  if (dev < 0) return -1;
  cleanup_fd int devdir = open_in_root(rootfd, "/dev", O_RDONLY | O_DIRECTORY);
  if (devdir < 0) return jl_syserr(err, "open /dev in rootfs");
  for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
    if (mknodat(devdir, devices[i].name, S_IFCHR | 0666, makedev(devices[i].maj, devices[i].min)) == 0 || errno == EEXIST)
      continue;
    char host[64], dest[64];
    snprintf(host, sizeof host, "/dev/%s", devices[i].name);
    snprintf(dest, sizeof dest, "/dev/%s", devices[i].name);
    struct jl_mount m = {.dest = dest, .bind = true};
    cleanup_fd int t = target_fd(rootfd, dest, true, err);
    if (t < 0 || bind_at(host, t, &m, err) < 0) return jl_err_wrap(err, "create /dev/%s", devices[i].name);
  }
  for (size_t i = 0; i < sizeof dev_links / sizeof dev_links[0]; i++)
    if (symlinkat(dev_links[i].target, devdir, dev_links[i].name) < 0 && errno != EEXIST)
      return jl_syserr(err, "symlink /dev/%s", dev_links[i].name);
  mkdirat(devdir, "pts", 0755);
  mkdirat(devdir, "shm", 01777);
  return 0;
}

static int write_sysctls(int rootfd, const struct jl_config *cfg, struct jl_err *err) {
  for (size_t i = 0; i < cfg->nsysctl; i++) {
    char path[512];
    int n = snprintf(path, sizeof path, "/proc/sys/%s", cfg->sysctl_keys[i]);
    for (char *p = path + 10; p < path + n; p++) if (*p == '.') *p = '/';
    cleanup_fd int fd = open_in_root(rootfd, path, O_WRONLY | O_TRUNC);
    if (fd < 0) return jl_syserr(err, "linux.sysctl.%s: open %s", cfg->sysctl_keys[i], path);
    if (jl_write_all(fd, cfg->sysctl_vals[i], strlen(cfg->sysctl_vals[i])) < 0)
      return jl_syserr(err, "linux.sysctl.%s: write %s", cfg->sysctl_keys[i], cfg->sysctl_vals[i]);
  }
  return 0;
}

static int mask_paths(int rootfd, const struct jl_config *cfg, struct jl_err *err) {
  for (size_t i = 0; i < cfg->nmasked; i++) {
    cleanup_fd int fd = open_in_root(rootfd, cfg->masked[i], O_PATH);
    if (fd < 0 && errno == ENOENT) continue;
    if (fd < 0) return jl_syserr(err, "linux.maskedPaths: open %s", cfg->masked[i]);
    struct stat st;
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
    if (fstat(fd, &st) < 0) return jl_syserr(err, "linux.maskedPaths: stat %s", cfg->masked[i]);
    /* A directory is hidden under an empty read-only tmpfs, a file under /dev/null. */
    int r = S_ISDIR(st.st_mode) ? mount("tmpfs", fdpath, "tmpfs", MS_RDONLY, "size=0")
                                : mount("/dev/null", fdpath, NULL, MS_BIND, NULL);
    if (r < 0) return jl_syserr(err, "linux.maskedPaths: mount over %s", cfg->masked[i]);
  }
  return 0;
}

static int readonly_paths(int rootfd, const struct jl_config *cfg, struct jl_err *err) {
  for (size_t i = 0; i < cfg->nropaths; i++) {
    cleanup_fd int fd = open_in_root(rootfd, cfg->ropaths[i], O_PATH);
    if (fd < 0 && errno == ENOENT) continue;
    if (fd < 0) return jl_syserr(err, "linux.readonlyPaths: open %s", cfg->ropaths[i]);
    cleanup_fd int t = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    if (t < 0) return jl_syserr(err, "linux.readonlyPaths: open_tree %s", cfg->ropaths[i]);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount_setattr(t, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
      return jl_syserr(err, "linux.readonlyPaths: mount_setattr %s", cfg->ropaths[i]);
    if (move_mount(t, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
      return jl_syserr(err, "linux.readonlyPaths: move_mount %s", cfg->ropaths[i]);
  }
  return 0;
}

/* pivot_root(".", ".") stacks the old root on top of the new one at "/"; detaching "." then
 * removes the old root. No put_old directory is needed, so this works on a read-only rootfs. The
 * rootfs must not sit on a shared mount (pivot_root refuses): step 1 made everything private. */
static int pivot(int rootfd, struct jl_err *err) {
  if (fchdir(rootfd) < 0) return jl_syserr(err, "chdir rootfs");
  if (syscall(SYS_pivot_root, ".", ".") < 0) return jl_syserr(err, "pivot_root");
  if (umount2(".", MNT_DETACH) < 0) return jl_syserr(err, "umount old root");
  if (chdir("/") < 0) return jl_syserr(err, "chdir /");
  return 0;
}

static int prepare_root(const struct jl_config *cfg, const struct jl_overlay *ov, struct jl_err *err) {
  unsigned long prop = (cfg->root_propagation & MS_SLAVE) ? MS_SLAVE : MS_PRIVATE;
  if (mount(NULL, "/", NULL, MS_REC | prop, NULL) < 0) return jl_syserr(err, "make / private");
  if (ov) {
    if (jl_overlay_mount(ov, cfg->root, err) < 0) return jl_err_wrap(err, "rootfsOverlay");
    return 0;
  }
  if (mount(cfg->root, cfg->root, NULL, MS_BIND | MS_REC, NULL) < 0) return jl_syserr(err, "bind root.path %s", cfg->root);
  return 0;
}

int jl_rootfs_setup(const struct jl_config *cfg, const struct jl_overlay *ov, struct jl_err *err) {
  if (prepare_root(cfg, ov, err) < 0) return -1;
  cleanup_fd int rootfd = open(cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return jl_syserr(err, "root.path: open %s", cfg->root);
  for (size_t i = 0; i < cfg->nmounts; i++)
    if (mount_one(rootfd, cfg, &cfg->mounts[i], err) < 0) return jl_err_wrap(err, "mounts[%zu]", i);
  if (setup_dev(rootfd, err) < 0 || write_sysctls(rootfd, cfg, err) < 0 ||
      mask_paths(rootfd, cfg, err) < 0 || readonly_paths(rootfd, cfg, err) < 0)
    return -1;
  if (pivot(rootfd, err) < 0) return -1;
  if (cfg->root_ro) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount_setattr(AT_FDCWD, "/", 0, &attr, sizeof attr) < 0) return jl_syserr(err, "root.readonly: remount / read-only");
  }
  if (cfg->root_propagation && !(cfg->root_propagation & MS_SLAVE) &&
      mount(NULL, "/", NULL, cfg->root_propagation, NULL) < 0)
    return jl_syserr(err, "linux.rootfsPropagation");
  return 0;
}
