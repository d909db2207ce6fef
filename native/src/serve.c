/* jiffy-launch serve: the fork-server a Jiffy worker keeps running (one per worker).
 *
 * Wire protocol on the server's stdin (client -> server) and stdout (server -> client).
 * Every frame: u32 little-endian LENGTH of what follows, u8 TYPE, u32 little-endian HANDLE,
 * then LENGTH-5 payload bytes. stderr carries human diagnostics only.
 *
 *   client -> server
 *     0x01 request    handle = request id (client-chosen, unique); payload = JSON {"op": ...}
 *     0x02 stdin      handle = process handle; payload = bytes for its stdin; empty = close stdin
 *     0x03 pause-out  stop reading the process's stdout/stderr (client-side backpressure)
 *     0x04 resume-out read them again
 *   server -> client
 *     0x81 reply      handle = request id; {"ok":true,...} or {"ok":false,"code","message","errno"}
 *     0x82 stdout     handle = process handle; bytes; empty payload = EOF
 *     0x83 stderr     same for stderr
 *     0x84 exit       {"exitCode","signal","oomKilled","peakMemoryBytes","cpuTimeUs","wallTimeUs"}
 *     0x85 stdin-ack  payload u32 LE: stdin bytes written into the process's pipe (or dropped
 *                     because the process closed it) — the client's flow control for stdin
 *
 * The process handle of a booted or exec'd process is the id of the request that started it.
 * Per handle the server guarantees: reply(ok) < stdout/stderr data < both EOFs < exit.
 *
 * Ops (request JSON):
 *   boot          {id, config, bundle?, rootfsOverlay?:{lower[],upper,work,cwd?}, stdin?, stdout?, stderr?: "pipe"|"null"}
 *                 -> {pid}; later an exit frame
 *   exec          {id (target container), process, stdin?, stdout?, stderr?} -> {pid}; later exit
 *   kill          {id, signal}          pause / resume {id}          stats {id} -> {memoryBytes, peakMemoryBytes, cpuTimeUs, pids}
 *   mount-overlay {lower[], upper?, work?, target, readonly?, cwd?}   umount {target, detach?}
 *   ping          -> {version, cgroupMode}
 *
 * Shutdown (stdin EOF, SIGTERM, SIGINT): kill every container (thawing frozen ones first), reap
 * them, send their exit frames, remove their cgroups and the pools, exit 0.
 *
 * A boot is one vfork-style clone from this process (container.c) with a pooled cgroup and a
 * pooled network namespace (serve-pool.c); nothing else on the boot path touches /sys or /proc.
 */
#include "jl-serve.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#define POOL_TARGET 4
#define OUT_HIGH (8u << 20)
#define OUT_LOW (1u << 20)
#define READ_CHUNK 65536

struct ctr;
struct proc {
  uint32_t handle;
  pid_t pid;
  struct ctr *ctr;
  bool is_init, paused_out;
  int in_fd, out_fd[2];
  struct jl_buf inq;
  uint32_t in_unacked;   /* bytes queued but not yet acked */
  bool in_close;         /* close stdin once inq drains */
  uint64_t start_us;
};

struct ctr {
  char id[256];
  struct jl_pooled_cg pc;
  pid_t init;
  int pidfd;
  bool paused;
  struct ctr *next;
};

static struct {
  int ep, sfd, devnull, hostnet;
  enum jl_cg_mode mode;
  struct jl_buf in;
  struct proc **procs; size_t nprocs;    /* slot index is the epoll tag */
  struct ctr *ctrs;
  struct jl_pooled_cg cgpool[POOL_TARGET]; int ncgpool;
  int netpool[POOL_TARGET]; int nnetpool;
  unsigned seq;
  bool throttled, stopping;
  uint64_t refill_after_us;  /* back-off after a failed refill */
  bool trace;                /* JIFFY_LAUNCH_TRACE=1: per-boot timings on stderr */
} S;

/* epoll tags: kind in the top byte, proc slot below. */
enum { TAG_IN = 1, TAG_OUT1 = 2, TAG_SIG = 3, TAG_POUT = 4, TAG_PERR = 5, TAG_PIN = 6 };
static uint64_t tag(int kind, size_t slot) { return ((uint64_t)kind << 56) | slot; }

static struct ctr *find_ctr(const char *id) {
  for (struct ctr *c = S.ctrs; c; c = c->next) if (strcmp(c->id, id) == 0) return c;
  return NULL;
}

