/* cgroup v1 / v2 / hybrid (see jl-cgroup.h). */
#include "jl-cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

#define CG_ROOT "/sys/fs/cgroup"

static const char *const v1_ctl[JL_CTL_COUNT] = {"memory", "cpu", "cpuacct", "pids", "freezer"};

int jl_cg_detect(enum jl_cg_mode *mode, struct jl_err *err) {
  struct statfs fs;
  if (statfs(CG_ROOT, &fs) < 0) return jl_syserr(err, "statfs %s", CG_ROOT);
  if (fs.f_type == CGROUP2_SUPER_MAGIC) { *mode = JL_CG_V2; return 0; }
  /* Hybrid (systemd's layout): v1 controllers plus a cgroup2 mount at unified/ that usually holds
   * no controllers. crun refuses such hosts; we use the v1 controllers and leave unified/ alone. */
  if (statfs(CG_ROOT "/unified", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) *mode = JL_CG_HYBRID;
  else *mode = JL_CG_V1;
  return 0;
}

const char *jl_cg_mode_name(enum jl_cg_mode mode) {
  return mode == JL_CG_V2 ? "v2" : mode == JL_CG_HYBRID ? "hybrid" : "v1";
}

bool jl_cg_can_rename(enum jl_cg_mode mode) { return mode != JL_CG_V2; }

static void cg_init(struct jl_cgroup *cg, enum jl_cg_mode mode, const char *name) {
  memset(cg, 0, sizeof *cg);
  cg->mode = mode;
  for (int i = 0; i < JL_CG_MAXH; i++) cg->dirfd[i] = cg->parentfd[i] = -1;
  for (int i = 0; i < JL_CTL_COUNT; i++) cg->ctl[i] = -1;
  snprintf(cg->name, sizeof cg->name, "%s", name);
}

/* v2: controllers must be enabled in every ancestor's subtree_control before a child can use them. */
static void v2_enable_controllers(int fd) {
  static const char *const ctl[] = {"+memory", "+cpu", "+pids"};
  for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++) {
    cleanup_fd int f = openat(fd, "cgroup.subtree_control", O_WRONLY | O_CLOEXEC);
    if (f >= 0 && write(f, ctl[i], strlen(ctl[i])) < 0) { /* missing controller: limits fail later, loudly */ }
  }
}

