/* One-shot host-namespace helpers for the CLI (no server needed):
 *   mount-overlay --lower A:B [--lower C] [--upper U --work W] [--cwd DIR] [--readonly] TARGET
 *   umount [--detach] TARGET
 *   pause ID / resume ID   (cgroup freezer of jiffy/ID) */
#include "jl-cli.h"

#include <stdio.h>
#include <string.h>

int jl_cmd_mount_overlay(int argc, char **argv, struct jl_err *err) {
  const char *lower[512];
  char *owned[64];
  size_t nowned = 0;
  struct jl_overlay ov = {.lower = lower};
  const char *target = NULL;
  int ret = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    bool has_val = i + 1 < argc;
    if (strcmp(a, "--lower") == 0 && has_val && nowned < 64) {
      char *dup = owned[nowned++] = strdup(argv[++i]);
      for (char *tok = strtok(dup, ":"); tok; tok = strtok(NULL, ":"))
        if (ov.nlower < 512) lower[ov.nlower++] = tok;
    } else if (strcmp(a, "--upper") == 0 && has_val) ov.upper = argv[++i];
    else if (strcmp(a, "--work") == 0 && has_val) ov.work = argv[++i];
    else if (strcmp(a, "--cwd") == 0 && has_val) ov.cwd = argv[++i];
    else if (strcmp(a, "--readonly") == 0) ov.readonly = true;
    else if (a[0] != '-' && !target) target = a;
    else { jl_fail(err, "invalid_argument", "mount-overlay: unexpected argument %s", a); goto out; }
  }
  if (!target) jl_fail(err, "invalid_argument", "usage: jiffy-launch mount-overlay --lower A:B [--upper U --work W] [--cwd DIR] [--readonly] TARGET");
  else ret = jl_overlay_mount(&ov, target, err);
out:
  for (size_t i = 0; i < nowned; i++) free(owned[i]);
  return ret;
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
