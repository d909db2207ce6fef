/* `start ID`: release a created container's init, which waits to open exec.fifo for writing. */
#include "jl-cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

int jl_cmd_start(struct jl_cli *c, struct jl_err *err) {
  if (c->argc != 1) return jl_fail(err, "invalid_argument", "usage: jiffy-launch start ID");
  struct jl_state st;
  if (jl_state_read(c->root, c->argv[0], &st, err) < 0) return -1;
  json_decref(st.annotations);
  const char *status = jl_state_status(&st);
  if (strcmp(status, "created") != 0)
    return jl_fail(err, "failed_precondition", "container %s is %s, not created: cannot start it", st.id, status);
  char fifo[PATH_MAX + 300];
  snprintf(fifo, sizeof fifo, "%s/%s/exec.fifo", c->root, st.id);
  /* O_NONBLOCK: never hang on a dead init; poll below waits for its byte instead. */
  cleanup_fd int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return jl_syserr(err, "open %s", fifo);
  for (int waited = 0; ; waited += 10) {
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 10) > 0 && (pfd.revents & POLLIN)) break;
    if (jl_proc_start_time(st.pid) != st.start_time)
      return jl_fail(err, "failed_precondition", "container %s exited before it could start", st.id);
    if (waited > 10000) return jl_fail(err, "deadline_exceeded", "container %s did not start within 10 s", st.id);
  }
  char b;
  if (read(fd, &b, 1) != 1) return jl_syserr(err, "read %s", fifo);
  unlink(fifo);
  return 0;
}