static size_t slot_of(struct proc *p) {
  for (size_t i = 0; i < S.nprocs; i++) if (S.procs[i] == p) return i;
  return (size_t)-1;
}

static void ep_set(int fd, uint32_t events, uint64_t t) {
  struct epoll_event ev = {.events = events, .data.u64 = t};
  if (epoll_ctl(S.ep, EPOLL_CTL_MOD, fd, &ev) < 0) epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &ev);
}

static void update_out_interest(struct proc *p) {
  size_t slot = slot_of(p);
  uint32_t ev = (p->paused_out || S.throttled) ? 0 : EPOLLIN;
  if (p->out_fd[0] >= 0) ep_set(p->out_fd[0], ev, tag(TAG_POUT, slot));
  if (p->out_fd[1] >= 0) ep_set(p->out_fd[1], ev, tag(TAG_PERR, slot));
}

/* Backpressure toward containers: stop reading their output while the client lags far behind. */
static void update_throttle(void) {
  size_t pending = jl_out_pending();
  bool t = S.throttled ? pending > OUT_LOW : pending > OUT_HIGH;
  ep_set(1, pending ? EPOLLOUT : 0, tag(TAG_OUT1, 0));
  if (t == S.throttled) return;
  S.throttled = t;
  for (size_t i = 0; i < S.nprocs; i++) if (S.procs[i]) update_out_interest(S.procs[i]);
}

static void close_out(struct proc *p, int which) {
  int fd = p->out_fd[which];
  if (fd < 0) return;
  epoll_ctl(S.ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  p->out_fd[which] = -1;
  jl_out_frame(which ? JL_F_STDERR : JL_F_STDOUT, p->handle, NULL, 0);
}

/* Returns false once the pipe is at EOF (or failed) and has been closed. */
static bool pump_out(struct proc *p, int which, bool drain) {
  static char buf[READ_CHUNK];
  for (int rounds = 0; p->out_fd[which] >= 0 && (drain || rounds < 4); rounds++) {
    ssize_t r = read(p->out_fd[which], buf, sizeof buf);
    if (r > 0) { jl_out_frame(which ? JL_F_STDERR : JL_F_STDOUT, p->handle, buf, (size_t)r); continue; }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN && !drain) return true;
    close_out(p, which);  /* EOF, error, or draining after exit: later writers (orphans) are not waited for */
    return false;
  }
  return p->out_fd[which] >= 0;
}

static void ack_stdin(struct proc *p, uint32_t n) {
  if (!n) return;
  p->in_unacked -= n;
  jl_out_frame(JL_F_STDIN_ACK, p->handle, &n, 4);
}

static void close_in(struct proc *p) {
  if (p->in_fd < 0) return;
  epoll_ctl(S.ep, EPOLL_CTL_DEL, p->in_fd, NULL);
  close(p->in_fd);
  p->in_fd = -1;
  ack_stdin(p, p->in_unacked);  /* dropped bytes are acked too, or the client would wait forever */
  p->inq.off = p->inq.len = 0;
}

static void pump_in(struct proc *p) {
  uint32_t done = 0;
  while (p->in_fd >= 0 && p->inq.len > p->inq.off) {
    ssize_t w = write(p->in_fd, p->inq.data + p->inq.off, p->inq.len - p->inq.off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) break;
    if (w < 0) { ack_stdin(p, done); close_in(p); return; }  /* EPIPE: the process closed its stdin */
    jl_buf_consume(&p->inq, (size_t)w);
    done += (uint32_t)w;
  }
  ack_stdin(p, done);
  if (p->in_fd < 0) return;
  if (p->inq.len == p->inq.off && p->in_close) { close_in(p); return; }
  ep_set(p->in_fd, p->inq.len > p->inq.off ? EPOLLOUT : 0, tag(TAG_PIN, slot_of(p)));
}

static void on_stdin_frame(uint32_t handle, const char *data, size_t n) {
  struct proc *p = NULL;
  for (size_t i = 0; i < S.nprocs && !p; i++) if (S.procs[i] && S.procs[i]->handle == handle) p = S.procs[i];
  if (!p || p->in_fd < 0) {  /* gone already: ack so the client's writer does not hang */
    uint32_t m = (uint32_t)n;
    if (m) jl_out_frame(JL_F_STDIN_ACK, handle, &m, 4);
    return;
  }
  if (n == 0) p->in_close = true;
  else {
    if (jl_buf_append(&p->inq, data, n) < 0) abort();
    p->in_unacked += (uint32_t)n;
  }
  pump_in(p);
}

