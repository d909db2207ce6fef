/* CLI container state: <root>/<id>/state.json (written temp-then-rename) and <root>/<id>/exec.fifo
 * while the container is created but not started. Liveness is checked against the recorded start
 * time so a recycled pid is never mistaken for the container. */
#include "jl-cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int jl_check_id(const char *id, struct jl_err *err) {
  size_t n = strlen(id);
  if (n == 0 || n > 128) return jl_fail(err, "invalid_argument", "container id must be 1-128 characters");
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-_.", *p)))
      return jl_fail(err, "invalid_argument", "container id %s: only letters, digits, '-', '_' and '.' are allowed", id);
  if (id[0] == '.') return jl_fail(err, "invalid_argument", "container id %s must not start with '.'", id);
  return 0;
}

int jl_state_dir(const char *root, const char *id, char *out, size_t size, struct jl_err *err) {
  if (jl_check_id(id, err) < 0) return -1;
  if (snprintf(out, size, "%s/%s", root, id) >= (int)size) return jl_fail(err, "invalid_argument", "state path too long");
  return 0;
}

unsigned long long jl_proc_start_time(pid_t pid) {
  char path[64], buf[1024];
  struct jl_err ignore;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if (jl_read_file_at(AT_FDCWD, path, buf, sizeof buf, &ignore) < 0) return 0;
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  /* Field 3 is the state; a zombie has exited already. Field 22 is the start time. */
  if (p[2] == 'Z' || p[2] == 'X') return 0;
  for (int field = 2; p && field < 22; field++) p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

int jl_state_write(const char *root, const struct jl_state *st, struct jl_err *err) {
  char dir[PATH_MAX], tmp[PATH_MAX + 16], path[PATH_MAX + 16];
  if (jl_state_dir(root, st->id, dir, sizeof dir, err) < 0) return -1;
  snprintf(tmp, sizeof tmp, "%s/.state.tmp", dir);
  snprintf(path, sizeof path, "%s/state.json", dir);
  json_t *j = json_pack("{s:s, s:i, s:I, s:s, s:i, s:O?}", "id", st->id, "pid", (int)st->pid,
                        "start_time", (json_int_t)st->start_time, "bundle", st->bundle, "ns_flags", st->ns_flags,
                        "annotations", st->annotations);
  if (!j) return jl_fail(err, "internal", "encode state of %s", st->id);
  int r = json_dump_file(j, tmp, JSON_COMPACT);
  json_decref(j);
  if (r < 0 || rename(tmp, path) < 0) return jl_syserr(err, "write %s", path);
  return 0;
}

int jl_state_read(const char *root, const char *id, struct jl_state *st, struct jl_err *err) {
  char dir[PATH_MAX], path[PATH_MAX + 16];
  memset(st, 0, sizeof *st);
  if (jl_state_dir(root, id, dir, sizeof dir, err) < 0) return -1;
  snprintf(path, sizeof path, "%s/state.json", dir);
  json_error_t je;
  json_t *j = json_load_file(path, 0, &je);
  if (!j) return jl_fail(err, "not_found", "container %s does not exist (no %s)", id, path);
  int pid = 0, flags = 0;
  json_int_t start = 0;
  const char *bundle = "";
  json_t *ann = NULL;
  if (json_unpack(j, "{s:i, s:I, s:s, s:i, s?o}", "pid", &pid, "start_time", &start, "bundle", &bundle,
                  "ns_flags", &flags, "annotations", &ann) < 0) {
    json_decref(j);
    return jl_fail(err, "data_loss", "%s is corrupt", path);
  }
  snprintf(st->id, sizeof st->id, "%s", id);
  snprintf(st->bundle, sizeof st->bundle, "%s", bundle);
  st->pid = pid;
  st->start_time = (unsigned long long)start;
  st->ns_flags = flags;
  st->annotations = json_is_object(ann) ? json_incref(ann) : NULL;
  json_decref(j);
  snprintf(path, sizeof path, "%s/exec.fifo", dir);
  st->created = access(path, F_OK) == 0;
  return 0;
}

const char *jl_state_status(const struct jl_state *st) {
  if (st->pid <= 0 || jl_proc_start_time(st->pid) != st->start_time) return "stopped";
  return st->created ? "created" : "running";
}

int jl_state_remove(const char *root, const char *id, struct jl_err *err) {
  char dir[PATH_MAX], path[PATH_MAX + 32];
  if (jl_state_dir(root, id, dir, sizeof dir, err) < 0) return -1;
  static const char *const files[] = {"state.json", "exec.fifo", ".state.tmp"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  if (rmdir(dir) < 0 && errno != ENOENT) return jl_syserr(err, "rmdir %s", dir);
  return 0;
}
