/* config.json parsing and validation (see jl-config.h). Everything is checked here, before any
 * kernel object exists, and every message names the field. */
#include "config-priv.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

const int jl_ns_flag[JL_NS_COUNT] = {CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNS, CLONE_NEWCGROUP};
const char *const jl_ns_name[JL_NS_COUNT] = {"pid", "network", "ipc", "uts", "mount", "cgroup"};
const char *const jl_ns_proc[JL_NS_COUNT] = {"pid", "net", "ipc", "uts", "mnt", "cgroup"};


/* Typed getters: a missing field is fine (returns 0 and leaves *out), a wrong type is an error. */
int jl_cfg_get_obj(json_t *o, const char *k, const char *where, json_t **out, struct jl_err *err) {
  json_t *v = json_object_get(o, k);
  if (!v || json_is_null(v)) { *out = NULL; return 0; }
  if (!json_is_object(v)) return BAD(err, "%s%s: expected an object", where, k);
  *out = v;
  return 0;
}

int jl_cfg_get_arr(json_t *o, const char *k, const char *where, json_t **out, struct jl_err *err) {
  json_t *v = json_object_get(o, k);
  if (!v || json_is_null(v)) { *out = NULL; return 0; }
  if (!json_is_array(v)) return BAD(err, "%s%s: expected an array", where, k);
  *out = v;
  return 0;
}

int jl_cfg_get_str(json_t *o, const char *k, const char *where, const char **out, struct jl_err *err) {
  json_t *v = json_object_get(o, k);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v)) return BAD(err, "%s%s: expected a string", where, k);
  *out = json_string_value(v);
  return 0;
}

int jl_cfg_get_bool(json_t *o, const char *k, const char *where, bool *out, struct jl_err *err) {
  json_t *v = json_object_get(o, k);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_boolean(v)) return BAD(err, "%s%s: expected a boolean", where, k);
  *out = json_is_true(v);
  return 0;
}

/* Integers; `min` rejects negative limits and the like. */
int jl_cfg_get_int(json_t *o, const char *k, const char *where, int64_t min, int64_t *out, struct jl_err *err) {
  json_t *v = json_object_get(o, k);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_integer(v)) return BAD(err, "%s%s: expected an integer", where, k);
  int64_t n = json_integer_value(v);
  if (n < min) return BAD(err, "%s%s: must be >= %lld, got %lld", where, k, (long long)min, (long long)n);
  *out = n;
  return 0;
}

/* A string array into a NULL-terminated vector pointing into the json tree. */
int jl_cfg_str_array(json_t *a, const char *where, const char ***out, size_t *n, struct jl_err *err) {
  size_t len = a ? json_array_size(a) : 0;
  const char **v = calloc(len + 1, sizeof *v);
  if (!v) return jl_syserr(err, "calloc");
  for (size_t i = 0; i < len; i++) {
    json_t *s = json_array_get(a, i);
    if (!json_is_string(s)) { free(v); return BAD(err, "%s[%zu]: expected a string", where, i); }
    v[i] = json_string_value(s);
  }
  *out = v;
  if (n) *n = len;
  return 0;
}

static const char *const cap_names[] = {
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
  "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

int jl_cap_from_name(const char *name) {
  for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0]; i++)
    if (strcmp(cap_names[i], name) == 0) return (int)i;
  return -1;
}

