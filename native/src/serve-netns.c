/* Fork-server: pooled network namespaces made by a helper process, off the event loop.
 *
 * Creating a network namespace (unshare + lo up) costs 0.3 ms on a quiet host and several ms on a
 * loaded one (the kernel registers sysctls and devices for it). Made inline at idle moments, that
 * stalled every stdio frame that arrived meanwhile. So a helper forked at startup makes them: the
 * server writes one byte per namespace wanted on a seqpacket socket, the helper answers each with
 * the namespace's fd (SCM_RIGHTS) or an error. The server stays single-threaded; the helper dies
 * with it (parent-death signal) or when the socket closes. If the helper is gone, the pool falls
 * back to making namespaces inline (serve.c).
 */
#include "serve-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

struct netns_reply { int errnum; char msg[sizeof(((struct jl_err *)0)->msg)]; };

static void send_reply(int sock, int fd, const struct jl_err *err) {
  struct netns_reply r = {0};
  struct iovec iov = {&r, sizeof r};
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd < 0) {
    r.errnum = err->errnum ? err->errnum : EIO;
    snprintf(r.msg, sizeof r.msg, "%s", err->msg);
  } else {
    m.msg_control = u.buf;
    m.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (sendmsg(sock, &m, MSG_NOSIGNAL) < 0) _exit(0);  /* the server is gone */
}

static void helper_main(int sock, int hostnet) {
  char b;
  while (read(sock, &b, 1) == 1) {
    struct jl_err err = {0};
    int fd = -1;
    if (jl_pool_netns_create(hostnet, &fd, &err) < 0) fd = -1;
    send_reply(sock, fd, &err);
    if (fd >= 0) close(fd);
  }
  _exit(0);
}

int sv_netns_helper_start(struct jl_err *err) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return jl_syserr(err, "socketpair for the netns helper");
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]);
    close(sv[1]);
    return jl_syserr(err, "fork the netns helper");
  }
  if (pid == 0) {
    close(sv[0]);
    /* Not holding the client's pipes: their EOFs must depend on the server alone. */
    int dn = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (dn >= 0) { dup2(dn, 0); dup2(dn, 1); close(dn); }
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) _exit(0);  /* the server died before the line above */
    helper_main(sv[1], S.hostnet);
  }
  close(sv[1]);
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  S.netsock = sv[0];
  S.netpid = pid;
  return 0;
}

/* Ask for namespaces until pool + outstanding requests reach the target. */
void sv_netns_request(void) {
  if (S.netsock < 0 || jl_now_us() < S.net_retry_after_us) return;
  while (S.nnetpool + S.netreq < POOL_TARGET) {
    if (write(S.netsock, "n", 1) != 1) {  /* EPIPE: the read side notices; else try again soon */
      S.net_retry_after_us = jl_now_us() + 10000;
      return;
    }
    S.netreq++;
  }
}

static void helper_gone(void) {
  fprintf(stderr, "jiffy-launch serve: the netns helper is gone; making network namespaces inline\n");
  epoll_ctl(S.ep, EPOLL_CTL_DEL, S.netsock, NULL);
  close(S.netsock);
  S.netsock = -1;
  S.netreq = 0;
}

void sv_netns_on_readable(void) {
  for (;;) {
    struct netns_reply r;
    struct iovec iov = {&r, sizeof r};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    /* CLOEXEC at once: a namespace fd must never leak into a container's exec. */
    ssize_t n = recvmsg(S.netsock, &m, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { helper_gone(); return; }
    if (S.netreq > 0) S.netreq--;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    int fd = -1;
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof fd);
    if (fd < 0) {
      fprintf(stderr, "jiffy-launch serve: pre-creating a network namespace: %s (retrying in 1 s)\n", r.msg);
      S.net_retry_after_us = jl_now_us() + 1000000;
    } else if (S.nnetpool < POOL_TARGET) {
      S.netpool[S.nnetpool++] = fd;
    } else {
      close(fd);
    }
  }
}

/* Shutdown: the helper is gone when this returns (leak checks look for it right after). */
void sv_netns_helper_stop(void) {
  if (S.netsock >= 0) close(S.netsock);
  S.netsock = -1;
  if (S.netpid > 0 && kill(S.netpid, SIGKILL) == 0) waitpid(S.netpid, NULL, 0);
  S.netpid = 0;
}
