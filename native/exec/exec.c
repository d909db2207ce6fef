/*
 * jiffy-exec: run a process inside a running container with the container's process security
 * settings (what `jiffy exec` uses; util-linux nsenter would leave the host root's full capability
 * set and no no_new_privs on the new process, so it cannot be the last step).
 *
 *   jiffy-exec --pid PID [--uid U] [--gid G] [--groups G1,G2] [--cwd DIR] [--no-new-privs]
 *              [--cap-bounding HEX] [--cap-effective HEX] [--cap-permitted HEX]
 *              [--cap-inheritable HEX] [--cap-ambient HEX] [--rlimit RES=SOFT:HARD]... -- CMD ARG...
 *
 * Checklist: open every namespace of PID and its root before entering any (after the mount
 * namespace switch /proc is the container's); setns into each namespace that differs from ours
 * (so a --network host container keeps the host network); chroot to PID's root; fork (a pid
 * namespace applies to children only); in the child, in the launcher's order: rlimits, bounding
 * set, KEEPCAPS across the uid change, final sets, ambient, no_new_privs, cwd as the user, close
 * every inherited fd, exec with the container's PATH. The parent relays signals and the exit
 * status (128+N for a signal, as the OCI runtimes report it). The environment is our own
 * (the caller passes the container's). Cgroups are joined by the caller before this runs.
 * Errors: one line "jiffy-exec: <what failed>" on stderr, exit 126 (127: command not found).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_GROUPS 64
#define MAX_RLIMITS 16

enum { C_BOUNDING, C_EFFECTIVE, C_PERMITTED, C_INHERITABLE, C_AMBIENT, C_COUNT };

struct opts {
  pid_t pid;
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_GROUPS];
  size_t ngroups;
  const char *cwd;
  int no_new_privs;
  uint64_t caps[C_COUNT];
  struct { int res; struct rlimit rl; } rlimits[MAX_RLIMITS];
  size_t nrlimits;
  char **argv;
};

static const char *const NS[] = {"ipc", "uts", "net", "pid", "cgroup", "mnt"};
#define NNS (sizeof NS / sizeof NS[0])

static void die(int code, const char *fmt, ...) {
  va_list ap;
  int e = errno;
  fputs("jiffy-exec: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (e) fprintf(stderr, ": %s", strerror(e));
  fputc('\n', stderr);
  _exit(code);
}

static uint64_t parse_u64(const char *s, int base, const char *what) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, base);
  if (errno || *end || end == s) {
    errno = 0;
    die(126, "invalid %s %s", what, s);
  }
  return v;
}

static void parse_groups(struct opts *o, char *list) {
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    if (o->ngroups == MAX_GROUPS) die(126, "more than %d additional groups", MAX_GROUPS);
    o->groups[o->ngroups++] = (gid_t)parse_u64(tok, 10, "group");
  }
}

static void parse_rlimit(struct opts *o, const char *spec) {
  unsigned long long res, soft, hard;
  if (o->nrlimits == MAX_RLIMITS || sscanf(spec, "%llu=%llu:%llu", &res, &soft, &hard) != 3)
    die(126, "invalid --rlimit %s (want RES=SOFT:HARD, numbers)", spec);
  o->rlimits[o->nrlimits].res = (int)res;
  o->rlimits[o->nrlimits].rl = (struct rlimit){soft, hard};
  o->nrlimits++;
}

static void parse_args(struct opts *o, int argc, char **argv) {
  static const char *const capflags[C_COUNT] = {"--cap-bounding", "--cap-effective", "--cap-permitted",
                                                 "--cap-inheritable", "--cap-ambient"};
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--no-new-privs") == 0) { o->no_new_privs = 1; continue; }
    if (i + 1 >= argc) die(126, "%s needs a value", a);
    char *v = argv[++i];
    int done = 0;
    for (int c = 0; c < C_COUNT; c++)
      if (strcmp(a, capflags[c]) == 0) { o->caps[c] = parse_u64(v, 16, a); done = 1; }
    if (done) continue;
    if (strcmp(a, "--pid") == 0) o->pid = (pid_t)parse_u64(v, 10, "pid");
    else if (strcmp(a, "--uid") == 0) o->uid = (uid_t)parse_u64(v, 10, "uid");
    else if (strcmp(a, "--gid") == 0) o->gid = (gid_t)parse_u64(v, 10, "gid");
    else if (strcmp(a, "--groups") == 0) parse_groups(o, v);
    else if (strcmp(a, "--cwd") == 0) o->cwd = v;
    else if (strcmp(a, "--rlimit") == 0) parse_rlimit(o, v);
    else die(126, "unknown option %s", a);
  }
  if (o->pid <= 0 || i + 1 >= argc) die(126, "usage: jiffy-exec --pid PID [options] -- CMD ARG...");
  o->argv = argv + i + 1;
}

/* Open all namespaces (and the root) first: once in the container's mount namespace, /proc/PID
 * would name a process of the container's pid namespace, if any. */