static const struct { const char *name; int res; } rlimit_names[] = {
  {"RLIMIT_AS", RLIMIT_AS}, {"RLIMIT_CORE", RLIMIT_CORE}, {"RLIMIT_CPU", RLIMIT_CPU},
  {"RLIMIT_DATA", RLIMIT_DATA}, {"RLIMIT_FSIZE", RLIMIT_FSIZE}, {"RLIMIT_LOCKS", RLIMIT_LOCKS},
  {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
  {"RLIMIT_NOFILE", RLIMIT_NOFILE}, {"RLIMIT_NPROC", RLIMIT_NPROC}, {"RLIMIT_RSS", RLIMIT_RSS},
  {"RLIMIT_RTPRIO", RLIMIT_RTPRIO}, {"RLIMIT_RTTIME", RLIMIT_RTTIME},
  {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_STACK", RLIMIT_STACK},
};

static int parse_caps(json_t *caps, const char *where, struct jl_process *p, struct jl_err *err) {
  static const char *const sets[JL_CAP_NSETS] = {"bounding", "effective", "inheritable", "permitted", "ambient"};
  for (int s = 0; s < JL_CAP_NSETS; s++) {
    json_t *a;
    char w[128];
    snprintf(w, sizeof w, "%scapabilities.", where);
    if (jl_cfg_get_arr(caps, sets[s], w, &a, err) < 0) return -1;
    size_t i; json_t *v;
    json_array_foreach(a, i, v) {
      int c = json_is_string(v) ? jl_cap_from_name(json_string_value(v)) : -1;
      if (c < 0) return BAD(err, "%scapabilities.%s[%zu]: unknown capability %s", where, sets[s], i,
                            json_is_string(v) ? json_string_value(v) : "(not a string)");
      p->caps[s] |= 1ULL << c;
    }
  }
  return 0;
}

static int parse_rlimits(json_t *a, const char *where, struct jl_process *p, struct jl_err *err) {
  p->nrlimits = a ? json_array_size(a) : 0;
  p->rlimits = calloc(p->nrlimits + 1, sizeof *p->rlimits);
  if (!p->rlimits) return jl_syserr(err, "calloc");
  size_t i; json_t *v;
  json_array_foreach(a, i, v) {
    char w[128];
    snprintf(w, sizeof w, "%srlimits[%zu].", where, i);
    const char *type = NULL;
    int64_t soft = -1, hard = -1;
    if (!json_is_object(v)) return BAD(err, "%srlimits[%zu]: expected an object", where, i);
    if (jl_cfg_get_str(v, "type", w, &type, err) < 0 || jl_cfg_get_int(v, "soft", w, 0, &soft, err) < 0 ||
        jl_cfg_get_int(v, "hard", w, 0, &hard, err) < 0)
      return -1;
    int res = -1;
    for (size_t k = 0; type && k < sizeof rlimit_names / sizeof rlimit_names[0]; k++)
      if (strcmp(type, rlimit_names[k].name) == 0) res = rlimit_names[k].res;
    if (res < 0) return BAD(err, "%stype: unknown rlimit %s", w, type ? type : "(missing)");
    if (soft < 0 || hard < 0) return BAD(err, "%s: soft and hard are required", w);
    if (soft > hard) return BAD(err, "%ssoft: %lld exceeds hard %lld", w, (long long)soft, (long long)hard);
    p->rlimits[i] = (struct jl_rlimit){res, (uint64_t)soft, (uint64_t)hard};
  }
  return 0;
}

static int parse_user(json_t *user, const char *where, struct jl_process *p, struct jl_err *err) {
  if (!user) return 0;
  char w[128];
  snprintf(w, sizeof w, "%suser.", where);
  int64_t uid = 0, gid = 0;
  json_t *gids;
  if (jl_cfg_get_int(user, "uid", w, 0, &uid, err) < 0 || jl_cfg_get_int(user, "gid", w, 0, &gid, err) < 0 ||
      jl_cfg_get_arr(user, "additionalGids", w, &gids, err) < 0)
    return -1;
  if (uid > UINT32_MAX - 1 || gid > UINT32_MAX - 1) return BAD(err, "%suid/gid: out of range", w);
  p->uid = (uid_t)uid;
  p->gid = (gid_t)gid;
  p->ngids = gids ? json_array_size(gids) : 0;
  p->gids = calloc(p->ngids + 1, sizeof *p->gids);
  if (!p->gids) return jl_syserr(err, "calloc");
  size_t i; json_t *v;
  json_array_foreach(gids, i, v) {
    if (!json_is_integer(v) || json_integer_value(v) < 0)
      return BAD(err, "%sadditionalGids[%zu]: expected a non-negative integer", w, i);
    p->gids[i] = (gid_t)json_integer_value(v);
  }
  return 0;
}

int jl_process_parse(json_t *proc, const char *where, struct jl_process *p, struct jl_err *err) {
  memset(p, 0, sizeof *p);
  p->cwd = "/";
  if (!json_is_object(proc)) return BAD(err, "%s: expected an object", where);
  char w[96];
  snprintf(w, sizeof w, "%s.", where);
  json_t *args = NULL, *env = NULL, *caps = NULL, *rl = NULL, *user = NULL;
  bool terminal = false;
  int64_t oom = INT64_MIN;
  if (jl_cfg_get_arr(proc, "args", w, &args, err) < 0 || jl_cfg_get_arr(proc, "env", w, &env, err) < 0 ||
      jl_cfg_get_obj(proc, "capabilities", w, &caps, err) < 0 || jl_cfg_get_arr(proc, "rlimits", w, &rl, err) < 0 ||
      jl_cfg_get_obj(proc, "user", w, &user, err) < 0 || jl_cfg_get_str(proc, "cwd", w, &p->cwd, err) < 0 ||
      jl_cfg_get_bool(proc, "terminal", w, &terminal, err) < 0 ||
      jl_cfg_get_bool(proc, "noNewPrivileges", w, &p->no_new_privs, err) < 0 ||
      jl_cfg_get_int(proc, "oomScoreAdj", w, -1000, &oom, err) < 0)
    return -1;
  if (terminal) return BAD(err, "%sterminal: true is not supported (stdio is pipes or inherited)", w);
  if (!args || json_array_size(args) == 0) return BAD(err, "%sargs: at least one argument is required", w);
  if (p->cwd[0] != '/') return BAD(err, "%scwd: must be an absolute path, got %s", w, p->cwd);
  if (oom != INT64_MIN) {
    if (oom > 1000) return BAD(err, "%soomScoreAdj: must be <= 1000", w);
    p->has_oom_score_adj = true;
    p->oom_score_adj = (int)oom;
  }
  char aw[128], ew[128];
  snprintf(aw, sizeof aw, "%sargs", w);
  snprintf(ew, sizeof ew, "%senv", w);
  if (jl_cfg_str_array(args, aw, &p->args, NULL, err) < 0 || jl_cfg_str_array(env, ew, &p->env, NULL, err) < 0)
    return -1;
  if (caps && parse_caps(caps, w, p, err) < 0) return -1;
  if (parse_rlimits(rl, w, p, err) < 0 || parse_user(user, w, p, err) < 0) return -1;
  return 0;
}

void jl_process_free(struct jl_process *p) {
  free(p->args);
  free(p->env);
  free(p->gids);
  free(p->rlimits);
  memset(p, 0, sizeof *p);
}
