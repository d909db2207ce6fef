/* Fork-server request handlers: boot, exec, kill, pause/resume, stats, mount-overlay, umount. */
#include "serve-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* Pipes for the three stdio streams: child ends go to the new process, parent ends stay here
 * (non-blocking). "null" connects /dev/null instead. */
int sv_make_stdio(json_t *req, int child[3], int parent[3], struct jl_err *err) {
  static const char *const keys[3] = {"stdin", "stdout", "stderr"};
  for (int i = 0; i < 3; i++) child[i] = parent[i] = -1;
  for (int i = 0; i < 3; i++) {
    const char *mode = json_string_value(json_object_get(req, keys[i]));
    if (mode && strcmp(mode, "null") == 0) { child[i] = S.devnull; continue; }
    if (mode && strcmp(mode, "pipe") != 0) return jl_fail(err, "invalid_argument", "%s: expected \"pipe\" or \"null\"", keys[i]);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return jl_syserr(err, "pipe for %s", keys[i]);
    child[i] = i == 0 ? fds[0] : fds[1];
    parent[i] = i == 0 ? fds[1] : fds[0];
    fcntl(parent[i], F_SETFL, O_NONBLOCK);
  }
  return 0;
}

void sv_close_stdio(int fds[3]) {
  for (int i = 0; i < 3; i++) if (fds[i] >= 0 && fds[i] != S.devnull) close(fds[i]);
}

static int take_cgroup(struct jl_pooled_cg *pc, struct jl_err *err) {
  if (S.ncgpool > 0) {
    *pc = S.cgpool[--S.ncgpool];
    return 0;
  }
  return jl_pool_cg_create(pc, S.mode, S.seq++, err);  /* pool empty: pay on the boot path */
}

static int take_netns(int *fd, struct jl_err *err) {
  if (S.nnetpool > 0) {
    *fd = S.netpool[--S.nnetpool];
    return 0;
  }
  return jl_pool_netns_create(S.hostnet, fd, err);
}

static int check_overlay(json_t *ov, struct jl_err *err) {
  if (!ov || json_is_null(ov)) return 0;
  json_t *l = json_object_get(ov, "lower");
  if (!json_is_object(ov) || !json_is_array(l) || json_array_size(l) == 0)
    return jl_fail(err, "invalid_argument", "rootfsOverlay.lower: expected a non-empty array of paths");
  for (size_t i = 0; i < json_array_size(l); i++)
    if (!json_is_string(json_array_get(l, i))) return jl_fail(err, "invalid_argument", "rootfsOverlay.lower[%zu]: expected a string", i);
  if (!json_is_string(json_object_get(ov, "upper")) || !json_is_string(json_object_get(ov, "work")))
    return jl_fail(err, "invalid_argument", "rootfsOverlay: upper and work are required strings");
  return 0;
}

static void parse_overlay(json_t *o, struct jl_overlay *ov) {
  json_t *l = json_object_get(o, "lower");
  ov->nlower = json_array_size(l);
  for (size_t i = 0; i < ov->nlower; i++) ov->lower[i] = json_string_value(json_array_get(l, i));
  ov->upper = json_string_value(json_object_get(o, "upper"));
  ov->work = json_string_value(json_object_get(o, "work"));
  ov->cwd = json_string_value(json_object_get(o, "cwd"));
}

/* cgroup + netns from the pools, then the clone; returns the init's pid. */
static int spawn_init(struct ctr *c, struct jl_config *cfg, json_t *req, const int child[3], struct jl_err *err) {
  json_t *ovj = json_object_get(req, "rootfsOverlay");
  struct jl_overlay ov = {.lower = calloc(json_array_size(json_object_get(ovj, "lower")) + 1, sizeof(char *))};
  if (json_is_object(ovj)) parse_overlay(ovj, &ov);
  int netns = -1;
  bool pooled_net = (cfg->ns_flags & CLONE_NEWNET) != 0;
  if (pooled_net && take_netns(&netns, err) < 0) { free(ov.lower); return -1; }
  struct jl_spawn s = {.cfg = cfg, .stdio = {child[0], child[1], child[2]}, .netns_fd = netns, .join_pidfd = -1,
                       .overlay = json_is_object(ovj) ? &ov : NULL, .die_with_parent = true};
  memcpy(s.cg_fds, c->pc.fds, sizeof s.cg_fds);
  s.ncg = c->pc.nfds;
  int r = jl_spawn(&s, &c->init, err);
  /* The container holds its own references now: the netns and the join files are not reused. */
  if (netns >= 0) close(netns);
  jl_pool_cg_close_fds(&c->pc);
  free(ov.lower);
  if (r == 0 && (c->pidfd = (int)syscall(SYS_pidfd_open, c->init, 0)) < 0) r = jl_syserr(err, "pidfd_open %d", c->init);
  return r;
}

