/* Fork-server internals (serve*.c). See the protocol description at the top of serve.c. */
#ifndef JL_SERVE_H
#define JL_SERVE_H

#include "jl-cli.h"

/* Pools (serve-pool.c): what a boot needs that can be made before the boot request arrives.
 *   - cgroups: jiffy/.pool-<server pid>-<n> in every hierarchy with their join files already
 *     open; a boot renames one to jiffy/<id> (v1; cgroup2 has no rename, so there it keeps its
 *     pool name) and writes the limits. A used cgroup is removed, never recycled: memcg keeps
 *     page-cache charges and counters (oom_kill, max_usage) from its previous tenant.
 *   - network namespaces with lo up (made by a helper process, serve-netns.c). A netns serves one container and is never handed to
 *     another, because nothing proves that its state (routes, sockets in TIME_WAIT, sysctls,
 *     interfaces) was reset: the pool holds only fresh ones, and our fd is closed right after
 *     the container joined, so the netns dies with the container. */
struct jl_pooled_cg {
  struct jl_cgroup cg;
  int fds[JL_CG_MAXH]; int nfds;   /* join files (tasks / cgroup.procs) */
};

int jl_pool_cg_create(struct jl_pooled_cg *p, enum jl_cg_mode mode, unsigned seq, struct jl_err *err);
void jl_pool_cg_close_fds(struct jl_pooled_cg *p);
/* Kill what is left in it, remove it, close everything. */
void jl_pool_cg_discard(struct jl_pooled_cg *p);
/* A fresh network namespace with lo up; the caller stays in (returns to) hostnet. */
int jl_pool_netns_create(int hostnet, int *fd, struct jl_err *err);
/* Remove jiffy/.pool-<pid>-* cgroups left by servers that are no longer running. */
void jl_pool_cleanup_stale(enum jl_cg_mode mode);

/* ---- frames (serve-io.c) ---- */
enum {
  JL_F_REQUEST = 0x01, JL_F_STDIN = 0x02, JL_F_PAUSE_OUT = 0x03, JL_F_RESUME_OUT = 0x04,
  JL_F_REPLY = 0x81, JL_F_STDOUT = 0x82, JL_F_STDERR = 0x83, JL_F_EXIT = 0x84, JL_F_STDIN_ACK = 0x85,
};
#define JL_FRAME_HDR 9u               /* u32 length, u8 type, u32 handle */
#define JL_FRAME_MAX (64u << 20)

struct jl_buf { char *data; size_t len, off, cap; };

/* Queue one frame for the client (stdout). */
void jl_out_frame(uint8_t type, uint32_t handle, const void *payload, size_t n);
void jl_out_json(uint8_t type, uint32_t handle, json_t *j);     /* steals j */
void jl_out_error(uint32_t handle, const struct jl_err *err);
/* Write what the client pipe takes; returns bytes still queued. */
size_t jl_out_flush(void);
size_t jl_out_pending(void);
void jl_out_flush_blocking(void);
int jl_buf_append(struct jl_buf *b, const void *p, size_t n);
void jl_buf_consume(struct jl_buf *b, size_t n);

#endif
