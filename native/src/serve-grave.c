/* Fork-server: removing the cgroups of finished containers off the hot path.
 *
 * When a container's init exits, its tasks leave the cgroup only once the kernel has finished
 * their exit, which lags the reap by up to tens of milliseconds; and a v1 memcg rmdir is slow by
 * itself. Done inline (rmdir, EBUSY, sleep, retry), that stalled every other container's stdio
 * and every boot queued behind it. So a finished container's cgroup goes to a graveyard and is
 * removed at idle moments, one attempt per loop turn, retried with a back-off while still busy.
 * Shutdown drains the graveyard synchronously, so nothing is left behind.
 *
 * v1 cgroups carry the container id as their name; a boot that reuses the id of a container whose
 * cgroup is still in the graveyard renames the old one out of the way (to a pool name, which a
 * later server's stale-pool cleanup also recognizes should this one crash).
 */
#include "serve-priv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct grave {
  struct jl_cgroup cg;
  uint64_t due_us;
  unsigned tries;
  struct grave *next;
};

/* ~5 s of retries, then give up (and say so) rather than retry forever. */
#define GRAVE_MAX_TRIES 1000

static struct grave *graves;
static size_t ngraves;

size_t sv_grave_count(void) { return ngraves; }

void sv_grave_add(struct jl_cgroup *cg) {
  struct grave *g = calloc(1, sizeof *g);
  if (!g) abort();
  g->cg = *cg;
  g->due_us = jl_now_us();
  g->next = graves;
  graves = g;
  ngraves++;
}

uint64_t sv_grave_due_us(void) {
  uint64_t due = UINT64_MAX;
  for (struct grave *g = graves; g; g = g->next) if (g->due_us < due) due = g->due_us;
  return due;
}

static void unlink_grave(struct grave *g) {
  for (struct grave **pp = &graves; *pp; pp = &(*pp)->next)
    if (*pp == g) { *pp = g->next; break; }
  ngraves--;
  free(g);
}

/* One removal attempt; returns true when the grave is gone from the list. */
static bool attempt(struct grave *g, uint64_t now) {
  struct jl_err err = {0};
  /* Stragglers of a container without its own pid namespace do not die with its init. */
  if (g->tries % 50 == 0) jl_cg_kill_all(&g->cg);
  uint64_t t0 = S.trace ? jl_now_us() : 0;
  int r = jl_cg_try_remove(&g->cg, &err);
  if (S.trace) fprintf(stderr, "jiffy-launch serve: remove cgroup jiffy/%s: %s after %llu us\n", g->cg.name,
                       r == 0 ? "busy" : r > 0 ? "gone" : "failed", (unsigned long long)(jl_now_us() - t0));
  if (r == 0 && ++g->tries < GRAVE_MAX_TRIES) {
    g->due_us = now + (g->tries < 10 ? 200 : 5000);
    return false;
  }
  if (r == 0) {
    fprintf(stderr, "jiffy-launch serve: cgroup jiffy/%s still busy after %u attempts; leaving it\n", g->cg.name, g->tries);
    jl_cg_close(&g->cg);
  } else if (r < 0) {
    fprintf(stderr, "jiffy-launch serve: %s\n", err.msg);
  }
  unlink_grave(g);
  return true;
}

void sv_grave_work(void) {
  uint64_t now = jl_now_us();
  for (struct grave *g = graves; g; g = g->next)
    if (g->due_us <= now) { attempt(g, now); return; }
}

int sv_grave_release_name(const char *name, struct jl_err *err) {
  for (struct grave *g = graves; g; g = g->next) {
    if (strcmp(g->cg.name, name) != 0) continue;
    char tmp[64];
    snprintf(tmp, sizeof tmp, ".pool-%d-d%u", getpid(), S.seq++);
    return jl_cg_rename(&g->cg, tmp, err);
  }
  return 0;
}

void sv_grave_drain(void) {
  while (graves) {
    struct jl_err err = {0};
    jl_cg_kill_all(&graves->cg);
    if (jl_cg_destroy(&graves->cg, &err) < 0) fprintf(stderr, "jiffy-launch serve: %s\n", err.msg);
    unlink_grave(graves);
  }
}