static struct proc *proc_by_handle(uint32_t handle) {
  for (size_t i = 0; i < S.nprocs; i++) if (S.procs[i] && S.procs[i]->handle == handle) return S.procs[i];
  return NULL;
}

static struct proc *add_proc(uint32_t handle, pid_t pid, struct ctr *c, const int parent_fds[3]) {
  struct proc *p = calloc(1, sizeof *p);
  if (!p) abort();
  *p = (struct proc){.handle = handle, .pid = pid, .ctr = c, .in_fd = parent_fds[0],
                     .out_fd = {parent_fds[1], parent_fds[2]}, .start_us = jl_now_us()};
  size_t slot = 0;
  while (slot < S.nprocs && S.procs[slot]) slot++;
  if (slot == S.nprocs) {
    S.procs = realloc(S.procs, (S.nprocs + 16) * sizeof *S.procs);
    memset(S.procs + S.nprocs, 0, 16 * sizeof *S.procs);
    S.nprocs += 16;
  }
  S.procs[slot] = p;
  update_out_interest(p);
  if (p->in_fd >= 0) ep_set(p->in_fd, 0, tag(TAG_PIN, slot));
  return p;
}

/* Pipes for the three stdio streams: child ends go to the new process, parent ends stay here
 * (non-blocking). "null" connects /dev/null instead. */
static int make_stdio(json_t *req, int child[3], int parent[3], struct jl_err *err) {
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

static void close_stdio(int fds[3]) {
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

/* Validate (so a bad config is refused before anything exists), then hand over to a spawner. */
static int op_boot(uint32_t handle, json_t *req, const char *raw, size_t rawlen, struct jl_err *err) {
  uint64_t t_start = jl_now_us();
  const char *id = json_string_value(json_object_get(req, "id"));
  if (!id) return jl_fail(err, "invalid_argument", "boot: id is required");
  if (jl_check_id(id, err) < 0) return -1;
  if (find_ctr(id)) return jl_fail(err, "already_exists", "container %s is already running in this server", id);
  struct jl_config cfg;
  const char *bundle = json_string_value(json_object_get(req, "bundle"));
  int r = jl_config_parse(json_object_get(req, "config"), bundle, &cfg, err);
  struct jl_resources res = cfg.res;
  jl_config_free(&cfg);
  if (r < 0 || check_overlay(json_object_get(req, "rootfsOverlay"), err) < 0) return -1;
  if (res.pids_limit > 0) res.pids_limit++;  /* the spawner lives in the container's cgroup too */
  struct ctr *c = calloc(1, sizeof *c);
  snprintf(c->id, sizeof c->id, "%s", id);
  int child[3] = {-1, -1, -1}, parent[3] = {-1, -1, -1};
  if (take_spawner(&c->sp, err) < 0) { free(c); return -1; }
  if ((jl_cg_can_rename(S.mode) && jl_cg_rename(&c->sp.cg, id, err) < 0) || jl_cg_apply(&c->sp.cg, &res, err) < 0 ||
      make_stdio(req, child, parent, err) < 0) {
    if (err->errnum == EEXIST) err->code = "already_exists";
    close_stdio(child);
    close_stdio(parent);
    discard_spawner(&c->sp);
    free(c);
    return -1;
  }
  uint64_t t_req = jl_now_us();
  r = jl_spawner_request(&c->sp, 'B', raw, rawlen, child, &c->init, err);
  close_stdio(child);
  if (S.trace) fprintf(stderr, "jiffy-launch serve: boot %s: prepare %llu us, spawn %llu us (pool %d)\n", id,
                       (unsigned long long)(t_req - t_start), (unsigned long long)(jl_now_us() - t_req), S.npool);
  if (r < 0) {
    close_stdio(parent);
    discard_spawner(&c->sp);
    free(c);
    return -1;
  }
  c->next = S.ctrs;
  S.ctrs = c;
  struct proc *p = add_proc(handle, c->init, c, parent);
  p->is_init = true;
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b, s:i}", "ok", 1, "pid", c->init));
  return 0;
}

static int op_exec(uint32_t handle, json_t *req, const char *raw, size_t rawlen, struct jl_err *err) {
  const char *id = json_string_value(json_object_get(req, "id"));
  struct ctr *c = id ? find_ctr(id) : NULL;
  if (!c) return jl_fail(err, "not_found", "exec: no running container %s", id ? id : "(missing id)");
  if (c->paused) return jl_fail(err, "failed_precondition", "exec: container %s is paused; resume it first", id);
  if (c->sp.reaped) return jl_fail(err, "unavailable", "exec: the exec helper of container %s is gone", id);
  struct jl_process proc;
  int r = jl_process_parse(json_object_get(req, "process"), "process", &proc, err);
  jl_process_free(&proc);
  if (r < 0) return -1;
  int child[3], parent[3];
  pid_t pid;
  if (make_stdio(req, child, parent, err) < 0) { close_stdio(child); close_stdio(parent); return -1; }
  r = jl_spawner_request(&c->sp, 'E', raw, rawlen, child, &pid, err);
  close_stdio(child);
  if (r < 0) { close_stdio(parent); return -1; }
  add_proc(handle, pid, c, parent);
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b, s:i}", "ok", 1, "pid", pid));
  return 0;
}

