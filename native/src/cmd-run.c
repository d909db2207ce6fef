/* `run` (foreground, returns the container's exit code) and `create` (init waits on exec.fifo). */
#include "jl-cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

struct prepared {
  struct jl_config cfg;
  struct jl_cgroup cg;
  char dir[PATH_MAX];
  char bundle[PATH_MAX];
  int cg_fds[JL_CG_MAXH]; int ncg;
};

static void prepared_free(struct prepared *p, bool remove, const char *root, const char *id) {
  struct jl_err ignore;
  for (int i = 0; i < p->ncg; i++) close(p->cg_fds[i]);
  p->ncg = 0;
  if (remove) {
    jl_cg_kill_all(&p->cg);
    jl_cg_destroy(&p->cg, &ignore);
    jl_state_remove(root, id, &ignore);
  } else {
    jl_cg_close(&p->cg);
  }
  jl_config_free(&p->cfg);
}

/* Everything that can fail cheaply (config, id, state dir) happens before the cgroup exists. */
static int prepare(struct jl_cli *c, const char *id, struct prepared *p, struct jl_err *err) {
  memset(p, 0, sizeof *p);
  for (int i = 0; i < JL_CG_MAXH; i++) p->cg.dirfd[i] = p->cg.parentfd[i] = -1;
  if (!realpath(c->bundle ? c->bundle : ".", p->bundle)) return jl_syserr(err, "bundle %s", c->bundle ? c->bundle : ".");
  if (jl_config_load(p->bundle, &p->cfg, err) < 0) return -1;
  if (jl_state_dir(c->root, id, p->dir, sizeof p->dir, err) < 0) return -1;
  if (jl_mkdir_p(c->root, err) < 0) return -1;
  char stale[PATH_MAX + 16];
  snprintf(stale, sizeof stale, "%s/state.json", p->dir);
  /* A state dir without state.json is what a launcher killed mid-create leaves: reclaim it. */
  if (access(p->dir, F_OK) == 0 && access(stale, F_OK) < 0) jl_state_remove(c->root, id, err);
  if (mkdir(p->dir, 0700) < 0) {
    if (errno == EEXIST) return jl_fail(err, "already_exists", "container %s already exists (%s)", id, p->dir);
    return jl_syserr(err, "mkdir %s", p->dir);
  }
  enum jl_cg_mode mode;
  if (jl_cg_detect(&mode, err) < 0 || jl_cg_create(&p->cg, mode, id, err) < 0) {
    rmdir(p->dir);
    return -1;
  }
  if (jl_cg_apply(&p->cg, &p->cfg.res, err) < 0 || jl_cg_procs_fds(&p->cg, p->cg_fds, &p->ncg, err) < 0) return -1;
  return 0;
}

static int write_pid_file(const char *path, pid_t pid, struct jl_err *err) {
  if (!path) return 0;
  char tmp[PATH_MAX + 8], buf[32];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  snprintf(buf, sizeof buf, "%d", pid);
  cleanup_fd int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || jl_write_all(fd, buf, strlen(buf)) < 0 || rename(tmp, path) < 0) return jl_syserr(err, "--pid-file %s", path);
  return 0;
}

static int start_init(struct jl_cli *c, const char *id, struct prepared *p, const char *fifo, pid_t *pid, struct jl_err *err) {
  struct jl_spawn s = {.cfg = &p->cfg, .stdio = {-1, -1, -1}, .netns_fd = -1, .join_pidfd = -1, .exec_fifo = fifo};
  memcpy(s.cg_fds, p->cg_fds, sizeof s.cg_fds);
  s.ncg = p->ncg;
  if (jl_spawn(&s, pid, err) < 0) return -1;
  struct jl_state st = {.pid = *pid, .start_time = jl_proc_start_time(*pid), .ns_flags = p->cfg.ns_flags,
                        .annotations = p->cfg.annotations};
  snprintf(st.id, sizeof st.id, "%s", id);
  snprintf(st.bundle, sizeof st.bundle, "%s", p->bundle);
  if (jl_state_write(c->root, &st, err) < 0 || write_pid_file(c->pid_file, *pid, err) < 0) {
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    return -1;
  }
  return 0;
}

