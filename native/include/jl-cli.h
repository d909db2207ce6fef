/* The OCI runtime command line: one small file per subcommand (cmd-*.c), all over the library. */
#ifndef JL_CLI_H
#define JL_CLI_H

#include "jl-container.h"

#define JL_VERSION "0.1.0"
#define JL_DEFAULT_ROOT "/run/jiffy-launch"

struct jl_cli {
  const char *root;        /* --root */
  const char *bundle;      /* --bundle (default ".") */
  const char *pid_file;    /* --pid-file */
  const char *report;      /* --report FILE: exit status JSON (run) */
  bool force;              /* delete --force */
  bool json_errors;        /* --log-format json */
  int argc; char **argv;   /* positional arguments after the subcommand */
};

int jl_cmd_run(struct jl_cli *c, struct jl_err *err);      /* returns the exit code */
int jl_cmd_create(struct jl_cli *c, struct jl_err *err);
int jl_cmd_start(struct jl_cli *c, struct jl_err *err);
int jl_cmd_state(struct jl_cli *c, struct jl_err *err);
int jl_cmd_kill(struct jl_cli *c, struct jl_err *err);
int jl_cmd_delete(struct jl_cli *c, struct jl_err *err);
int jl_cmd_mount_overlay(int argc, char **argv, struct jl_err *err);
int jl_cmd_umount(int argc, char **argv, struct jl_err *err);
int jl_cmd_freeze(struct jl_cli *c, bool frozen, struct jl_err *err);
int jl_cmd_serve(struct jl_cli *c, struct jl_err *err);

/* state.c: <root>/<id>/state.json for the CLI. */
struct jl_state {
  char id[256]; char bundle[PATH_MAX]; pid_t pid; unsigned long long start_time;
  int ns_flags; json_t *annotations; bool created; /* fifo still there: not started */
};
int jl_state_dir(const char *root, const char *id, char *out, size_t size, struct jl_err *err);
int jl_state_write(const char *root, const struct jl_state *st, struct jl_err *err);
int jl_state_read(const char *root, const char *id, struct jl_state *st, struct jl_err *err);
/* "created" | "running" | "stopped" from the recorded pid and its start time. */
const char *jl_state_status(const struct jl_state *st);
int jl_state_remove(const char *root, const char *id, struct jl_err *err);
unsigned long long jl_proc_start_time(pid_t pid);
int jl_check_id(const char *id, struct jl_err *err);

#endif
