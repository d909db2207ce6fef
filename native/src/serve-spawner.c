/* Spawners: pre-forked, pre-attached processes that clone containers for the server (jl-serve.h). */
#include "jl-serve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define MAX_MSG (4u << 20)
enum { SP_SOCK = 3, SP_HOSTNET = 4 };

struct reply { int32_t ok; int32_t pid; struct jl_err err; };

struct helper_state { int pidfd; int ns_all; };

static int recv_request(char **buf, size_t *len, int fds[3]) {
  ssize_t n = recv(SP_SOCK, NULL, 0, MSG_PEEK | MSG_TRUNC);
  if (n <= 0) return -1;
  *buf = realloc(*buf, (size_t)n + 1);
  char cbuf[CMSG_SPACE(3 * sizeof(int))];
  struct iovec iov = {*buf, (size_t)n};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  n = recvmsg(SP_SOCK, &mh, MSG_CMSG_CLOEXEC);
  if (n <= 0) return -1;
  (*buf)[n] = 0;
  *len = (size_t)n;
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  memcpy(fds, CMSG_DATA(c), 3 * sizeof(int));
  return 0;
}

static int do_boot(json_t *req, const int fds[3], struct helper_state *h, pid_t *pid, struct jl_err *err) {
  struct jl_config cfg;
  json_t *ovj = json_object_get(req, "rootfsOverlay");
  const char *bundle = json_string_value(json_object_get(req, "bundle"));
  int r = jl_config_parse(json_object_get(req, "config"), bundle, &cfg, err);
  const char *lower[4096];
  struct jl_overlay ov = {.lower = lower};
  if (r == 0 && json_is_object(ovj)) {
    json_t *l = json_object_get(ovj, "lower");
    for (size_t i = 0; i < json_array_size(l) && i < 4096; i++) lower[ov.nlower++] = json_string_value(json_array_get(l, i));
    ov.upper = json_string_value(json_object_get(ovj, "upper"));
    ov.work = json_string_value(json_object_get(ovj, "work"));
    ov.cwd = json_string_value(json_object_get(ovj, "cwd"));
  }
  bool own_net = (cfg.ns_flags & CLONE_NEWNET) != 0;
  struct jl_spawn s = {.cfg = &cfg, .stdio = {fds[0], fds[1], fds[2]}, .join_pidfd = -1,
                       .overlay = json_is_object(ovj) ? &ov : NULL, .extra_clone_flags = CLONE_PARENT,
                       .netns_ready = own_net, .die_with_parent = true,
                       /* no network namespace asked for: the container shares the host's */
                       .netns_fd = own_net || cfg.ns_path[JL_NS_NET] ? -1 : SP_HOSTNET};
  if (r == 0) r = jl_spawn(&s, pid, err);
  if (r == 0) {
    h->pidfd = (int)syscall(SYS_pidfd_open, *pid, 0);
    h->ns_all = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP;
  }
  jl_config_free(&cfg);
  return r;
}

static int do_exec(json_t *req, const int fds[3], struct helper_state *h, pid_t *pid, struct jl_err *err) {
  if (h->pidfd < 0) return jl_fail(err, "failed_precondition", "exec before boot");
  struct jl_process p;
  int r = jl_process_parse(json_object_get(req, "process"), "process", &p, err);
  struct jl_spawn s = {.proc = &p, .stdio = {fds[0], fds[1], fds[2]}, .netns_fd = -1, .join_pidfd = h->pidfd,
                       .join_flags = h->ns_all, .extra_clone_flags = CLONE_PARENT, .die_with_parent = true};
  if (r == 0) r = jl_spawn(&s, pid, err);
  jl_process_free(&p);
  return r;
}

static void handle(char *buf, size_t len, const int fds[3], struct helper_state *h) {
  struct reply rep = {0};
  json_error_t je;
  json_t *req = json_loadb(buf + 1, len - 1, 0, &je);
  pid_t pid = 0;
  int r = !req ? jl_fail(&rep.err, "invalid_argument", "request: %s", je.text)
        : buf[0] == 'B' ? do_boot(req, fds, h, &pid, &rep.err)
        : do_exec(req, fds, h, &pid, &rep.err);
  json_decref(req);
  for (int i = 0; i < 3; i++) close(fds[i]);
  rep.ok = r == 0;
  rep.pid = pid;
  if (send(SP_SOCK, &rep, sizeof rep, MSG_NOSIGNAL) < 0) _exit(1);
}