/* Open (creating when asked) jiffy/ then jiffy/<name> in one hierarchy. */
static int open_one(struct jl_cgroup *cg, const char *hier, bool create, struct jl_err *err) {
  cleanup_fd int root = open(hier, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return jl_syserr(err, "open %s", hier);
  if (create && mkdirat(root, "jiffy", 0755) < 0 && errno != EEXIST) return jl_syserr(err, "mkdir %s/jiffy", hier);
  int parent = openat(root, "jiffy", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent < 0) return jl_syserr(err, "open %s/jiffy", hier);
  if (create && cg->mode == JL_CG_V2) { v2_enable_controllers(root); v2_enable_controllers(parent); }
  if (create && mkdirat(parent, cg->name, 0755) < 0) {
    jl_syserr(err, "mkdir %s/jiffy/%s", hier, cg->name);
    close(parent);
    return -1;
  }
  int fd = openat(parent, cg->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) { jl_syserr(err, "open %s/jiffy/%s", hier, cg->name); close(parent); return -1; }
  cg->parentfd[cg->nh] = parent;
  cg->dirfd[cg->nh] = fd;
  return cg->nh++;
}

static int setup(struct jl_cgroup *cg, enum jl_cg_mode mode, const char *name, bool create, struct jl_err *err) {
  cg_init(cg, mode, name);
  if (mode == JL_CG_V2) {
    int i = open_one(cg, CG_ROOT, create, err);
    if (i < 0) return -1;
    for (int c = 0; c < JL_CTL_COUNT; c++) cg->ctl[c] = i;
    return 0;
  }
  dev_t seen[JL_CG_MAXH];
  for (int c = 0; c < JL_CTL_COUNT; c++) {
    char hier[64];
    struct stat st;
    snprintf(hier, sizeof hier, CG_ROOT "/%s", v1_ctl[c]);
    if (stat(hier, &st) < 0) continue;  /* controller not mounted on this host: its limits are refused later */
    /* cpu and cpuacct are often one co-mounted hierarchy (cpu,cpuacct): use it once. */
    int same = -1;
    for (int k = 0; k < cg->nh; k++) if (seen[k] == st.st_dev) same = k;
    if (same >= 0) { cg->ctl[c] = same; continue; }
    int i = open_one(cg, hier, create, err);
    if (i < 0) {
      if (create) jl_cg_destroy(cg, &(struct jl_err){0});
      else jl_cg_close(cg);
      return -1;
    }
    seen[i] = st.st_dev;
    cg->ctl[c] = i;
  }
  return 0;
}

int jl_cg_create(struct jl_cgroup *cg, enum jl_cg_mode mode, const char *name, struct jl_err *err) {
  return setup(cg, mode, name, true, err);
}

int jl_cg_open(struct jl_cgroup *cg, enum jl_cg_mode mode, const char *name, struct jl_err *err) {
  return setup(cg, mode, name, false, err);
}

int jl_cg_rename(struct jl_cgroup *cg, const char *name, struct jl_err *err) {
  for (int i = 0; i < cg->nh; i++)
    if (renameat(cg->parentfd[i], cg->name, cg->parentfd[i], name) < 0) {
      jl_syserr(err, "rename cgroup jiffy/%s to jiffy/%s", cg->name, name);
      while (--i >= 0) renameat(cg->parentfd[i], name, cg->parentfd[i], cg->name);
      return -1;
    }
  snprintf(cg->name, sizeof cg->name, "%s", name);
  return 0;
}

static int write_ctl(struct jl_cgroup *cg, int ctl, const char *file, long long v, struct jl_err *err) {
  if (cg->ctl[ctl] < 0) return jl_fail(err, "failed_precondition", "cgroup controller %s is not available on this host", v1_ctl[ctl]);
  char buf[32];
  if (v < 0 && cg->mode == JL_CG_V2) snprintf(buf, sizeof buf, "max");
  else snprintf(buf, sizeof buf, "%lld", v);
  if (jl_write_file_at(cg->dirfd[cg->ctl[ctl]], file, buf, err) < 0)
    return jl_err_wrap(err, "cgroup jiffy/%s", cg->name);
  return 0;
}

static int apply_v1(struct jl_cgroup *cg, const struct jl_resources *r, struct jl_err *err) {
  if (r->mem_limit >= 0 && write_ctl(cg, JL_CTL_MEMORY, "memory.limit_in_bytes", r->mem_limit, err) < 0) return -1;
  /* v1 memsw is memory+swap, exactly the OCI meaning; absent when swap accounting is off. */
  if (r->mem_swap >= 0 && cg->ctl[JL_CTL_MEMORY] >= 0 &&
      faccessat(cg->dirfd[cg->ctl[JL_CTL_MEMORY]], "memory.memsw.limit_in_bytes", W_OK, 0) == 0 &&
      write_ctl(cg, JL_CTL_MEMORY, "memory.memsw.limit_in_bytes", r->mem_swap, err) < 0)
    return -1;
  if (r->cpu_shares >= 0 && write_ctl(cg, JL_CTL_CPU, "cpu.shares", r->cpu_shares, err) < 0) return -1;
  if (r->cpu_period >= 0 && write_ctl(cg, JL_CTL_CPU, "cpu.cfs_period_us", r->cpu_period, err) < 0) return -1;
  if (r->cpu_quota != -1 && r->cpu_quota >= 0 && write_ctl(cg, JL_CTL_CPU, "cpu.cfs_quota_us", r->cpu_quota, err) < 0) return -1;
  if (r->pids_limit > 0 && write_ctl(cg, JL_CTL_PIDS, "pids.max", r->pids_limit, err) < 0) return -1;
  return 0;
}

static int apply_v2(struct jl_cgroup *cg, const struct jl_resources *r, struct jl_err *err) {
  int fd = cg->dirfd[0];
  char buf[64];
  if (r->mem_limit >= 0 && write_ctl(cg, JL_CTL_MEMORY, "memory.max", r->mem_limit, err) < 0) return -1;
  if (r->mem_swap >= 0 && r->mem_limit >= 0 && faccessat(fd, "memory.swap.max", W_OK, 0) == 0 &&
      write_ctl(cg, JL_CTL_MEMORY, "memory.swap.max", r->mem_swap - r->mem_limit, err) < 0)
    return -1;
  /* OCI shares (2..262144) to v2 weight (1..10000), the conversion runc and crun use. */
  if (r->cpu_shares >= 0 && write_ctl(cg, JL_CTL_CPU, "cpu.weight", 1 + ((r->cpu_shares - 2) * 9999) / 262142, err) < 0) return -1;
  if (r->cpu_quota > 0 || r->cpu_period > 0) {
    if (r->cpu_quota > 0) snprintf(buf, sizeof buf, "%lld %lld", (long long)r->cpu_quota, (long long)(r->cpu_period > 0 ? r->cpu_period : 100000));
    else snprintf(buf, sizeof buf, "max %lld", (long long)r->cpu_period);
    if (jl_write_file_at(fd, "cpu.max", buf, err) < 0) return jl_err_wrap(err, "cgroup jiffy/%s", cg->name);
  }
  if (r->pids_limit > 0 && write_ctl(cg, JL_CTL_PIDS, "pids.max", r->pids_limit, err) < 0) return -1;
  return 0;
}

int jl_cg_apply(struct jl_cgroup *cg, const struct jl_resources *r, struct jl_err *err) {
  return cg->mode == JL_CG_V2 ? apply_v2(cg, r, err) : apply_v1(cg, r, err);
}

int jl_cg_procs_fds(struct jl_cgroup *cg, int *fds, int *n, struct jl_err *err) {
  /* v1: the child moves itself by writing "0" to `tasks`. Moving one thread that is `current`
   * skips the global cgroup_threadgroup_rwsem write lock (Linux >= 6.0); cgroup.procs takes it,
   * and that percpu rwsem's writer waits for an RCU grace period once the lock has gone idle:
   * measured 5-30 ms against ~0.1 ms here. The child is single-threaded, so moving its only
   * thread moves the process. v2 has no such path (cgroup.threads needs threaded mode). */
  const char *file = cg->mode == JL_CG_V2 ? "cgroup.procs" : "tasks";
  *n = 0;
  for (int i = 0; i < cg->nh; i++) {
    fds[i] = openat(cg->dirfd[i], file, O_WRONLY | O_CLOEXEC);
    if (fds[i] < 0) {
      jl_syserr(err, "open cgroup jiffy/%s/%s", cg->name, file);
      while (--i >= 0) close(fds[i]);
      return -1;
    }
  }
  *n = cg->nh;
  return 0;
}

static int fd_of(struct jl_cgroup *cg, int ctl) { return cg->ctl[ctl] >= 0 ? cg->dirfd[cg->ctl[ctl]] : -1; }

int jl_cg_stats(struct jl_cgroup *cg, struct jl_cg_stats *st, struct jl_err *err) {
  memset(st, 0, sizeof *st);
  int mem = fd_of(cg, JL_CTL_MEMORY), cpu = fd_of(cg, JL_CTL_CPUACCT), pids = fd_of(cg, JL_CTL_PIDS);
  struct jl_err ignore;
  if (cg->mode == JL_CG_V2) {
    if (mem >= 0) {
      jl_read_u64_at(mem, "memory.current", &st->mem_usage, &ignore);
      /* memory.peak exists since Linux 5.19. */
      jl_read_u64_at(mem, "memory.peak", &st->mem_peak, &ignore);
      jl_read_keyed_u64_at(mem, "memory.events", "oom_kill", &st->oom_kills, &ignore);
    }
    uint64_t usec = 0;
    if (jl_read_keyed_u64_at(cg->dirfd[0], "cpu.stat", "usage_usec", &usec, err) < 0) return -1;
    st->cpu_us = usec;
  } else {
    if (mem >= 0) {
      jl_read_u64_at(mem, "memory.usage_in_bytes", &st->mem_usage, &ignore);
      jl_read_u64_at(mem, "memory.max_usage_in_bytes", &st->mem_peak, &ignore);
      /* v1 has no memory.events; memory.oom_control carries an oom_kill counter since 4.13. */
      jl_read_keyed_u64_at(mem, "memory.oom_control", "oom_kill", &st->oom_kills, &ignore);
    }
    uint64_t ns = 0;
    if (cpu >= 0 && jl_read_u64_at(cpu, "cpuacct.usage", &ns, err) < 0) return -1;
    st->cpu_us = ns / 1000;
  }
  if (pids >= 0) jl_read_u64_at(pids, "pids.current", &st->pids, &ignore);
  return 0;
}

int jl_cg_freeze(struct jl_cgroup *cg, bool frozen, struct jl_err *err) {
  int fd = fd_of(cg, JL_CTL_FREEZER);
  if (fd < 0) return jl_fail(err, "failed_precondition", "cgroup freezer is not available on this host");
  const char *file = cg->mode == JL_CG_V2 ? "cgroup.freeze" : "freezer.state";
  const char *val = cg->mode == JL_CG_V2 ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED");
  if (jl_write_file_at(fd, file, val, err) < 0) return jl_err_wrap(err, "cgroup jiffy/%s", cg->name);
  /* Freezing is asynchronous (v1 passes through FREEZING, v2 sets "frozen 1" in cgroup.events):
   * wait until it is done so that a snapshot taken after pause sees a quiet filesystem. */
  for (int i = 0; frozen && i < 2000; i++) {
    char buf[256];
    if (cg->mode == JL_CG_V2) {
      uint64_t f = 0;
      if (jl_read_keyed_u64_at(fd, "cgroup.events", "frozen", &f, err) < 0) return -1;
      if (f == 1) return 0;
    } else {
      if (jl_read_file_at(fd, "freezer.state", buf, sizeof buf, err) < 0) return -1;
      if (strncmp(buf, "FROZEN", 6) == 0) return 0;
      jl_write_file_at(fd, file, val, err);
    }
    usleep(500);
  }
  if (frozen) return jl_fail(err, "deadline_exceeded", "cgroup jiffy/%s did not freeze within 1 s", cg->name);
  return 0;
}

void jl_cg_kill_all(struct jl_cgroup *cg) {
  struct jl_err ignore;
  if (fd_of(cg, JL_CTL_FREEZER) >= 0) jl_cg_freeze(cg, false, &ignore);
  if (cg->mode == JL_CG_V2 && jl_write_file_at(cg->dirfd[0], "cgroup.kill", "1", &ignore) == 0) return;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < cg->nh; i++) {
      char buf[8192];
      if (jl_read_file_at(cg->dirfd[i], "cgroup.procs", buf, sizeof buf, &ignore) < 0) continue;
      for (char *p = buf; *p; ) {
        long pid = strtol(p, &p, 10);
        if (pid > 0) kill((pid_t)pid, SIGKILL);
        while (*p == '\n') p++;
      }
    }
  }
}

