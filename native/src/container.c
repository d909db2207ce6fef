/* jl_spawn: clone the container's first process and run the setup checklist in it (jl-container.h). */
#include "jl-container.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

enum { ST_ERROR = 1, ST_READY = 2 };
struct status_msg { int kind; struct jl_err err; };

struct child_arg { struct jl_spawn *s; int status_w; int fifo_fd; };

/* One stack is enough: with CLONE_VFORK the parent sleeps until the child execs, so two children
 * never run on it at once; without CLONE_VM (create mode) the child has its own copy anyway. */
static char child_stack[256 * 1024] __attribute__((aligned(16)));

static int setup_stdio(const struct jl_spawn *s, struct jl_err *err) {
  for (int i = 0; i < 3; i++) {
    if (s->stdio[i] < 0) continue;
    if (s->stdio[i] == i) {
      if (fcntl(i, F_SETFD, 0) < 0) return jl_syserr(err, "fcntl stdio %d", i);
    } else if (dup2(s->stdio[i], i) < 0) {
      return jl_syserr(err, "dup2 stdio %d", i);
    }
  }
  return 0;
}

static int join_cgroup(const struct jl_spawn *s, struct jl_err *err) {
  /* Writing "0" moves the writer; done by the child itself so the parent needs no round trip. */
  for (int i = 0; i < s->ncg; i++)
    if (write(s->cg_fds[i], "0", 1) < 0) return jl_syserr(err, "join cgroup (cgroup.procs)");
  return 0;
}

/* Join namespaces given by path (pid is joined by the parent: setns(pid) only affects children).
 * All files are opened before any setns because joining the mount namespace changes what paths mean. */
static int join_namespaces(const struct jl_config *cfg, int netns_fd, struct jl_err *err) {
  int fds[JL_NS_COUNT];
  for (int k = 0; k < JL_NS_COUNT; k++) {
    fds[k] = -1;
    if (k == JL_NS_PID || !cfg->ns_path[k]) continue;
    fds[k] = open(cfg->ns_path[k], O_RDONLY | O_CLOEXEC);
    if (fds[k] < 0) return jl_syserr(err, "linux.namespaces: open %s namespace %s", jl_ns_name[k], cfg->ns_path[k]);
  }
  int order[] = {JL_NS_NET, JL_NS_IPC, JL_NS_UTS, JL_NS_CGROUP, JL_NS_MNT};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    int k = order[i];
    if (fds[k] >= 0 && setns(fds[k], jl_ns_flag[k]) < 0)
      return jl_syserr(err, "linux.namespaces: setns %s %s", jl_ns_name[k], cfg->ns_path[k]);
  }
  if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) return jl_syserr(err, "setns network namespace");
  return 0;
}

/* JIFFY_LAUNCH_TRACE=1: phase timings of the setup on stderr (development aid). */
static uint64_t trace_t0;
static int trace_fd = 2;
static void trace(const char *what) {
  static int on = -1;
  if (on < 0) on = getenv("JIFFY_LAUNCH_TRACE") != NULL;
  if (!on) return;
  uint64_t now = jl_now_us();
  if (!trace_t0) trace_t0 = now;
  dprintf(trace_fd, "jiffy-launch child %d: %s +%llu us (at %llu)\n", getpid(), what, (unsigned long long)(now - trace_t0), (unsigned long long)now);
}