/* Validate everything first (a bad config is refused before anything exists), then boot. */
static int op_boot(uint32_t handle, json_t *req, struct jl_err *err) {
  uint64_t t_start = jl_now_us();
  const char *id = json_string_value(json_object_get(req, "id"));
  if (!id) return jl_fail(err, "invalid_argument", "boot: id is required");
  if (jl_check_id(id, err) < 0) return -1;
  if (sv_find_ctr(id)) return jl_fail(err, "already_exists", "container %s is already running in this server", id);
  struct jl_config cfg;
  const char *bundle = json_string_value(json_object_get(req, "bundle"));
  if (jl_config_parse(json_object_get(req, "config"), bundle, &cfg, err) < 0 ||
      check_overlay(json_object_get(req, "rootfsOverlay"), err) < 0) {
    jl_config_free(&cfg);
    return -1;
  }
  struct ctr *c = calloc(1, sizeof *c);
  snprintf(c->id, sizeof c->id, "%s", id);
  int child[3] = {-1, -1, -1}, parent[3] = {-1, -1, -1};
  int r = take_cgroup(&c->pc, err);
  /* The cgroup of an earlier container with this id may still wait for removal (serve-grave.c). */
  if (r == 0 && jl_cg_can_rename(S.mode)) r = sv_grave_release_name(id, err);
  if (r == 0 && jl_cg_can_rename(S.mode) && (r = jl_cg_rename(&c->pc.cg, id, err)) < 0 && err->errnum == EEXIST)
    jl_fail(err, "already_exists", "a cgroup jiffy/%s already exists (another container with this id?)", id);
  if (r == 0) r = jl_cg_apply(&c->pc.cg, &cfg.res, err);
  if (r == 0) r = sv_make_stdio(req, child, parent, err);
  uint64_t t_spawn = jl_now_us();
  if (r == 0) r = spawn_init(c, &cfg, req, child, err);
  sv_close_stdio(child);
  jl_config_free(&cfg);
  if (S.trace) fprintf(stderr, "jiffy-launch serve: boot %s: prepare %llu us, spawn %llu us\n", id,
                       (unsigned long long)(t_spawn - t_start), (unsigned long long)(jl_now_us() - t_spawn));
  if (r < 0) {
    sv_close_stdio(parent);
    if (c->pc.cg.nh) jl_pool_cg_discard(&c->pc);
    free(c);
    return -1;
  }
  c->next = S.ctrs;
  S.ctrs = c;
  struct proc *p = sv_add_proc(handle, c->init, c, parent);
  p->is_init = true;
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b, s:i}", "ok", 1, "pid", c->init));
  return 0;
}

/* exec: setns into the init's namespaces through its pidfd, join its cgroup, apply the process. */
static int op_exec(uint32_t handle, json_t *req, struct jl_err *err) {
  const char *id = json_string_value(json_object_get(req, "id"));
  struct ctr *c = id ? sv_find_ctr(id) : NULL;
  if (!c) return jl_fail(err, "not_found", "exec: no running container %s", id ? id : "(missing id)");
  if (c->paused) return jl_fail(err, "failed_precondition", "exec: container %s is paused; resume it first", id);
  struct jl_process proc;
  int child[3] = {-1, -1, -1}, parent[3] = {-1, -1, -1};
  pid_t pid;
  int r = jl_process_parse(json_object_get(req, "process"), "process", &proc, err);
  struct jl_spawn s = {.proc = &proc, .netns_fd = -1, .join_pidfd = c->pidfd, .die_with_parent = true,
                       .join_flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP};
  if (r == 0) r = sv_make_stdio(req, child, parent, err);
  if (r == 0) r = jl_cg_procs_fds(&c->pc.cg, s.cg_fds, &s.ncg, err);
  if (r == 0) {
    memcpy(s.stdio, child, sizeof child);
    r = jl_spawn(&s, &pid, err);
    for (int i = 0; i < s.ncg; i++) close(s.cg_fds[i]);
  }
  sv_close_stdio(child);
  jl_process_free(&proc);
  if (r < 0) { sv_close_stdio(parent); return -1; }
  sv_add_proc(handle, pid, c, parent);
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b, s:i}", "ok", 1, "pid", pid));
  return 0;
}

static struct ctr *need_ctr(json_t *req, const char *op, struct jl_err *err) {
  const char *id = json_string_value(json_object_get(req, "id"));
  struct ctr *c = id ? sv_find_ctr(id) : NULL;
  if (!c) jl_fail(err, "not_found", "%s: no running container %s", op, id ? id : "(missing id)");
  return c;
}

static int op_kill(uint32_t handle, json_t *req, struct jl_err *err) {
  json_t *s = json_object_get(req, "signal"), *h = json_object_get(req, "handle");
  int sig = json_is_integer(s) ? (int)json_integer_value(s) : json_is_string(s) ? jl_parse_signal(json_string_value(s)) : SIGTERM;
  if (sig <= 0 || sig > 64) return jl_fail(err, "invalid_argument", "kill: bad signal");
  if (json_is_integer(h)) {  /* one exec'd process, by its handle */
    struct proc *p = sv_proc_by_handle((uint32_t)json_integer_value(h));
    if (!p) return jl_fail(err, "not_found", "kill: no running process with handle %lld", (long long)json_integer_value(h));
    if (kill(p->pid, sig) < 0) return jl_syserr(err, "kill %d", p->pid);
    jl_out_json(JL_F_REPLY, handle, json_pack("{s:b}", "ok", 1));
    return 0;
  }
  struct ctr *c = need_ctr(req, "kill", err);
  if (!c) return -1;
  /* The init is our child and not reaped yet, so its pid cannot have been recycled. A frozen
   * container is thawed for SIGKILL: frozen tasks cannot die. */
  if (sig == SIGKILL && c->paused) { jl_cg_freeze(&c->pc.cg, false, err); c->paused = false; }
  if (kill(c->init, sig) < 0) return jl_syserr(err, "kill %s", c->id);
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b}", "ok", 1));
  return 0;
}