static struct ctr *need_ctr(json_t *req, const char *op, struct jl_err *err) {
  const char *id = json_string_value(json_object_get(req, "id"));
  struct ctr *c = id ? find_ctr(id) : NULL;
  if (!c) jl_fail(err, "not_found", "%s: no running container %s", op, id ? id : "(missing id)");
  return c;
}

static int op_kill(uint32_t handle, json_t *req, struct jl_err *err) {
  json_t *s = json_object_get(req, "signal"), *h = json_object_get(req, "handle");
  int sig = json_is_integer(s) ? (int)json_integer_value(s) : json_is_string(s) ? jl_parse_signal(json_string_value(s)) : SIGTERM;
  if (sig <= 0 || sig > 64) return jl_fail(err, "invalid_argument", "kill: bad signal");
  if (json_is_integer(h)) {  /* one exec'd process, by its handle */
    struct proc *p = proc_by_handle((uint32_t)json_integer_value(h));
    if (!p) return jl_fail(err, "not_found", "kill: no running process with handle %lld", (long long)json_integer_value(h));
    if (kill(p->pid, sig) < 0) return jl_syserr(err, "kill %d", p->pid);
    jl_out_json(JL_F_REPLY, handle, json_pack("{s:b}", "ok", 1));
    return 0;
  }
  struct ctr *c = need_ctr(req, "kill", err);
  if (!c) return -1;
  /* The init is our child and not reaped yet, so its pid cannot have been recycled. A frozen
   * container is thawed for SIGKILL: frozen tasks cannot die. */
  if (sig == SIGKILL && c->paused) { jl_cg_freeze(&c->sp.cg, false, err); c->paused = false; }
  if (kill(c->init, sig) < 0) return jl_syserr(err, "kill %s", c->id);
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b}", "ok", 1));
  return 0;
}

static int op_freeze(uint32_t handle, json_t *req, bool frozen, struct jl_err *err) {
  struct ctr *c = need_ctr(req, frozen ? "pause" : "resume", err);
  if (!c || jl_cg_freeze(&c->sp.cg, frozen, err) < 0) return -1;
  c->paused = frozen;
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b}", "ok", 1));
  return 0;
}