static int boot_setup(struct child_arg *a, struct jl_err *err) {
  const struct jl_config *cfg = a->s->cfg;
  if (join_namespaces(cfg, a->s->netns_fd, err) < 0) return -1;
  /* Unshared only now, after joining the cgroup, so the namespace root is the container's cgroup. */
  if ((cfg->ns_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0) return jl_syserr(err, "unshare cgroup namespace");
  if ((cfg->ns_flags & CLONE_NEWNET) && a->s->netns_fd < 0 && jl_loopback_up(err) < 0) return -1;
  if (a->s->exec_fifo) {
    /* Opened O_PATH before pivot_root hides the host path; reopened for write at the end. */
    a->fifo_fd = open(a->s->exec_fifo, O_PATH | O_CLOEXEC);
    if (a->fifo_fd < 0) return jl_syserr(err, "open exec fifo %s", a->s->exec_fifo);
  }
  trace("joined");
  if (jl_rootfs_setup(cfg, a->s->overlay, err) < 0) return -1;
  if (cfg->hostname && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0) return jl_syserr(err, "hostname: sethostname");
  return 0;
}

static int wait_for_start(struct child_arg *a, struct jl_err *err) {
  struct status_msg ready = {.kind = ST_READY};
  if (jl_write_all(a->status_w, &ready, sizeof ready) < 0) return jl_syserr(err, "report ready");
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", a->fifo_fd);
  /* Blocks until `start` opens the fifo for reading; exec then closes it (CLOEXEC), which `start`
   * sees as EOF: the container is running. */
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return jl_syserr(err, "open exec fifo");
  if (write(fd, "0", 1) < 0) return jl_syserr(err, "write exec fifo");
  return 0;
}

static int child_run(struct child_arg *a, struct jl_err *err) {
  struct jl_spawn *s = a->s;
  trace_t0 = 0;
  if (getenv("JIFFY_LAUNCH_TRACE")) trace_fd = fcntl(2, F_DUPFD_CLOEXEC, 50);
  trace("start");
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* Ignored signals stay ignored across exec; the server ignores SIGPIPE for itself only. */
  signal(SIGPIPE, SIG_DFL);
  if (setup_stdio(s, err) < 0 || join_cgroup(s, err) < 0 || jl_process_oom_score(s->proc, err) < 0) return -1;
  if (s->join_pidfd >= 0) {
    /* exec into a running container: one setns over the pidfd joins all its namespaces at once
     * (Linux >= 5.8); after the mount namespace switch, root and cwd are that namespace's root. */
    if (s->join_flags && setns(s->join_pidfd, s->join_flags & ~CLONE_NEWPID) < 0)
      return jl_syserr(err, "setns into the container's namespaces");
  } else if (boot_setup(a, err) < 0) {
    return -1;
  }
  trace("namespaces+rootfs");
  if (jl_process_apply(s->proc, err) < 0) return -1;
  trace("process");
  /* After the uid change on purpose: changing credentials clears the parent-death signal. */
  if (s->die_with_parent && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) return jl_syserr(err, "prctl(PR_SET_PDEATHSIG)");
  if (s->exec_fifo && wait_for_start(a, err) < 0) return -1;
  return jl_process_exec(s->proc, err);
}

static int child_main(void *arg) {
  struct child_arg *a = arg;
  struct status_msg msg = {.kind = ST_ERROR};
  child_run(a, &msg.err);
  /* < PIPE_BUF: the write is atomic and never blocks on an empty pipe. */
  if (write(a->status_w, &msg, sizeof msg) < 0) { /* the parent sees EOF and reports an unknown failure */ }
  _exit(127);
}

/* setns(CLONE_NEWPID) only changes the namespace of children-to-be, so joining a pid namespace
 * (exec, or linux.namespaces with a pid path) happens here, around the clone. */
static int enter_pid_ns(const struct jl_spawn *s, int *saved, struct jl_err *err) {
  *saved = -1;
  cleanup_fd int opened = -1;
  int target = -1;
  if (s->join_pidfd >= 0 && (s->join_flags & CLONE_NEWPID)) {
    target = s->join_pidfd;
  } else if (s->cfg && s->cfg->ns_path[JL_NS_PID]) {
    target = opened = open(s->cfg->ns_path[JL_NS_PID], O_RDONLY | O_CLOEXEC);
    if (target < 0) return jl_syserr(err, "linux.namespaces: open pid namespace %s", s->cfg->ns_path[JL_NS_PID]);
  }
  if (target < 0) return 0;
  *saved = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  if (*saved < 0) return jl_syserr(err, "open /proc/self/ns/pid");
  if (setns(target, CLONE_NEWPID) < 0) {
    close(*saved);
    *saved = -1;
    return jl_syserr(err, "setns into the pid namespace");
  }
  return 0;
}

static void leave_pid_ns(int saved) {
  if (saved < 0) return;
  /* Going back to our own active pid namespace is always allowed. */
  if (setns(saved, CLONE_NEWPID) < 0) abort();
  close(saved);
}

static int clone_flags(const struct jl_spawn *s) {
  int flags = SIGCHLD;
  if (!s->exec_fifo) flags |= CLONE_VM | CLONE_VFORK;
  if (s->join_pidfd >= 0) return flags;
  /* cgroup: unshared by the child after it joined its cgroup; net: a pooled netns is joined by setns. */
  flags |= s->cfg->ns_flags & ~CLONE_NEWCGROUP;
  if (s->netns_fd >= 0) flags &= ~CLONE_NEWNET;
  return flags;
}

/* Read the child's verdict: an error, READY (create mode), or EOF (exec happened). */
static int read_status(int fd, pid_t pid, bool want_ready, struct jl_err *err) {
  struct status_msg msg;
  size_t got = 0;
  while (got < sizeof msg) {
    ssize_t r = read(fd, (char *)&msg + got, sizeof msg - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  if (got == sizeof msg && msg.kind == ST_READY && want_ready) return 0;
  if (got == sizeof msg && msg.kind == ST_ERROR) *err = msg.err;
  else if (got > 0 || want_ready) jl_fail(err, "internal", "container process %d died during setup", pid);
  else return 0;
  waitpid(pid, NULL, 0);
  return -1;
}

int jl_spawn(struct jl_spawn *s, pid_t *pid, struct jl_err *err) {
  if (!s->proc) s->proc = &s->cfg->proc;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return jl_syserr(err, "pipe");
  cleanup_fd int status_r = p[0];
  struct child_arg a = {.s = s, .status_w = p[1], .fifo_fd = -1};
  int saved_pidns;
  if (enter_pid_ns(s, &saved_pidns, err) < 0) { close(p[1]); return -1; }
  uint64_t t = jl_now_us();
  *pid = clone(child_main, child_stack + sizeof child_stack, clone_flags(s), &a);
  int clone_errno = errno;
  if (getenv("JIFFY_LAUNCH_TRACE")) dprintf(2, "jiffy-launch spawn: clone at %llu, until exec %llu us\n", (unsigned long long)t, (unsigned long long)(jl_now_us() - t));
  leave_pid_ns(saved_pidns);
  close(p[1]);
  if (*pid < 0) {
    errno = clone_errno;
    return jl_syserr(err, "clone");
  }
  return read_status(status_r, *pid, s->exec_fifo != NULL, err);
}
