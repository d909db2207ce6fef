/* Creating a container process: clone into new namespaces, then the setup checklist in the child
 * (cgroup, namespaces, rootfs, hostname, process attributes) and exec.
 *
 * The clone is vfork-style (CLONE_VM|CLONE_VFORK) with a private stack: no page tables are copied
 * and the parent resumes exactly when the child has exec'd or died, so success or failure is known
 * without a round trip. Failures travel back over a CLOEXEC pipe as one `struct jl_err`; EOF with
 * nothing written means exec succeeded. `create` (OCI) uses a plain fork-style clone instead because
 * its child must block on the exec fifo until `start`.
 */
#ifndef JL_CONTAINER_H
#define JL_CONTAINER_H

#include "jl-cgroup.h"

struct jl_overlay {
  const char **lower; size_t nlower;
  const char *upper, *work, *cwd;
  bool readonly;
};

struct jl_spawn {
  const struct jl_config *cfg;       /* boot: full config */
  const struct jl_process *proc;     /* the process to exec (cfg->proc for boot) */
  const struct jl_overlay *overlay;  /* rootfs overlay mounted inside the new mount ns, or NULL */
  int stdio[3];                      /* fds for 0,1,2; -1 = inherit */
  int cg_fds[JL_CG_MAXH]; int ncg;   /* cgroup.procs fds to join */
  int netns_fd;                      /* pooled netns to setns into instead of CLONE_NEWNET, or -1 */
  const char *exec_fifo;             /* create mode: block opening this fifo before exec */
  int join_pidfd;                    /* exec mode: container init's pidfd; setns into its namespaces */
  int join_flags;                    /* exec mode: namespace flags to join */
  bool die_with_parent;              /* PR_SET_PDEATHSIG(SIGKILL): no container outlives its server */
};

/* Start the container process. *pid is the child (pid 1 of its namespace when NEWPID). */
int jl_spawn(struct jl_spawn *s, pid_t *pid, struct jl_err *err);

/* rootfs.c: the mount namespace checklist run in the child (mounts, /dev, masks, pivot_root). */
int jl_rootfs_setup(const struct jl_config *cfg, const struct jl_overlay *ov, struct jl_err *err);
/* overlay.c: mount an overlay at target (new mount API with lowerdir+, fallback mount(2)). */
int jl_overlay_mount(const struct jl_overlay *ov, const char *target, struct jl_err *err);
int jl_umount(const char *target, bool detach, struct jl_err *err);
/* process.c: rlimits, oom_score_adj, user, capabilities, no_new_privs, cwd, exec. */
/* Written through the host's /proc before any namespace or rootfs change. */
int jl_process_oom_score(const struct jl_process *p, struct jl_err *err);
int jl_process_apply(const struct jl_process *p, struct jl_err *err);
int jl_process_exec(const struct jl_process *p, struct jl_err *err);
/* Bring up "lo" in the current network namespace (runc and crun do the same). */
int jl_loopback_up(struct jl_err *err);

#endif
