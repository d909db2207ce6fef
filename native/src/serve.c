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
 *                     because the process closed it) — the client's flow control for stdin: it
 *                     keeps at most a window of unacknowledged bytes per process in flight
 *                     (src/launcher/process-io.ts), so the server's queue per process is bounded
 *                     and small writes never wait for an ack. Stdin frames that arrive in one
 *                     read are written to the pipe with one write and acked with one frame.
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
 *
 * The loop is single-threaded, so anything slow on it delays every container's stdio. Hence:
 * network namespaces for the pool come from a helper process (serve-netns.c); cgroups for the
 * pool are made one per idle moment; a finished container's cgroup is removed at idle moments
 * too (serve-grave.c: its tasks leave it only some time after the reap, and v1 rmdir is slow),
 * and shutdown removes whatever is still waiting. What still runs inline is the boot itself
 * (~1 ms: the vfork clone returns once the child has exec'd; a fork-style clone would free the
 * loop but costs every boot ~0.3 ms more).
 */
#include "serve-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct serve_state S;

static void remove_ctr(struct ctr *c) {
  for (struct ctr **pp = &S.ctrs; *pp; pp = &(*pp)->next)
    if (*pp == c) { *pp = c->next; break; }
  free(c);
}

/* The container is over when its init is. Its exit frame is already out (stats were read while
 * the cgroup existed); stragglers and the cgroup go at the next idle moments (serve-grave.c). */
static void finish_container(struct ctr *c) {
  close(c->pidfd);
  sv_grave_add(&c->pc.cg);
  for (size_t i = 0; i < S.nprocs; i++) if (S.procs[i] && S.procs[i]->ctr == c) S.procs[i]->ctr = NULL;
  remove_ctr(c);
}

static void on_exit_of(struct proc *p, int status, const struct rusage *ru) {
  sv_pump_out(p, 0, true);
  sv_pump_out(p, 1, true);
  sv_close_in(p);
  struct jl_cg_stats st = {0};
  struct ctr *done = p->is_init ? p->ctr : NULL;
  if (done) {
    struct jl_err err;
    if (jl_cg_stats(&done->pc.cg, &st, &err) < 0) memset(&st, 0, sizeof st);
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
  S.procs[sv_slot_of(p)] = NULL;
  free(p->inq.data);
  free(p);
  if (done) finish_container(done);
}

static void reap(void) {
  int status;
  struct rusage ru;
  pid_t pid;
  while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
    if (pid == S.netpid) S.netpid = 0;  /* the netns helper died; its socket reports EOF */
    struct proc *p = NULL;
    for (size_t i = 0; i < S.nprocs && !p; i++) if (S.procs[i] && S.procs[i]->pid == pid) p = S.procs[i];
    if (p) on_exit_of(p, status, &ru);
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
    if (type == JL_F_REQUEST) sv_on_request(handle, payload, n);
    else if (type == JL_F_STDIN) sv_on_stdin_frame(handle, payload, n);
    else if ((type == JL_F_PAUSE_OUT || type == JL_F_RESUME_OUT) && (p = sv_proc_by_handle(handle))) {
      p->paused_out = type == JL_F_PAUSE_OUT;
      sv_update_out_interest(p);
    }
    jl_buf_consume(&S.in, 4 + (size_t)len);
  }
  sv_flush_stdin();
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
  case TAG_POUT: if (p) sv_pump_out(p, 0, false); break;
  case TAG_PERR: if (p) sv_pump_out(p, 1, false); break;
  case TAG_PIN: if (p) sv_pump_in(p); break;
  case TAG_NETNS: sv_netns_on_readable(); break;
  }
}

/* Inline refills; with the helper running, network namespaces arrive from it instead. */
static bool inline_netns(void) { return S.netsock < 0 && S.nnetpool < POOL_TARGET; }
static bool pool_wanted(void) { return S.ncgpool < POOL_TARGET || inline_netns(); }

/* One item per idle moment (a cgroup or a netns, whichever pool is shorter), so a frame arriving
 * meanwhile waits for at most one mkdir set or one unshare, not both. */