static void spawner_main(int sock, int hostnet, const int *cgfds, int ncg, pid_t server) {
  struct jl_err err;
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() != server) _exit(1);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  /* Join the cgroup now, off the boot path (the expensive part, see jl-serve.h). */
  for (int i = 0; i < ncg; i++) if (write(cgfds[i], "0", 1) < 0) _exit(2);
  if (unshare(CLONE_NEWNET) < 0 || jl_loopback_up(&err) < 0) _exit(3);
  /* Hold nothing of the server's: a copy of a container's stdin pipe or of the server's stdout
   * would keep EOFs from happening. */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  int hs = fcntl(sock, F_DUPFD_CLOEXEC, 100), hn = fcntl(hostnet, F_DUPFD_CLOEXEC, 100);
  /* dup3 with O_CLOEXEC: containers cloned from here must not inherit these across exec. */
  if (hs < 0 || hn < 0 || dup3(hs, SP_SOCK, O_CLOEXEC) < 0 || dup3(hn, SP_HOSTNET, O_CLOEXEC) < 0 || null < 0) _exit(4);
  dup2(null, 0);
  dup2(null, 1);
  syscall(SYS_close_range, SP_HOSTNET + 1, ~0U, 0);
  struct helper_state h = {.pidfd = -1};
  char *buf = NULL;
  size_t len;
  int fds[3];
  while (recv_request(&buf, &len, fds) == 0) handle(buf, len, fds, &h);
  _exit(0);
}

int jl_spawner_create(struct jl_spawner *sp, enum jl_cg_mode mode, unsigned seq, int hostnet_fd, struct jl_err *err) {
  char name[64];
  pid_t server = getpid();
  memset(sp, 0, sizeof *sp);
  snprintf(name, sizeof name, ".pool-%d-%u", server, seq);
  if (jl_cg_create(&sp->cg, mode, name, err) < 0) return -1;
  int fds[JL_CG_MAXH], ncg = 0, sv[2];
  if (jl_cg_procs_fds(&sp->cg, fds, &ncg, err) < 0) goto fail_cg;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) { jl_syserr(err, "socketpair"); goto fail_fds; }
  int sndbuf = (int)MAX_MSG;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  sp->pid = fork();
  if (sp->pid == 0) spawner_main(sv[1], hostnet_fd, fds, ncg, server);
  close(sv[1]);
  for (int i = 0; i < ncg; i++) close(fds[i]);
  if (sp->pid < 0) { close(sv[0]); jl_syserr(err, "fork spawner"); goto fail_cg; }
  sp->sock = sv[0];
  return 0;
fail_fds:
  for (int i = 0; i < ncg; i++) close(fds[i]);
fail_cg:
  jl_cg_destroy(&sp->cg, &(struct jl_err){0});
  return -1;
}

int jl_spawner_request(struct jl_spawner *sp, char kind, const char *json, size_t len, const int stdio[3], pid_t *pid, struct jl_err *err) {
  if (len + 1 > MAX_MSG) return jl_fail(err, "payload_too_large", "request of %zu bytes exceeds %u", len, MAX_MSG);
  char *msg = malloc(len + 1);
  if (!msg) return jl_syserr(err, "malloc");
  msg[0] = kind;
  memcpy(msg + 1, json, len);
  char cbuf[CMSG_SPACE(3 * sizeof(int))] = {0};
  struct iovec iov = {msg, len + 1};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(3 * sizeof(int));
  memcpy(CMSG_DATA(c), stdio, 3 * sizeof(int));
  ssize_t n = sendmsg(sp->sock, &mh, MSG_NOSIGNAL);
  free(msg);
  if (n < 0) return jl_syserr(err, "send to spawner %d", sp->pid);
  struct reply rep;
  do n = recv(sp->sock, &rep, sizeof rep, 0); while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof rep) return jl_fail(err, "internal", "spawner %d died while handling a request", sp->pid);
  if (!rep.ok) {
    *err = rep.err;
    return -1;
  }
  *pid = rep.pid;
  return 0;
}

void jl_spawner_stop(struct jl_spawner *sp) {
  if (sp->sock >= 0) close(sp->sock);
  sp->sock = -1;
  if (sp->pid > 0 && !sp->reaped) {
    kill(sp->pid, SIGKILL);
    waitpid(sp->pid, NULL, 0);
    sp->reaped = true;
  }
}

void jl_spawner_cleanup_stale(enum jl_cg_mode mode) {
  const char *dirs[] = {"/sys/fs/cgroup/memory/jiffy", "/sys/fs/cgroup/unified/jiffy", "/sys/fs/cgroup/jiffy"};
  DIR *d = opendir(dirs[mode == JL_CG_V2 ? 2 : 0]);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    int pid;
    if (sscanf(e->d_name, ".pool-%d-", &pid) != 1 || pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH) continue;
    struct jl_cgroup cg;
    if (jl_cg_open(&cg, mode, e->d_name, &(struct jl_err){0}) == 0) {
      jl_cg_kill_all(&cg);
      jl_cg_destroy(&cg, &(struct jl_err){0});
    }
  }
  closedir(d);
}
