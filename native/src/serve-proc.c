/* Fork-server: relaying a process's stdio as frames, with flow control both ways. */
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

uint64_t sv_tag(int kind, size_t slot) { return ((uint64_t)kind << 56) | slot; }

struct ctr *sv_find_ctr(const char *id) {
  for (struct ctr *c = S.ctrs; c; c = c->next) if (strcmp(c->id, id) == 0) return c;
  return NULL;
}

size_t sv_slot_of(struct proc *p) {
  for (size_t i = 0; i < S.nprocs; i++) if (S.procs[i] == p) return i;
  return (size_t)-1;
}

void sv_ep_set(int fd, uint32_t events, uint64_t t) {
  struct epoll_event ev = {.events = events, .data.u64 = t};
  if (epoll_ctl(S.ep, EPOLL_CTL_MOD, fd, &ev) < 0) epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &ev);
}

void sv_update_out_interest(struct proc *p) {
  size_t slot = sv_slot_of(p);
  uint32_t ev = (p->paused_out || S.throttled) ? 0 : EPOLLIN;
  if (p->out_fd[0] >= 0) sv_ep_set(p->out_fd[0], ev, sv_tag(TAG_POUT, slot));
  if (p->out_fd[1] >= 0) sv_ep_set(p->out_fd[1], ev, sv_tag(TAG_PERR, slot));
}

/* Backpressure toward containers: stop reading their output while the client lags far behind. */
void sv_update_throttle(void) {
  size_t pending = jl_out_pending();
  bool t = S.throttled ? pending > OUT_LOW : pending > OUT_HIGH;
  uint32_t ev = pending ? EPOLLOUT : 0;
  if (!S.out1_set || ev != S.out1_ev) {  /* one epoll_ctl per change, not per loop turn */
    sv_ep_set(1, ev, sv_tag(TAG_OUT1, 0));
    S.out1_set = true;
    S.out1_ev = ev;
  }
  if (t == S.throttled) return;
  S.throttled = t;
  for (size_t i = 0; i < S.nprocs; i++) if (S.procs[i]) sv_update_out_interest(S.procs[i]);
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
bool sv_pump_out(struct proc *p, int which, bool drain) {
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

void sv_close_in(struct proc *p) {
  if (p->in_fd < 0) return;
  epoll_ctl(S.ep, EPOLL_CTL_DEL, p->in_fd, NULL);
  close(p->in_fd);
  p->in_fd = -1;
  ack_stdin(p, p->in_unacked);  /* dropped bytes are acked too, or the client would wait forever */
  p->inq.off = p->inq.len = 0;
}

void sv_pump_in(struct proc *p) {
  uint32_t done = 0;
  while (p->in_fd >= 0 && p->inq.len > p->inq.off) {
    ssize_t w = write(p->in_fd, p->inq.data + p->inq.off, p->inq.len - p->inq.off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) break;
    if (w < 0) { ack_stdin(p, done); sv_close_in(p); return; }  /* EPIPE: the process closed its stdin */
    jl_buf_consume(&p->inq, (size_t)w);
    done += (uint32_t)w;
  }
  ack_stdin(p, done);
  if (p->in_fd < 0) return;
  if (p->inq.len == p->inq.off && p->in_close) { sv_close_in(p); return; }
  uint32_t ev = p->inq.len > p->inq.off ? EPOLLOUT : 0;
  if (ev != p->in_ev) {
    sv_ep_set(p->in_fd, ev, sv_tag(TAG_PIN, sv_slot_of(p)));
    p->in_ev = ev;
  }
}

void sv_on_stdin_frame(uint32_t handle, const char *data, size_t n) {
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
  p->in_dirty = true;
}

void sv_flush_stdin(void) {
  for (size_t i = 0; i < S.nprocs; i++) {
    struct proc *p = S.procs[i];
    if (!p || !p->in_dirty) continue;
    p->in_dirty = false;
    /* While EPOLLOUT is armed the pipe is full: the event will pump, a write now would EAGAIN. */
    if (p->in_ev == 0 || p->in_close) sv_pump_in(p);
  }
}

struct proc *sv_proc_by_handle(uint32_t handle) {
  for (size_t i = 0; i < S.nprocs; i++) if (S.procs[i] && S.procs[i]->handle == handle) return S.procs[i];
  return NULL;
}

struct proc *sv_add_proc(uint32_t handle, pid_t pid, struct ctr *c, const int parent_fds[3]) {
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
  sv_update_out_interest(p);
  if (p->in_fd >= 0) sv_ep_set(p->in_fd, 0, sv_tag(TAG_PIN, slot));
  return p;
}