static int op_stats(uint32_t handle, json_t *req, struct jl_err *err) {
  struct ctr *c = need_ctr(req, "stats", err);
  struct jl_cg_stats st;
  if (!c || jl_cg_stats(&c->sp.cg, &st, err) < 0) return -1;
  uint64_t pids = st.pids > 0 && !c->sp.reaped ? st.pids - 1 : st.pids;  /* minus the spawner */
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

static void on_request(uint32_t handle, const char *raw, size_t len) {
  struct jl_err err = {0};
  json_error_t je;
  json_t *req = json_loadb(raw, len, 0, &je);
  const char *op = req ? json_string_value(json_object_get(req, "op")) : NULL;
  int r;
  if (!req) r = jl_fail(&err, "invalid_argument", "request is not JSON: %s", je.text);
  else if (!op) r = jl_fail(&err, "invalid_argument", "request: op is required");
  else if (S.stopping) r = jl_fail(&err, "unavailable", "the launcher server is shutting down");
  else if (strcmp(op, "boot") == 0) r = op_boot(handle, req, raw, len, &err);
  else if (strcmp(op, "exec") == 0) r = op_exec(handle, req, raw, len, &err);
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

static void remove_ctr(struct ctr *c) {
  for (struct ctr **pp = &S.ctrs; *pp; pp = &(*pp)->next)
    if (*pp == c) { *pp = c->next; break; }
  free(c);
}

/* The container is over when its init is. Its exit frame is already out (stats were read while
 * the cgroup existed); now the spawner and any stragglers go, then the cgroup. */
static void finish_container(struct ctr *c) {
  struct jl_err err;
  jl_spawner_stop(&c->sp);
  jl_cg_kill_all(&c->sp.cg);
  if (jl_cg_destroy(&c->sp.cg, &err) < 0) fprintf(stderr, "jiffy-launch serve: %s\n", err.msg);
  for (size_t i = 0; i < S.nprocs; i++) if (S.procs[i] && S.procs[i]->ctr == c) S.procs[i]->ctr = NULL;
  remove_ctr(c);
}

static void on_exit_of(struct proc *p, int status, const struct rusage *ru) {
  pump_out(p, 0, true);
  pump_out(p, 1, true);
  close_in(p);
  struct jl_cg_stats st = {0};
  struct ctr *done = p->is_init ? p->ctr : NULL;
  if (done) {
    struct jl_err err;
    if (jl_cg_stats(&done->sp.cg, &st, &err) < 0) memset(&st, 0, sizeof st);
  } else {
    /* exec'd processes share the container's cgroup: their own numbers come from rusage */
    st.cpu_us = (uint64_t)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000u + (uint64_t)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec);
    st.mem_peak = (uint64_t)ru->ru_maxrss * 1024u;
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  jl_out_json(JL_F_EXIT, p->handle,
              json_pack("{s:i, s:s?, s:b, s:I, s:I, s:I}", "exitCode", code,
                        "signal", WIFSIGNALED(status) ? jl_signal_name(WTERMSIG(status)) : NULL, "oomKilled", st.oom_kills > 0,
                        "peakMemoryBytes", (json_int_t)st.mem_peak, "cpuTimeUs", (json_int_t)st.cpu_us,
                        "wallTimeUs", (json_int_t)(jl_now_us() - p->start_us)));
  S.procs[slot_of(p)] = NULL;
  free(p->inq.data);
  free(p);
  if (done) {
    jl_out_flush();  /* the client learns about the exit before the (slow, v1 memcg) rmdir */
    finish_container(done);
  }
}

static void reap(void) {
  int status;
  struct rusage ru;
  pid_t pid;
  while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
    struct proc *p = NULL;
    for (size_t i = 0; i < S.nprocs && !p; i++) if (S.procs[i] && S.procs[i]->pid == pid) p = S.procs[i];
    if (p) { on_exit_of(p, status, &ru); continue; }
    for (struct ctr *c = S.ctrs; c; c = c->next) if (c->sp.pid == pid) c->sp.reaped = true;
    for (int i = 0; i < S.npool; i++)
      if (S.pool[i].pid == pid) {  /* a pooled spawner died: drop it */
        S.pool[i].reaped = true;
        discard_spawner(&S.pool[i]);
        S.pool[i] = S.pool[--S.npool];
        break;
      }
  }
}

static void on_input(void) {
  char buf[READ_CHUNK];
  ssize_t r = read(0, buf, sizeof buf);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (r <= 0) { S.stopping = true; return; }
  if (jl_buf_append(&S.in, buf, (size_t)r) < 0) abort();
  while (S.in.len - S.in.off >= JL_FRAME_HDR) {
    const char *f = S.in.data + S.in.off;
    uint32_t len, handle;
    memcpy(&len, f, 4);
    memcpy(&handle, f + 5, 4);
    if (len < 5 || len > JL_FRAME_MAX) {
      fprintf(stderr, "jiffy-launch serve: bad frame length %u; shutting down\n", len);
      S.stopping = true;
      return;
    }
    if (S.in.len - S.in.off < 4 + (size_t)len) break;
    uint8_t type = (uint8_t)f[4];
    const char *payload = f + JL_FRAME_HDR;
    size_t n = len - 5;
    struct proc *p;
    if (type == JL_F_REQUEST) on_request(handle, payload, n);
    else if (type == JL_F_STDIN) on_stdin_frame(handle, payload, n);
    else if ((type == JL_F_PAUSE_OUT || type == JL_F_RESUME_OUT) && (p = proc_by_handle(handle))) {
      p->paused_out = type == JL_F_PAUSE_OUT;
      update_out_interest(p);
    }
    jl_buf_consume(&S.in, 4 + (size_t)len);
  }
}

static void on_event(struct epoll_event *ev) {
  int kind = (int)(ev->data.u64 >> 56);
  size_t slot = (size_t)(ev->data.u64 & 0xffffffffffffffULL);
  struct proc *p = (kind >= TAG_POUT && slot < S.nprocs) ? S.procs[slot] : NULL;
  switch (kind) {
  case TAG_IN: on_input(); break;
  case TAG_OUT1: jl_out_flush(); break;
  case TAG_SIG: {
    struct signalfd_siginfo si;
    while (read(S.sfd, &si, sizeof si) == sizeof si)
      if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGHUP) S.stopping = true;
    reap();
    break;
  }
  case TAG_POUT: if (p) pump_out(p, 0, false); break;
  case TAG_PERR: if (p) pump_out(p, 1, false); break;
  case TAG_PIN: if (p) pump_in(p); break;
  }
}

