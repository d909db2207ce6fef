/* `delete [--force] ID`: removes a stopped (or created, or with --force any) container: its
 * processes, cgroup and state directory. */
#include "jl-cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

int jl_signal_container(const struct jl_state *st, int sig, struct jl_err *err);

int jl_cmd_delete(struct jl_cli *c, struct jl_err *err) {
  if (c->argc != 1) return jl_fail(err, "invalid_argument", "usage: jiffy-launch delete [--force] ID");
  struct jl_state st;
  if (jl_state_read(c->root, c->argv[0], &st, err) < 0) return -1;
  json_decref(st.annotations);
  const char *status = jl_state_status(&st);
  if (strcmp(status, "running") == 0 && !c->force)
    return jl_fail(err, "failed_precondition", "container %s is running: stop it first or use delete --force", st.id);
  if (strcmp(status, "stopped") != 0) {
    struct jl_err ignore;
    jl_signal_container(&st, SIGKILL, &ignore);
    for (int i = 0; i < 5000 && jl_proc_start_time(st.pid) == st.start_time; i++) usleep(1000);
  }
  enum jl_cg_mode mode;
  struct jl_cgroup cg;
  if (jl_cg_detect(&mode, err) < 0) return -1;
  if (jl_cg_open(&cg, mode, st.id, err) == 0) {
    jl_cg_kill_all(&cg);
    if (jl_cg_destroy(&cg, err) < 0) return -1;
  }
  return jl_state_remove(c->root, st.id, err);
}
