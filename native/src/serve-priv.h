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
#define GRAVE_BACKLOG 32

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
  bool in_dirty;         /* stdin frames arrived in this read; pumped once after the batch */
  uint32_t in_ev;        /* epoll interest currently set for in_fd */
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
  int netsock, netreq;                   /* netns helper socket (-1: none) and requests in flight */
  pid_t netpid;
  uint64_t net_retry_after_us;
  unsigned seq;
  bool throttled, stopping;
  bool out1_set; uint32_t out1_ev;  /* epoll interest currently set for fd 1 */
  uint64_t refill_after_us;  /* back-off after a failed refill */
  bool trace;                /* JIFFY_LAUNCH_TRACE=1: per-boot timings on stderr */
};
extern struct serve_state S;

/* epoll tags: kind in the top byte, proc slot below. */
enum { TAG_IN = 1, TAG_OUT1 = 2, TAG_SIG = 3, TAG_POUT = 4, TAG_PERR = 5, TAG_PIN = 6, TAG_NETNS = 7 };
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
/* Pump the stdin of every process that got frames in the last batch (one write + one ack each). */
void sv_flush_stdin(void);
struct proc *sv_proc_by_handle(uint32_t handle);
struct proc *sv_add_proc(uint32_t handle, pid_t pid, struct ctr *c, const int parent_fds[3]);
void sv_on_request(uint32_t handle, const char *raw, size_t len);

/* Network namespaces for the pool, made by a helper process (serve-netns.c). */
int sv_netns_helper_start(struct jl_err *err);
void sv_netns_request(void);
void sv_netns_on_readable(void);
void sv_netns_helper_stop(void);

/* Graveyard of finished containers' cgroups, removed at idle moments (serve-grave.c). */
void sv_grave_add(struct jl_cgroup *cg);       /* takes over cg */
size_t sv_grave_count(void);
uint64_t sv_grave_due_us(void);                /* next attempt due; UINT64_MAX when empty */
void sv_grave_work(void);                      /* one due removal attempt */
/* v1: rename a grave called `name` out of the way so a new container can take the name. */
int sv_grave_release_name(const char *name, struct jl_err *err);
void sv_grave_drain(void);                     /* shutdown: remove all, waiting as needed */

#endif