static void refill_pool(void) {
  struct jl_err err;
  int r;
  uint64_t t0 = jl_now_us();
  bool cg = S.ncgpool < POOL_TARGET && (S.ncgpool <= S.nnetpool || !inline_netns());
  if (cg && (r = jl_pool_cg_create(&S.cgpool[S.ncgpool], S.mode, S.seq++, &err)) == 0) S.ncgpool++;
  else if (!cg && (r = jl_pool_netns_create(S.hostnet, &S.netpool[S.nnetpool], &err)) == 0) S.nnetpool++;
  if (S.trace) fprintf(stderr, "jiffy-launch serve: refill %s: %llu us\n", cg ? "cgroup" : "netns", (unsigned long long)(jl_now_us() - t0));
  if (r == 0) return;
  fprintf(stderr, "jiffy-launch serve: pre-creating a pool item: %s (retrying in 1 s)\n", err.msg);
  S.refill_after_us = jl_now_us() + 1000000;
}

/* Leak-free exit: every container dies, is reaped and reported, and every cgroup is removed. */
static void shutdown_all(void) {
  for (struct ctr *c = S.ctrs; c; c = c->next) {
    if (c->paused) jl_cg_freeze(&c->pc.cg, false, &(struct jl_err){0});
    kill(c->init, SIGKILL);
    jl_cg_kill_all(&c->pc.cg);
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
  sv_netns_helper_stop();
  sv_grave_drain();
  while (S.ncgpool > 0) jl_pool_cg_discard(&S.cgpool[--S.ncgpool]);
  while (S.nnetpool > 0) close(S.netpool[--S.nnetpool]);
  int flags = fcntl(1, F_GETFL);
  fcntl(1, F_SETFL, flags & ~O_NONBLOCK);
  jl_out_flush_blocking();
}

static int serve_init(struct jl_err *err) {
  if (jl_cg_detect(&S.mode, err) < 0) return -1;
  S.trace = getenv("JIFFY_LAUNCH_TRACE") != NULL;
  jl_pool_cleanup_stale(S.mode);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  S.netsock = -1;
  S.hostnet = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (S.hostnet < 0) return jl_syserr(err, "serve: open /proc/self/ns/net");
  struct jl_err herr = {0};
  /* Forked before the server opens anything else, so the helper holds nothing of the server's. */
  if (sv_netns_helper_start(&herr) < 0) fprintf(stderr, "jiffy-launch serve: %s; making network namespaces inline\n", herr.msg);
  S.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  S.ep = epoll_create1(EPOLL_CLOEXEC);
  S.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (S.sfd < 0 || S.ep < 0 || S.devnull < 0) return jl_syserr(err, "serve: setup");
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  sv_ep_set(0, EPOLLIN, sv_tag(TAG_IN, 0));
  sv_ep_set(S.sfd, EPOLLIN, sv_tag(TAG_SIG, 0));
  if (S.netsock >= 0) sv_ep_set(S.netsock, EPOLLIN, sv_tag(TAG_NETNS, 0));
  return 0;
}

int jl_cmd_serve(struct jl_cli *c, struct jl_err *err) {
  (void)c;
  if (serve_init(err) < 0) return -1;
  struct epoll_event evs[64];
  while (!S.stopping) {
    sv_netns_request();
    /* Idle time (nothing ready right now) is when the pools are refilled and dead cgroups removed. */
    bool want = pool_wanted();
    uint64_t now = jl_now_us();
    uint64_t due = sv_grave_due_us();
    if (want && S.refill_after_us < due) due = S.refill_after_us;
    /* A failed helper request is retried after its back-off even if nothing else happens. */
    if (S.netsock >= 0 && S.nnetpool + S.netreq < POOL_TARGET && S.net_retry_after_us < due) due = S.net_retry_after_us;
    int timeout = due == UINT64_MAX ? -1 : now >= due ? 0 : (int)((due - now + 999) / 1000);
    int n = epoll_wait(S.ep, evs, 64, timeout);
    if (n < 0 && errno != EINTR) return jl_syserr(err, "epoll_wait");
    /* Under constant load there is no idle moment: past GRAVE_BACKLOG the graveyard gets one
     * attempt per loop turn anyway, so it cannot grow without bound. */
    bool grave_due = sv_grave_due_us() <= jl_now_us();
    if (grave_due && (n == 0 || sv_grave_count() > GRAVE_BACKLOG)) sv_grave_work();
    else if (n == 0 && want && jl_now_us() >= S.refill_after_us) refill_pool();
    for (int i = 0; i < n; i++) on_event(&evs[i]);
    jl_out_flush();
    sv_update_throttle();
  }
  shutdown_all();
  return 0;
}
