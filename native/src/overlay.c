/* Overlay mounts: the container rootfs (inside its mount namespace) and the host-side mounts of the
 * image store. The new mount API appends one layer per fsconfig("lowerdir+") call (Linux >= 6.8),
 * so the number of layers is not bounded by mount(2)'s one-page option string; older kernels get
 * mount(2) with paths made short by resolving them relative to `cwd`. */
#include "jl-container.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

/* The kernel explains fsconfig failures in the fs context's log; append it to the message. */
static int fs_error(int fsfd, struct jl_err *err, const char *what, const char *arg) {
  jl_syserr(err, "%s %s", what, arg ? arg : "");
  char log[512];
  ssize_t n = read(fsfd, log, sizeof log - 1);
  if (n > 0) {
    log[n] = 0;
    if (log[n - 1] == '\n') log[n - 1] = 0;
    size_t l = strlen(err->msg);
    snprintf(err->msg + l, sizeof err->msg - l, " (kernel: %s)", log);
  }
  return -1;
}

static const char *abs_path(const char *p, const char *cwd, char *buf, size_t size) {
  if (p[0] == '/' || !cwd) return p;
  snprintf(buf, size, "%s/%s", cwd, p);
  return buf;
}

static int set_path(int fd, const char *key, const char *p, const char *cwd, struct jl_err *err) {
  char buf[PATH_MAX];
  const char *path = abs_path(p, cwd, buf, sizeof buf);
  if (fsconfig(fd, FSCONFIG_SET_STRING, key, path, 0) < 0) return fs_error(fd, err, key, path);
  return 0;
}

static int mount_new_api(const struct jl_overlay *ov, const char *target, struct jl_err *err) {
  cleanup_fd int fd = fsopen("overlay", FSOPEN_CLOEXEC);
  if (fd < 0) return jl_syserr(err, "fsopen overlay");
  for (size_t i = 0; i < ov->nlower; i++)
    if (set_path(fd, "lowerdir+", ov->lower[i], ov->cwd, err) < 0) return -1;
  if (ov->upper && set_path(fd, "upperdir", ov->upper, ov->cwd, err) < 0) return -1;
  if (ov->work && set_path(fd, "workdir", ov->work, ov->cwd, err) < 0) return -1;
  if (fsconfig(fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) return fs_error(fd, err, "fsconfig create overlay on", target);
  cleanup_fd int mfd = fsmount(fd, FSMOUNT_CLOEXEC, ov->readonly ? MOUNT_ATTR_RDONLY : 0);
  if (mfd < 0) return jl_syserr(err, "fsmount overlay for %s", target);
  if (move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) return jl_syserr(err, "move_mount overlay to %s", target);
  return 0;
}

/* mount(2) takes all options in one page: relative paths from cwd keep the string short. */
static int mount_legacy(const struct jl_overlay *ov, const char *target, struct jl_err *err) {
  char data[4096];
  size_t n = (size_t)snprintf(data, sizeof data, "lowerdir=");
  for (size_t i = 0; i < ov->nlower && n < sizeof data; i++)
    n += (size_t)snprintf(data + n, sizeof data - n, "%s%s", i ? ":" : "", ov->lower[i]);
  if (ov->upper && n < sizeof data) n += (size_t)snprintf(data + n, sizeof data - n, ",upperdir=%s", ov->upper);
  if (ov->work && n < sizeof data) n += (size_t)snprintf(data + n, sizeof data - n, ",workdir=%s", ov->work);
  if (n >= sizeof data) return jl_fail(err, "invalid_argument", "overlay options for %s exceed one page; use shorter layer paths", target);
  cleanup_fd int saved = -1;
  if (ov->cwd) {
    if (target[0] != '/') return jl_fail(err, "invalid_argument", "overlay target %s must be absolute when cwd is set", target);
    saved = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (saved < 0 || chdir(ov->cwd) < 0) return jl_syserr(err, "chdir %s", ov->cwd);
  }
  int r = mount("overlay", target, "overlay", ov->readonly ? MS_RDONLY : 0, data);
  if (r < 0) jl_syserr(err, "mount overlay on %s (%s)", target, data);
  if (saved >= 0 && fchdir(saved) < 0) { /* cwd only matters for relative paths, none follow */ }
  return r;
}

static int ro_bind(const struct jl_overlay *ov, const char *target, struct jl_err *err) {
  char buf[PATH_MAX];
  const char *src = abs_path(ov->lower[0], ov->cwd, buf, sizeof buf);
  cleanup_fd int t = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (t < 0) return jl_syserr(err, "open_tree %s", src);
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
  if (mount_setattr(t, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) return jl_syserr(err, "mount_setattr %s", src);
  if (move_mount(t, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) return jl_syserr(err, "move_mount %s to %s", src, target);
  return 0;
}

int jl_overlay_mount(const struct jl_overlay *ov, const char *target, struct jl_err *err) {
  if (ov->nlower == 0) return jl_fail(err, "invalid_argument", "overlay on %s: at least one lower layer is required", target);
  if (!ov->upper != !ov->work) return jl_fail(err, "invalid_argument", "overlay on %s: upper and work go together", target);
  /* overlayfs wants two lowers when there is no upper; one read-only layer is a read-only bind. */
  if (ov->nlower == 1 && !ov->upper) return ro_bind(ov, target, err);
  if (mount_new_api(ov, target, err) == 0) return 0;
  /* ENOSYS: no new mount API; EINVAL on "lowerdir+": kernel older than 6.8. Other errors are real. */
  if (err->errnum != ENOSYS && !(err->errnum == EINVAL && strstr(err->msg, "lowerdir+")))
    return -1;
  return mount_legacy(ov, target, err);
}

int jl_umount(const char *target, bool detach, struct jl_err *err) {
  if (umount2(target, (detach ? MNT_DETACH : 0) | UMOUNT_NOFOLLOW) < 0) return jl_syserr(err, "umount %s", target);
  return 0;
}
