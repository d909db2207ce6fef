/* Fork-server internals shared by serve.c (event loop, exits, shutdown), serve-proc.c (process
 * stdio relay) and serve-ops.c (request handlers). */
#ifndef JL_SERVE_PRIV_H
#define JL_SERVE_PRIV_H

#include "jl-serve.h"

#include <sys/epoll.h>

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

struct serve_state {
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
};
extern struct serve_state S;

/* epoll tags: kind in the top byte, proc slot below. */
enum { TAG_IN = 1, TAG_OUT1 = 2, TAG_SIG = 3, TAG_POUT = 4, TAG_PERR = 5, TAG_PIN = 6 };
uint64_t sv_tag(int kind, size_t slot);

struct ctr *sv_find_ctr(const char *id);
size_t sv_slot_of(struct proc *p);
void sv_ep_set(int fd, uint32_t events, uint64_t t);
void sv_update_out_interest(struct proc *p);
void sv_update_throttle(void);
/* Returns false once the pipe is at EOF (or failed) and has been closed. */
bool sv_pump_out(struct proc *p, int which, bool drain);
void sv_pump_in(struct proc *p);
void sv_close_in(struct proc *p);
void sv_on_stdin_frame(uint32_t handle, const char *data, size_t n);
struct proc *sv_proc_by_handle(uint32_t handle);
struct proc *sv_add_proc(uint32_t handle, pid_t pid, struct ctr *c, const int parent_fds[3]);
void sv_on_request(uint32_t handle, const char *raw, size_t len);

#endif
