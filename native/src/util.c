/* Error struct helpers and small file utilities (see jl-util.h). */
#include "jl-util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

const char *jl_code_for_errno(int e) {
  switch (e) {
  case ENOENT: case ESRCH: return "not_found";
  case EEXIST: return "already_exists";
  case EINVAL: case ENAMETOOLONG: case ENOTDIR: case E2BIG: return "invalid_argument";
  case EPERM: case EACCES: return "permission_denied";
  case ENOMEM: case ENOSPC: case EAGAIN: case EMFILE: case ENFILE: return "resource_exhausted";
  case EBUSY: case ENOTEMPTY: return "failed_precondition";
  default: return "internal";
  }
}

int jl_syserr(struct jl_err *err, const char *fmt, ...) {
  int e = errno;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n < sizeof err->msg)
    snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(e));
  err->errnum = e;
  err->code = jl_code_for_errno(e);
  return -1;
}

int jl_fail(struct jl_err *err, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  err->errnum = 0;
  err->code = code;
  return -1;
}

int jl_err_wrap(struct jl_err *err, const char *fmt, ...) {
  char prev[sizeof err->msg];
  memcpy(prev, err->msg, sizeof prev);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof err->msg)
    snprintf(err->msg + n, sizeof err->msg - n, ": %s", prev);
  return -1;
}

int jl_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

int jl_write_file_at(int dirfd, const char *name, const char *data, struct jl_err *err) {
  cleanup_fd int fd = openat(dirfd, name, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return jl_syserr(err, "open %s", name);
  if (jl_write_all(fd, data, strlen(data)) < 0) return jl_syserr(err, "write %s = %s", name, data);
  return 0;
}

ssize_t jl_read_file_at(int dirfd, const char *name, char *buf, size_t size, struct jl_err *err) {
  cleanup_fd int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return jl_syserr(err, "open %s", name);
  size_t off = 0;
  while (off + 1 < size) {
    ssize_t r = read(fd, buf + off, size - 1 - off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return jl_syserr(err, "read %s", name);
    }
    if (r == 0) break;
    off += (size_t)r;
  }
  buf[off] = 0;
  return (ssize_t)off;
}

int jl_read_u64_at(int dirfd, const char *name, uint64_t *out, struct jl_err *err) {
  char buf[64];
  if (jl_read_file_at(dirfd, name, buf, sizeof buf, err) < 0) return -1;
  if (strncmp(buf, "max", 3) == 0) { *out = UINT64_MAX; return 0; }
  *out = strtoull(buf, NULL, 10);
  return 0;
}

int jl_read_keyed_u64_at(int dirfd, const char *name, const char *key, uint64_t *out, struct jl_err *err) {
  char buf[4096];
  if (jl_read_file_at(dirfd, name, buf, sizeof buf, err) < 0) return -1;
  size_t kl = strlen(key);
  for (char *line = buf; line && *line; ) {
    if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
      *out = strtoull(line + kl + 1, NULL, 10);
      return 0;
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  *out = 0;
  return 0;
}

int jl_mkdir_p(const char *path, struct jl_err *err) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return jl_fail(err, "invalid_argument", "path too long: %s", path);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == 0) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, 0755) < 0 && errno != EEXIST) return jl_syserr(err, "mkdir %s", buf);
      if (c == 0) break;
      *p = c;
    }
  }
  return 0;
}

static const struct { const char *name; int sig; } signals[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL}, {"TRAP", SIGTRAP},
  {"ABRT", SIGABRT}, {"IOT", SIGIOT}, {"BUS", SIGBUS}, {"FPE", SIGFPE}, {"KILL", SIGKILL},
  {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
  {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP},
  {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU}, {"URG", SIGURG}, {"XCPU", SIGXCPU},
  {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
  {"PWR", SIGPWR}, {"SYS", SIGSYS},
};

int jl_parse_signal(const char *s) {
  if (!s || !*s) return -1;
  char *end;
  long n = strtol(s, &end, 10);
  if (*end == 0) return (n > 0 && n < 65) ? (int)n : -1;
  if (strncasecmp(s, "SIG", 3) == 0) s += 3;
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (strcasecmp(s, signals[i].name) == 0) return signals[i].sig;
  if (strncasecmp(s, "RTMIN+", 6) == 0) {
    n = strtol(s + 6, &end, 10);
    if (*end == 0 && n >= 0 && SIGRTMIN + n <= SIGRTMAX) return SIGRTMIN + (int)n;
  }
  return -1;
}

const char *jl_signal_name(int sig) {
  static char buf[16];
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (signals[i].sig == sig && strcmp(signals[i].name, "IOT") != 0) {
      snprintf(buf, sizeof buf, "SIG%s", signals[i].name);
      return buf;
    }
  snprintf(buf, sizeof buf, "SIG%d", sig);
  return buf;
}

uint64_t jl_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