int jl_cg_try_remove(struct jl_cgroup *cg, struct jl_err *err) {
  bool busy = false, failed = false;
  for (int i = 0; i < cg->nh; i++) {
    if (cg->parentfd[i] < 0) continue;
    if (unlinkat(cg->parentfd[i], cg->name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
      if (errno == EBUSY) { busy = true; continue; }
      failed = true;  /* reported; the other hierarchies are still worth removing */
      jl_syserr(err, "rmdir cgroup jiffy/%s", cg->name);
    }
    close(cg->parentfd[i]);  /* done with this hierarchy: a retry skips it */
    cg->parentfd[i] = -1;
  }
  if (busy) return 0;
  jl_cg_close(cg);
  return failed ? -1 : 1;
}

int jl_cg_destroy(struct jl_cgroup *cg, struct jl_err *err) {
  /* Tasks leave the cgroup a little after their parent reaped them (exit is finished
   * asynchronously), so rmdir can see EBUSY briefly: retry for up to ~1 s. */
  for (int tries = 0; ; tries++) {
    int r = jl_cg_try_remove(cg, err);
    if (r != 0) return r < 0 ? -1 : 0;
    if (tries >= 1000) {
      errno = EBUSY;
      jl_syserr(err, "rmdir cgroup jiffy/%s", cg->name);
      jl_cg_close(cg);
      return -1;
    }
    usleep(tries < 10 ? 100 : 1000);
  }
}

void jl_cg_close(struct jl_cgroup *cg) {
  for (int i = 0; i < JL_CG_MAXH; i++) {
    if (cg->dirfd[i] >= 0) close(cg->dirfd[i]);
    if (cg->parentfd[i] >= 0) close(cg->parentfd[i]);
    cg->dirfd[i] = cg->parentfd[i] = -1;
  }
  cg->nh = 0;
}

/* Removes `.pool-<pid>-*` cgroups left by a server that died (SIGKILL) in one hierarchy dir.
 * Each hierarchy is swept on its own: a server killed halfway through creating a pool cgroup
 * leaves it in some hierarchies only, and jl_cg_open (which wants all of them) would skip it. */
static void sweep_dead_pools_in(const char *dir, pid_t self) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    int pid;
    if (sscanf(e->d_name, ".pool-%d-", &pid) != 1 || pid == self || kill(pid, 0) == 0 || errno != ESRCH) continue;
    int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      char buf[8192];
      struct jl_err ignore;
      /* Containers of a dead server got its parent-death signal; anything still here is killed. */
      if (jl_read_file_at(fd, "cgroup.procs", buf, sizeof buf, &ignore) == 0)
        for (char *p = buf; *p; ) {
          long victim = strtol(p, &p, 10);
          if (victim > 0) kill((pid_t)victim, SIGKILL);
          while (*p == '\n') p++;
        }
      close(fd);
    }
    /* EBUSY (tasks still exiting) is left for the next server's sweep. */
    unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
  }
  closedir(d);
}

void jl_cg_sweep_dead_pools(enum jl_cg_mode mode) {
  pid_t self = getpid();
  if (mode == JL_CG_V2) { sweep_dead_pools_in(CG_ROOT "/jiffy", self); return; }
  for (int i = 0; i < JL_CTL_COUNT; i++) {
    char dir[128];
    snprintf(dir, sizeof dir, CG_ROOT "/%s/jiffy", v1_ctl[i]);
    sweep_dead_pools_in(dir, self);
  }
}