static void enter(pid_t pid) {
  int fds[NNS];
  char p[64];
  for (size_t i = 0; i < NNS; i++) {
    struct stat theirs, ours;
    snprintf(p, sizeof p, "/proc/%d/ns/%s", pid, NS[i]);
    char self[64];
    snprintf(self, sizeof self, "/proc/self/ns/%s", NS[i]);
    fds[i] = -1;
    if (stat(p, &theirs) < 0) die(126, "stat %s (is the container still running?)", p);
    if (stat(self, &ours) == 0 && ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev) continue;
    if ((fds[i] = open(p, O_RDONLY | O_CLOEXEC)) < 0) die(126, "open %s", p);
  }
  snprintf(p, sizeof p, "/proc/%d/root", pid);
  int root = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) die(126, "open %s", p);
  for (size_t i = 0; i < NNS; i++) {
    if (fds[i] >= 0 && setns(fds[i], 0) < 0) die(126, "setns %s of pid %d", NS[i], pid);
    if (fds[i] >= 0) close(fds[i]);
  }
  /* setns(mnt) put us at the namespace's root; chroot to the process's own root in case the
   * runtime used chroot rather than pivot_root. */
  if (fchdir(root) < 0 || chroot(".") < 0 || chdir("/") < 0) die(126, "chroot to the root of pid %d", pid);
  close(root);
}

static void drop_bounding(uint64_t keep) {
  for (int c = 0; c <= CAP_LAST_CAP; c++)
    if (!(keep & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      die(126, "prctl(PR_CAPBSET_DROP, %d)", c);
}

static void set_caps(const uint64_t *caps) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  for (int i = 0; i < 2; i++) {
    data[i].effective = (uint32_t)(caps[C_EFFECTIVE] >> (32 * i));
    data[i].permitted = (uint32_t)(caps[C_PERMITTED] >> (32 * i));
    data[i].inheritable = (uint32_t)(caps[C_INHERITABLE] >> (32 * i));
  }
  if (syscall(SYS_capset, &hdr, data) < 0) die(126, "capset");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) die(126, "clearing ambient caps");
  for (int c = 0; c <= CAP_LAST_CAP; c++)
    if ((caps[C_AMBIENT] & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
      die(126, "raising ambient cap %d (it must also be permitted and inheritable)", c);
}

/* The launcher's order (native/src/process.c): each step while it is still permitted. */
static void apply(const struct opts *o) {
  for (size_t i = 0; i < o->nrlimits; i++)
    if (setrlimit(o->rlimits[i].res, &o->rlimits[i].rl) < 0) die(126, "setrlimit %d", o->rlimits[i].res);
  drop_bounding(o->caps[C_BOUNDING]);
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) die(126, "prctl(PR_SET_KEEPCAPS)");
  if (setgroups(o->ngroups, o->groups) < 0) die(126, "setgroups");
  if (setresgid(o->gid, o->gid, o->gid) < 0) die(126, "setresgid %u", o->gid);
  if (setresuid(o->uid, o->uid, o->uid) < 0) die(126, "setresuid %u", o->uid);
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) die(126, "prctl(PR_SET_KEEPCAPS)");
  set_caps(o->caps);
  if (o->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die(126, "prctl(PR_SET_NO_NEW_PRIVS)");
  if (o->cwd && chdir(o->cwd) < 0) die(126, "chdir %s", o->cwd);
}

/* No fd of ours may reach the container's process (a host directory fd is an escape). */
static void close_fds(void) {
  if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
  for (int fd = 3; fd < 1024; fd++) close(fd);
}

/* PATH lookup with the container's PATH (our environment is the container's). */
static void run(char **argv) {
  if (strchr(argv[0], '/')) {
    execv(argv[0], argv);
    die(errno == ENOENT ? 127 : 126, "exec %s", argv[0]);
  }
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  int saved = ENOENT;
  for (const char *dir = path;;) {
    const char *end = strchrnul(dir, ':');
    char full[4096];
    snprintf(full, sizeof full, "%.*s/%s", (int)(end - dir), end == dir ? "." : dir, argv[0]);
    execv(full, argv);
    if (errno != ENOENT && errno != ENOTDIR) saved = errno;
    if (!*end) break;
    dir = end + 1;
  }
  errno = saved;
  die(saved == ENOENT ? 127 : 126, "exec %s (searched the container's PATH)", argv[0]);
}

static pid_t child;
static void relay(int sig) {
  if (child > 0) kill(child, sig);
}

int main(int argc, char **argv) {
  struct opts o = {0};
  parse_args(&o, argc, argv);
  enter(o.pid);
  child = fork();
  if (child < 0) die(126, "fork");
  if (child == 0) {
    apply(&o);
    close_fds();
    run(o.argv);
  }
  static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};
  struct sigaction sa = {.sa_handler = relay};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
  int status;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR) die(126, "waitpid");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
