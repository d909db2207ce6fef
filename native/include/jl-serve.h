/* Fork-server internals (serve*.c). See the protocol description at the top of serve.c. */
#ifndef JL_SERVE_H
#define JL_SERVE_H

#include "jl-cli.h"

/* A spawner is a process forked from the server ahead of time (when the server is idle). It has
 * already paid for the two expensive steps that cannot be done from the boot path cheaply:
 *   - joining its cgroup: on cgroup v1 an attach takes cgroup_threadgroup_rwsem for writing, a
 *     percpu rwsem whose writer waits for an RCU grace period once the lock has gone idle —
 *     measured 5-15 ms here, more than everything else in a boot together. Processes cloned by
 *     the spawner are born in the cgroup instead (fork takes only the read side).
 *   - creating a network namespace (and bringing lo up). Each netns serves one container and dies
 *     with it: a used netns is never handed to another container, because nothing proves that
 *     its state (routes, sockets in TIME_WAIT, sysctls, interfaces) was fully reset.
 * On `boot` it clones the container init with CLONE_PARENT, so the init is the server's child
 * (the server reaps it and gets its status); the spawner then stays in the container's cgroup as
 * its exec helper, cloning exec'd processes the same way, until the container is gone. */
struct jl_spawner {
  pid_t pid;
  int sock;                 /* SOCK_SEQPACKET to the spawner */
  struct jl_cgroup cg;      /* jiffy/.pool-<server pid>-<n> until renamed to the container id (v1) */
  bool reaped;
};

int jl_spawner_create(struct jl_spawner *sp, enum jl_cg_mode mode, unsigned seq, int hostnet_fd, struct jl_err *err);
/* Ask the spawner to boot (kind 'B', json {config,bundle,rootfsOverlay}) or exec (kind 'E',
 * json {process}); stdio are the three fds the new process gets. Blocks for the reply. */
int jl_spawner_request(struct jl_spawner *sp, char kind, const char *json, size_t len, const int stdio[3], pid_t *pid, struct jl_err *err);
/* Stop the spawner (SIGKILL + reap unless already reaped); keeps the cgroup. */
void jl_spawner_stop(struct jl_spawner *sp);
/* Remove jiffy/.pool-<pid>-* cgroups left by servers that are no longer running. */
void jl_spawner_cleanup_stale(enum jl_cg_mode mode);


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
