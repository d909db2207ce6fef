/* Pre-created cgroups and network namespaces for the fork-server (see jl-serve.h). */
#include "jl-serve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

int jl_pool_cg_create(struct jl_pooled_cg *p, enum jl_cg_mode mode, unsigned seq, struct jl_err *err) {
  char name[64];
  memset(p, 0, sizeof *p);
  snprintf(name, sizeof name, ".pool-%d-%u", getpid(), seq);
  if (jl_cg_create(&p->cg, mode, name, err) < 0) return -1;
  if (jl_cg_procs_fds(&p->cg, p->fds, &p->nfds, err) < 0) {
    jl_cg_destroy(&p->cg, &(struct jl_err){0});
    return -1;
  }
  return 0;
}

void jl_pool_cg_close_fds(struct jl_pooled_cg *p) {
  for (int i = 0; i < p->nfds; i++) close(p->fds[i]);
  p->nfds = 0;
}

void jl_pool_cg_discard(struct jl_pooled_cg *p) {
  jl_pool_cg_close_fds(p);
  jl_cg_kill_all(&p->cg);
  jl_cg_destroy(&p->cg, &(struct jl_err){0});
}

int jl_pool_netns_create(int hostnet, int *fd, struct jl_err *err) {
  /* The server is single-threaded, so switching its own netns for a moment is safe. */
  if (unshare(CLONE_NEWNET) < 0) return jl_syserr(err, "unshare network namespace");
  *fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int r = *fd < 0 ? jl_syserr(err, "open new network namespace") : jl_loopback_up(err);
  if (setns(hostnet, CLONE_NEWNET) < 0) abort();  /* cannot stay in the wrong netns */
  if (r < 0 && *fd >= 0) close(*fd);
  return r;
}

void jl_pool_cleanup_stale(enum jl_cg_mode mode) {
  jl_cg_sweep_dead_pools(mode);
}
