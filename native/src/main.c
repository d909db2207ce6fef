/* jiffy-launch: OCI runtime command line plus the fork-server (`serve`).
 *
 *   jiffy-launch [--root DIR] [--log-format text|json] COMMAND ...
 *     run [--bundle DIR] [--pid-file F] [--report F] ID   foreground; exit code = container's (128+N on signal N)
 *     create [--bundle DIR] [--pid-file F] ID             init waits on exec.fifo until start
 *     start ID | state ID | kill ID [SIGNAL] | delete [--force] ID
 *     pause ID | resume ID                                cgroup freezer
 *     mount-overlay ... TARGET | umount [--detach] TARGET host mount namespace
 *     serve                                               fork-server on stdin/stdout (serve.c)
 *
 * Only this file prints errors: one line "jiffy-launch: <message>", or with --log-format json one
 * JSON line {"error":{"code","message","errno"}} for callers that map codes (the TS binding).
 */
#include "jl-cli.h"

#include <stdio.h>
#include <string.h>

static int usage(struct jl_err *err) {
  return jl_fail(err, "invalid_argument",
                 "usage: jiffy-launch [--root DIR] run|create|start|state|kill|delete|pause|resume|mount-overlay|umount|serve ... "
                 "(see native/src/main.c)");
}

static void print_error(const struct jl_cli *c, const struct jl_err *err) {
  if (!c->json_errors) {
    fprintf(stderr, "jiffy-launch: %s\n", err->msg);
    return;
  }
  json_t *j = json_pack("{s:{s:s, s:s, s:i}}", "error", "code", err->code ? err->code : "internal", "message", err->msg,
                        "errno", err->errnum);
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  fprintf(stderr, "%s\n", s ? s : err->msg);
  free(s);
  json_decref(j);
}

/* Command options may come before or after the id, as with runc. */
static int parse_cmd_args(struct jl_cli *c, int argc, char **argv, struct jl_err *err) {
  c->argv = calloc((size_t)argc + 1, sizeof *c->argv);
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    bool val = i + 1 < argc;
    if ((strcmp(a, "--bundle") == 0 || strcmp(a, "-b") == 0) && val) c->bundle = argv[++i];
    else if (strncmp(a, "--bundle=", 9) == 0) c->bundle = a + 9;
    else if (strcmp(a, "--pid-file") == 0 && val) c->pid_file = argv[++i];
    else if (strncmp(a, "--pid-file=", 11) == 0) c->pid_file = a + 11;
    else if (strcmp(a, "--report") == 0 && val) c->report = argv[++i];
    else if (strcmp(a, "--force") == 0 || strcmp(a, "-f") == 0) c->force = true;
    else if (strcmp(a, "--no-new-keyring") == 0 || strcmp(a, "--no-pivot") == 0) continue;
    else if (strcmp(a, "--detach") == 0 || strcmp(a, "-d") == 0)
      return jl_fail(err, "invalid_argument", "run --detach is not supported: use create + start");
    else if (strcmp(a, "--console-socket") == 0) return jl_fail(err, "invalid_argument", "terminals are not supported");
    else if (a[0] == '-' && a[1] == '-') return jl_fail(err, "invalid_argument", "unknown option %s", a);
    else c->argv[c->argc++] = argv[i];
  }
  return 0;
}

static int dispatch(struct jl_cli *c, const char *cmd, int argc, char **argv, struct jl_err *err) {
  if (strcmp(cmd, "mount-overlay") == 0) return jl_cmd_mount_overlay(argc, argv, err);
  if (strcmp(cmd, "umount") == 0) return jl_cmd_umount(argc, argv, err);
  if (parse_cmd_args(c, argc, argv, err) < 0) return -1;
  if (strcmp(cmd, "run") == 0) return jl_cmd_run(c, err);
  if (strcmp(cmd, "create") == 0) return jl_cmd_create(c, err);
  if (strcmp(cmd, "start") == 0) return jl_cmd_start(c, err);
  if (strcmp(cmd, "state") == 0) return jl_cmd_state(c, err);
  if (strcmp(cmd, "kill") == 0) return jl_cmd_kill(c, err);
  if (strcmp(cmd, "delete") == 0) return jl_cmd_delete(c, err);
  if (strcmp(cmd, "pause") == 0) return jl_cmd_freeze(c, true, err);
  if (strcmp(cmd, "resume") == 0) return jl_cmd_freeze(c, false, err);
  if (strcmp(cmd, "serve") == 0) return jl_cmd_serve(c, err);
  return jl_fail(err, "invalid_argument", "unknown command %s", cmd);
}

int main(int argc, char **argv) {
  struct jl_cli c = {.root = JL_DEFAULT_ROOT};
  struct jl_err err = {0};
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    bool val = i + 1 < argc;
    if (strcmp(a, "--version") == 0 || strcmp(a, "-v") == 0) {
      printf("jiffy-launch version %s\nspec: 1.0.2\n", JL_VERSION);
      return 0;
    } else if (strcmp(a, "--root") == 0 && val) c.root = argv[++i];
    else if (strncmp(a, "--root=", 7) == 0) c.root = a + 7;
    else if (strcmp(a, "--log-format") == 0 && val) c.json_errors = strcmp(argv[++i], "json") == 0;
    else if (strcmp(a, "--log") == 0 && val) i++;  /* accepted for runc compatibility; errors go to stderr */
    else if (strcmp(a, "--debug") == 0 || strcmp(a, "--systemd-cgroup") == 0) continue;
    else { jl_fail(&err, "invalid_argument", "unknown global option %s", a); print_error(&c, &err); return 2; }
  }
  if (i >= argc) { usage(&err); print_error(&c, &err); return 2; }
  int r = dispatch(&c, argv[i], argc - i - 1, argv + i + 1, &err);
  free(c.argv);
  if (r < 0) {
    print_error(&c, &err);
    return 1;
  }
  return r;
}
