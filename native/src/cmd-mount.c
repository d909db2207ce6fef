/* One-shot host-namespace helpers for the CLI (no server needed):
 *   mount-overlay --lower A:B [--lower C] [--upper U --work W] [--cwd DIR] [--readonly] TARGET
 *   umount [--detach] TARGET
 *   pause ID / resume ID   (cgroup freezer of jiffy/ID) */
#include "jl-cli.h"

#include <stdio.h>
#include <string.h>

struct overlay_args {
  const char *lower[512];
  char *owned[64]; size_t nowned;
};

static void overlay_args_free(struct overlay_args *a) {
  for (size_t i = 0; i < a->nowned; i++) free(a->owned[i]);
}

/* Each --lower may hold several layers separated by ':' (topmost first, as in lowerdir=). */
static int add_lowers(struct overlay_args *a, struct jl_overlay *ov, const char *v, struct jl_err *err) {
  if (a->nowned >= 64) return jl_fail(err, "invalid_argument", "mount-overlay: too many --lower options");
  char *dup = a->owned[a->nowned++] = strdup(v);
  for (char *tok = strtok(dup, ":"); tok; tok = strtok(NULL, ":")) {
    if (ov->nlower >= 512) return jl_fail(err, "invalid_argument", "mount-overlay: more than 512 layers");
    a->lower[ov->nlower++] = tok;
  }
  return 0;
}

static int parse_overlay_args(int argc, char **argv, struct overlay_args *a, struct jl_overlay *ov, const char **target,
                              struct jl_err *err) {
  for (int i = 0; i < argc; i++) {
    const char *o = argv[i];
    bool has_val = i + 1 < argc;
    if (strcmp(o, "--lower") == 0 && has_val) {
      if (add_lowers(a, ov, argv[++i], err) < 0) return -1;
    } else if (strcmp(o, "--upper") == 0 && has_val) ov->upper = argv[++i];
    else if (strcmp(o, "--work") == 0 && has_val) ov->work = argv[++i];
    else if (strcmp(o, "--cwd") == 0 && has_val) ov->cwd = argv[++i];
    else if (strcmp(o, "--readonly") == 0) ov->readonly = true;
    else if (o[0] != '-' && !*target) *target = o;
    else return jl_fail(err, "invalid_argument", "mount-overlay: unexpected argument %s", o);
  }
  if (!*target)
    return jl_fail(err, "invalid_argument", "usage: jiffy-launch mount-overlay --lower A:B [--upper U --work W] [--cwd DIR] [--readonly] TARGET");
  return 0;
}

int jl_cmd_mount_overlay(int argc, char **argv, struct jl_err *err) {
  struct overlay_args a = {0};
  struct jl_overlay ov = {.lower = a.lower};
  const char *target = NULL;
  int r = parse_overlay_args(argc, argv, &a, &ov, &target, err);
  if (r == 0) r = jl_overlay_mount(&ov, target, err);
  overlay_args_free(&a);
  return r;
}

int jl_cmd_umount(int argc, char **argv, struct jl_err *err) {
  bool detach = false;
  const char *target = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--detach") == 0 || strcmp(argv[i], "-l") == 0) detach = true;
    else if (argv[i][0] != '-' && !target) target = argv[i];
    else return jl_fail(err, "invalid_argument", "umount: unexpected argument %s", argv[i]);
  }
  if (!target) return jl_fail(err, "invalid_argument", "usage: jiffy-launch umount [--detach] TARGET");
  return jl_umount(target, detach, err);
}

int jl_cmd_freeze(struct jl_cli *c, bool frozen, struct jl_err *err) {
  if (c->argc != 1) return jl_fail(err, "invalid_argument", "usage: jiffy-launch %s ID", frozen ? "pause" : "resume");
  if (jl_check_id(c->argv[0], err) < 0) return -1;
  enum jl_cg_mode mode;
  struct jl_cgroup cg;
  if (jl_cg_detect(&mode, err) < 0) return -1;
  if (jl_cg_open(&cg, mode, c->argv[0], err) < 0) return jl_fail(err, "not_found", "container %s has no cgroup (is it running?)", c->argv[0]);
  int r = jl_cg_freeze(&cg, frozen, err);
  jl_cg_close(&cg);
  return r;
}
