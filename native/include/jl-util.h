/* Small helpers shared by the whole launcher: error struct, cleanup attributes, file I/O.
 *
 * Error convention (crun style): every fallible function returns a negative int and fills the
 * `struct jl_err *err` passed last. Callers add context with jl_err_wrap(); only main() (or the
 * server's reply path) prints. `code` is the stable Jiffy error code that crosses into TypeScript.
 */
#ifndef JL_UTIL_H
#define JL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/types.h>

struct jl_err {
  int errnum;        /* errno of the failing syscall, 0 when not a syscall failure */
  const char *code;  /* Jiffy error code: invalid_argument, not_found, ... (static string) */
  char msg[1024];
};

/* Fill err from errno: "<what>: strerror". Returns -1. */
int jl_syserr(struct jl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fill err with a code and no errno. Returns -1. */
int jl_fail(struct jl_err *err, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefix context: "<ctx>: <previous message>". Returns -1. */
int jl_err_wrap(struct jl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Error code derived from an errno when the failing site did not pick one. */
const char *jl_code_for_errno(int e);

static inline void jl_closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void jl_freep(void *p) { free(*(void **)p); }
#define cleanup_fd __attribute__((cleanup(jl_closep)))
#define cleanup_free __attribute__((cleanup(jl_freep)))

/* Write a whole string to dirfd/name (O_WRONLY|O_TRUNC). */
int jl_write_file_at(int dirfd, const char *name, const char *data, struct jl_err *err);
/* Read up to size-1 bytes of dirfd/name, NUL terminated; returns length. */
ssize_t jl_read_file_at(int dirfd, const char *name, char *buf, size_t size, struct jl_err *err);
/* Read one unsigned integer file (e.g. memory.max_usage_in_bytes); "max" reads as UINT64_MAX. */
int jl_read_u64_at(int dirfd, const char *name, uint64_t *out, struct jl_err *err);
/* Find "key N" in a flat keyed file (memory.events, cpu.stat, memory.oom_control). */
int jl_read_keyed_u64_at(int dirfd, const char *name, const char *key, uint64_t *out, struct jl_err *err);
/* Write all of buf to fd, retrying on EINTR/short writes (blocking fds only). */
int jl_write_all(int fd, const void *buf, size_t len);
/* mkdir -p (host paths, mode 0755). */
int jl_mkdir_p(const char *path, struct jl_err *err);
/* Signal name/number parsing: "TERM", "SIGTERM", "15". Returns -1 when unknown. */
int jl_parse_signal(const char *s);
const char *jl_signal_name(int sig);
/* Monotonic microseconds. */
uint64_t jl_now_us(void);

#endif