static int op_freeze(uint32_t handle, json_t *req, bool frozen, struct jl_err *err) {
  struct ctr *c = need_ctr(req, frozen ? "pause" : "resume", err);
  if (!c || jl_cg_freeze(&c->pc.cg, frozen, err) < 0) return -1;
  c->paused = frozen;
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b}", "ok", 1));
  return 0;
}

static int op_stats(uint32_t handle, json_t *req, struct jl_err *err) {
  struct ctr *c = need_ctr(req, "stats", err);
  struct jl_cg_stats st;
  if (!c || jl_cg_stats(&c->pc.cg, &st, err) < 0) return -1;
  uint64_t pids = st.pids;
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b, s:I, s:I, s:I, s:I}", "ok", 1, "memoryBytes", (json_int_t)st.mem_usage,
                                            "peakMemoryBytes", (json_int_t)st.mem_peak, "cpuTimeUs", (json_int_t)st.cpu_us,
                                            "pids", (json_int_t)pids));
  return 0;
}

static int op_mount_overlay(uint32_t handle, json_t *req, struct jl_err *err) {
  json_t *l = json_object_get(req, "lower");
  const char *target = json_string_value(json_object_get(req, "target"));
  if (!json_is_array(l) || !target) return jl_fail(err, "invalid_argument", "mount-overlay: lower (array) and target are required");
  size_t n = json_array_size(l);
  const char **lower = calloc(n + 1, sizeof *lower);
  for (size_t i = 0; i < n; i++)
    if (!(lower[i] = json_string_value(json_array_get(l, i)))) {
      free(lower);
      return jl_fail(err, "invalid_argument", "mount-overlay: lower[%zu]: expected a string", i);
    }
  struct jl_overlay ov = {.lower = lower, .nlower = n, .upper = json_string_value(json_object_get(req, "upper")),
                          .work = json_string_value(json_object_get(req, "work")),
                          .cwd = json_string_value(json_object_get(req, "cwd")),
                          .readonly = json_is_true(json_object_get(req, "readonly"))};
  int r = jl_overlay_mount(&ov, target, err);
  free(lower);
  if (r == 0) jl_out_json(JL_F_REPLY, handle, json_pack("{s:b}", "ok", 1));
  return r;
}

static int op_umount(uint32_t handle, json_t *req, struct jl_err *err) {
  const char *target = json_string_value(json_object_get(req, "target"));
  if (!target) return jl_fail(err, "invalid_argument", "umount: target is required");
  if (jl_umount(target, json_is_true(json_object_get(req, "detach")), err) < 0) return -1;
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b}", "ok", 1));
  return 0;
}

void sv_on_request(uint32_t handle, const char *raw, size_t len) {
  struct jl_err err = {0};
  json_error_t je;
  json_t *req = json_loadb(raw, len, 0, &je);
  const char *op = req ? json_string_value(json_object_get(req, "op")) : NULL;
  int r;
  if (!req) r = jl_fail(&err, "invalid_argument", "request is not JSON: %s", je.text);
  else if (!op) r = jl_fail(&err, "invalid_argument", "request: op is required");
  else if (S.stopping) r = jl_fail(&err, "unavailable", "the launcher server is shutting down");
  else if (strcmp(op, "boot") == 0) r = op_boot(handle, req, &err);
  else if (strcmp(op, "exec") == 0) r = op_exec(handle, req, &err);
  else if (strcmp(op, "kill") == 0) r = op_kill(handle, req, &err);
  else if (strcmp(op, "pause") == 0) r = op_freeze(handle, req, true, &err);
  else if (strcmp(op, "resume") == 0) r = op_freeze(handle, req, false, &err);
  else if (strcmp(op, "stats") == 0) r = op_stats(handle, req, &err);
  else if (strcmp(op, "mount-overlay") == 0) r = op_mount_overlay(handle, req, &err);
  else if (strcmp(op, "umount") == 0) r = op_umount(handle, req, &err);
  else if (strcmp(op, "ping") == 0) {
    jl_out_json(JL_F_REPLY, handle, json_pack("{s:b, s:s, s:s}", "ok", 1, "version", JL_VERSION, "cgroupMode", jl_cg_mode_name(S.mode)));
    r = 0;
  } else r = jl_fail(&err, "invalid_argument", "unknown op %s", op);
  if (r < 0) jl_out_error(handle, &err);
  json_decref(req);
}

