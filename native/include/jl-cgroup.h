/* cgroups on v1 (legacy), v2 (unified) and hybrid hosts.
 *
 * Mode is detected once (statfs of /sys/fs/cgroup). v1 and hybrid use the v1 controllers memory,
 * cpu, cpuacct, pids and freezer, one directory per hierarchy; v2 uses one directory. Every
 * container gets `jiffy/<id>` in each hierarchy. Directory fds are opened at creation so that the
 * boot path and the exit path never walk /sys/fs/cgroup again.
 */
#ifndef JL_CGROUP_H
#define JL_CGROUP_H

#include "jl-config.h"

enum jl_cg_mode { JL_CG_V1, JL_CG_V2, JL_CG_HYBRID };

#define JL_CG_MAXH 5
enum { JL_CTL_MEMORY, JL_CTL_CPU, JL_CTL_CPUACCT, JL_CTL_PIDS, JL_CTL_FREEZER, JL_CTL_COUNT };

struct jl_cgroup {
  enum jl_cg_mode mode;
  int nh;                               /* hierarchies in use */
  int dirfd[JL_CG_MAXH];                /* jiffy/<name> in each hierarchy */
  int parentfd[JL_CG_MAXH];             /* jiffy/ in each hierarchy */
  int ctl[JL_CTL_COUNT];                /* controller -> index into dirfd (-1 if missing) */
  char name[256];
};

struct jl_cg_stats {
  uint64_t mem_usage, mem_peak, cpu_us, pids, oom_kills;
};

int jl_cg_detect(enum jl_cg_mode *mode, struct jl_err *err);
const char *jl_cg_mode_name(enum jl_cg_mode mode);
/* mkdir jiffy/<name> everywhere (EEXIST is an error: ids are unique). */
int jl_cg_create(struct jl_cgroup *cg, enum jl_cg_mode mode, const char *name, struct jl_err *err);
/* Open an existing jiffy/<name> (CLI delete/kill/state of a container created earlier). */
int jl_cg_open(struct jl_cgroup *cg, enum jl_cg_mode mode, const char *name, struct jl_err *err);
/* Removes pool cgroups whose server process is gone, in every hierarchy on its own. */
void jl_cg_sweep_dead_pools(enum jl_cg_mode mode);
/* Rename (v1 only: cgroup2 has no rename). Used to hand a pre-created pool cgroup to a container. */
int jl_cg_rename(struct jl_cgroup *cg, const char *name, struct jl_err *err);
bool jl_cg_can_rename(enum jl_cg_mode mode);
int jl_cg_apply(struct jl_cgroup *cg, const struct jl_resources *res, struct jl_err *err);
/* fds of the join file (v1 tasks, v2 cgroup.procs) in every hierarchy; the child writes "0" to each. */
int jl_cg_procs_fds(struct jl_cgroup *cg, int *fds, int *n, struct jl_err *err);
int jl_cg_stats(struct jl_cgroup *cg, struct jl_cg_stats *st, struct jl_err *err);
int jl_cg_freeze(struct jl_cgroup *cg, bool frozen, struct jl_err *err);
/* SIGKILL every process left in the cgroup (thaws first: frozen tasks cannot die). */
void jl_cg_kill_all(struct jl_cgroup *cg);
/* One rmdir attempt in every hierarchy not removed yet: 1 = gone everywhere (fds closed),
 * 0 = still busy somewhere (tasks finishing their exit; try again later), -1 = error (fds closed). */
int jl_cg_try_remove(struct jl_cgroup *cg, struct jl_err *err);
/* rmdir everywhere (retries briefly while the last tasks finish exiting) and close fds. */
int jl_cg_destroy(struct jl_cgroup *cg, struct jl_err *err);
void jl_cg_close(struct jl_cgroup *cg);

#endif