static void refill_pool(void) {
  struct jl_err err;
  if (jl_spawner_create(&S.pool[S.npool], S.mode, S.seq++, S.hostnet, &err) == 0) {
    S.npool++;
    return;
  }
  fprintf(stderr, "jiffy-launch serve: pre-creating a spawner: %s (retrying in 1 s)\n", err.msg);
  S.refill_after_us = jl_now_us() + 1000000;
}

/* Leak-free exit: every container dies, is reaped and reported, and every cgroup is removed. */
static void shutdown_all(void) {
  for (struct ctr *c = S.ctrs; c; c = c->next) {
    if (c->paused) jl_cg_freeze(&c->sp.cg, false, &(struct jl_err){0});
    kill(c->init, SIGKILL);
    jl_cg_kill_all(&c->sp.cg);
  }
  for (int waited = 0; S.ctrs && waited < 10000; waited++) {
    reap();
    if (S.ctrs) usleep(1000);
  }
  for (size_t i = 0; i < S.nprocs; i++) {  /* exec'd processes whose container is gone */
    if (!S.procs[i]) continue;
    kill(S.procs[i]->pid, SIGKILL);
  }
  for (int waited = 0; waited < 2000; waited++) {
    bool left = false;
    for (size_t i = 0; i < S.nprocs; i++) left |= S.procs[i] != NULL;
    if (!left) break;
    reap();
    usleep(1000);
  }
  while (S.npool > 0) discard_spawner(&S.pool[--S.npool]);
  int flags = fcntl(1, F_GETFL);
  fcntl(1, F_SETFL, flags & ~O_NONBLOCK);
  jl_out_flush_blocking();
}

static int serve_init(struct jl_err *err) {
  if (jl_cg_detect(&S.mode, err) < 0) return -1;
  S.trace = getenv("JIFFY_LAUNCH_TRACE") != NULL;
  jl_spawner_cleanup_stale(S.mode);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  S.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  S.ep = epoll_create1(EPOLL_CLOEXEC);
  S.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  S.hostnet = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (S.sfd < 0 || S.ep < 0 || S.devnull < 0 || S.hostnet < 0) return jl_syserr(err, "serve: setup");
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  ep_set(0, EPOLLIN, tag(TAG_IN, 0));
  ep_set(S.sfd, EPOLLIN, tag(TAG_SIG, 0));
  return 0;
}

int jl_cmd_serve(struct jl_cli *c, struct jl_err *err) {
  (void)c;
  if (serve_init(err) < 0) return -1;
  struct epoll_event evs[64];
  while (!S.stopping) {
    /* Idle time (nothing ready right now) is when the spawner pool is refilled. */
    bool want = S.npool < POOL_TARGET;
    uint64_t now = jl_now_us();
    int timeout = !want ? -1 : now >= S.refill_after_us ? 0 : (int)((S.refill_after_us - now) / 1000) + 1;
    int n = epoll_wait(S.ep, evs, 64, timeout);
    if (n < 0 && errno != EINTR) return jl_syserr(err, "epoll_wait");
    if (n == 0 && want && jl_now_us() >= S.refill_after_us) refill_pool();
    for (int i = 0; i < n; i++) on_event(&evs[i]);
    jl_out_flush();
    update_throttle();
  }
  shutdown_all();
  return 0;
}
