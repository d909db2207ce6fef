/* `kill ID [SIGNAL]` (default SIGTERM), sent through a pidfd checked against the recorded start
 * time, so a recycled pid never receives it. */
#include "jl-cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

int jl_signal_container(const struct jl_state *st, int sig, struct jl_err *err) {
  cleanup_fd int pidfd = (int)syscall(SYS_pidfd_open, st->pid, 0);
  if (pidfd < 0 || jl_proc_start_time(st->pid) != st->start_time)
    return jl_fail(err, "failed_precondition", "container %s is not running", st->id);
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0) return jl_syserr(err, "kill container %s", st->id);
  return 0;
}

int jl_cmd_kill(struct jl_cli *c, struct jl_err *err) {
  if (c->argc < 1 || c->argc > 2) return jl_fail(err, "invalid_argument", "usage: jiffy-launch kill ID [SIGNAL]");
  int sig = c->argc == 2 ? jl_parse_signal(c->argv[1]) : SIGTERM;
  if (sig < 0) return jl_fail(err, "invalid_argument", "unknown signal %s", c->argv[1]);
  struct jl_state st;
  if (jl_state_read(c->root, c->argv[0], &st, err) < 0) return -1;
  json_decref(st.annotations);
  return jl_signal_container(&st, sig, err);
}