int jl_cmd_create(struct jl_cli *c, struct jl_err *err) {
  if (c->argc != 1) return jl_fail(err, "invalid_argument", "usage: jiffy-launch create [--bundle DIR] [--pid-file F] ID");
  const char *id = c->argv[0];
  struct prepared p;
  if (prepare(c, id, &p, err) < 0) { prepared_free(&p, false, c->root, id); return -1; }
  char fifo[PATH_MAX + 16];
  snprintf(fifo, sizeof fifo, "%s/exec.fifo", p.dir);
  pid_t pid;
  /* 0622: the init may already run as an unprivileged user when it opens the fifo. */
  if (mkfifo(fifo, 0622) < 0 || chmod(fifo, 0622) < 0) {
    jl_syserr(err, "mkfifo %s", fifo);
  } else if (start_init(c, id, &p, fifo, &pid, err) == 0) {
    prepared_free(&p, false, c->root, id);
    return 0;
  }
  prepared_free(&p, true, c->root, id);
  return -1;
}

/* Foreground wait: signals sent to `run` are forwarded to the container (as runc does). */
static int wait_forwarding(pid_t pid, const sigset_t *set, int *status) {
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(set, &si);
    if (sig < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (sig != SIGCHLD) {
      kill(pid, sig);
      continue;
    }
    pid_t r;
    while ((r = waitpid(-1, status, WNOHANG)) > 0)
      if (r == pid) return 0;
  }
}

static void report_exit(struct jl_cli *c, const char *id, struct jl_cgroup *cg, int status, uint64_t wall_us) {
  struct jl_cg_stats st;
  struct jl_err ignore;
  if (jl_cg_stats(cg, &st, &ignore) < 0) memset(&st, 0, sizeof st);
  bool oom = st.oom_kills > 0;
  if (oom) fprintf(stderr, "jiffy-launch: container %s was killed by the OOM killer (memory limit reached)\n", id);
  if (!c->report) return;
  json_t *j = json_pack("{s:i, s:s?, s:b, s:I, s:I, s:I}", "exitCode", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                        "signal", WIFSIGNALED(status) ? jl_signal_name(WTERMSIG(status)) : NULL, "oomKilled", oom,
                        "peakMemoryBytes", (json_int_t)st.mem_peak, "cpuTimeUs", (json_int_t)st.cpu_us, "wallTimeUs", (json_int_t)wall_us);
  if (j) json_dump_file(j, c->report, JSON_COMPACT);
  json_decref(j);
}

int jl_cmd_run(struct jl_cli *c, struct jl_err *err) {
  if (c->argc != 1) return jl_fail(err, "invalid_argument", "usage: jiffy-launch run [--bundle DIR] [--pid-file F] ID");
  const char *id = c->argv[0];
  sigset_t set, old;
  sigemptyset(&set);
  int fwd[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
  for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) sigaddset(&set, fwd[i]);
  sigprocmask(SIG_BLOCK, &set, &old);
  struct prepared p;
  if (prepare(c, id, &p, err) < 0) { prepared_free(&p, false, c->root, id); return -1; }
  uint64_t t0 = jl_now_us();
  pid_t pid;
  int status = 0;
  if (start_init(c, id, &p, NULL, &pid, err) < 0) { prepared_free(&p, true, c->root, id); return -1; }
  if (wait_forwarding(pid, &set, &status) < 0) {
    jl_syserr(err, "wait for container %s", id);
    prepared_free(&p, true, c->root, id);
    return -1;
  }
  report_exit(c, id, &p.cg, status, jl_now_us() - t0);
  prepared_free(&p, true, c->root, id);
  sigprocmask(SIG_SETMASK, &old, NULL);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
