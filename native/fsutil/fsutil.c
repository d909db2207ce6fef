/*
 * jiffy-fsutil: the overlayfs bits of the image store that Node cannot do (mknod, xattrs).
 *
 *   jiffy-fsutil whiteout PATH...   create overlay whiteouts: char device 0/0 at each PATH
 *   jiffy-fsutil opaque DIR...      mark each DIR opaque: trusted.overlay.opaque = "y"
 *   jiffy-fsutil scan [-z] DIR      print "opaque <relpath>" / "whiteout <relpath>" for DIR's tree,
 *                                   one per line (NUL-terminated with -z), never following symlinks
 *
 * Called once per layer with every path, not once per file. Callers have already checked that no
 * parent of PATH is a symlink (the unpacker creates every parent itself). Errors follow crun's
 * style: functions return a negative value and fill an error struct; only main prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define OPAQUE_XATTR "trusted.overlay.opaque"

struct fs_error {
  int err;
  char msg[512];
};

static int fail(struct fs_error *e, int err, const char *what, const char *path) {
  e->err = err;
  snprintf(e->msg, sizeof e->msg, "%s %s: %s", what, path, strerror(err));
  return -1;
}

/* A whiteout replaces whatever the layer had at PATH (a lower file of the same name is hidden). */
static int make_whiteout(const char *path, struct fs_error *e) {
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) return 0;
    if (S_ISDIR(st.st_mode)) return fail(e, EISDIR, "whiteout over a directory", path);
    if (unlink(path) < 0) return fail(e, errno, "unlink", path);
  }
  if (mknod(path, S_IFCHR | 0000, makedev(0, 0)) < 0) return fail(e, errno, "mknod", path);
  return 0;
}

static int make_opaque(const char *dir, struct fs_error *e) {
  struct stat st;
  if (lstat(dir, &st) < 0) return fail(e, errno, "lstat", dir);
  if (!S_ISDIR(st.st_mode)) return fail(e, ENOTDIR, "opaque on a non-directory", dir);
  if (lsetxattr(dir, OPAQUE_XATTR, "y", 1, 0) < 0) return fail(e, errno, "lsetxattr " OPAQUE_XATTR, dir);
  return 0;
}

static size_t scan_root_len;
static char scan_sep = '\n';

static int scan_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)ftw;
  const char *rel = path + scan_root_len;
  while (*rel == '/') rel++;
  if (*rel == '\0') rel = ".";
  if (type == FTW_D) {
    char v[8];
    ssize_t n = lgetxattr(path, OPAQUE_XATTR, v, sizeof v);
    if (n == 1 && v[0] == 'y') printf("opaque %s%c", rel, scan_sep);
  } else if (S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0)) {
    printf("whiteout %s%c", rel, scan_sep);
  }
  return 0;
}

static int scan(const char *dir, struct fs_error *e) {
  scan_root_len = strlen(dir);
  if (nftw(dir, scan_one, 64, FTW_PHYS) < 0) return fail(e, errno, "walk", dir);
  if (fflush(stdout) != 0) return fail(e, errno, "write", "stdout");
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: jiffy-fsutil whiteout PATH... | opaque DIR... | scan [-z] DIR\n");
  return 2;
}

int main(int argc, char **argv) {
  struct fs_error e = {0, ""};
  if (argc < 3) return usage();
  const char *cmd = argv[1];
  int rc = 0;
  if (strcmp(cmd, "whiteout") == 0) {
    for (int i = 2; i < argc && rc == 0; i++) rc = make_whiteout(argv[i], &e);
  } else if (strcmp(cmd, "opaque") == 0) {
    for (int i = 2; i < argc && rc == 0; i++) rc = make_opaque(argv[i], &e);
  } else if (strcmp(cmd, "scan") == 0) {
    int i = 2;
    if (strcmp(argv[i], "-z") == 0) {
      scan_sep = '\0';
      i++;
    }
    if (i != argc - 1) return usage();
    rc = scan(argv[i], &e);
  } else {
    return usage();
  }
  if (rc < 0) {
    fprintf(stderr, "jiffy-fsutil: %s\n", e.msg);
    return 1;
  }
  return 0;
}
