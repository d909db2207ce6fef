/* config.json: root, hostname, mounts and the `linux` section (namespaces, resources, paths). */
#include "config-priv.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>


static const struct { const char *name; unsigned long set, clear, prop; } mount_opts[] = {
  {"ro", MS_RDONLY, 0, 0}, {"rw", 0, MS_RDONLY, 0}, {"nosuid", MS_NOSUID, 0, 0}, {"suid", 0, MS_NOSUID, 0},
  {"nodev", MS_NODEV, 0, 0}, {"dev", 0, MS_NODEV, 0}, {"noexec", MS_NOEXEC, 0, 0}, {"exec", 0, MS_NOEXEC, 0},
  {"sync", MS_SYNCHRONOUS, 0, 0}, {"async", 0, MS_SYNCHRONOUS, 0}, {"dirsync", MS_DIRSYNC, 0, 0},
  {"mand", MS_MANDLOCK, 0, 0}, {"nomand", 0, MS_MANDLOCK, 0}, {"atime", 0, MS_NOATIME, 0},
  {"noatime", MS_NOATIME, 0, 0}, {"diratime", 0, MS_NODIRATIME, 0}, {"nodiratime", MS_NODIRATIME, 0, 0},
  {"relatime", MS_RELATIME, 0, 0}, {"norelatime", 0, MS_RELATIME, 0}, {"strictatime", MS_STRICTATIME, 0, 0},
  {"nostrictatime", 0, MS_STRICTATIME, 0}, {"remount", 0, 0, 0}, {"defaults", 0, 0, 0},
  {"private", 0, 0, MS_PRIVATE}, {"rprivate", 0, 0, MS_PRIVATE | MS_REC},
  {"shared", 0, 0, MS_SHARED}, {"rshared", 0, 0, MS_SHARED | MS_REC},
  {"slave", 0, 0, MS_SLAVE}, {"rslave", 0, 0, MS_SLAVE | MS_REC},
  {"unbindable", 0, 0, MS_UNBINDABLE}, {"runbindable", 0, 0, MS_UNBINDABLE | MS_REC},
};

int jl_mount_options(json_t *opts, const char *where, struct jl_mount *m, struct jl_err *err) {
  size_t cap = 1, used = 0;
  size_t i; json_t *v;
  json_array_foreach(opts, i, v) {
    if (!json_is_string(v)) return BAD(err, "%s.options[%zu]: expected a string", where, i);
    cap += json_string_length(v) + 1;
  }
  m->data = calloc(1, cap);
  if (!m->data) return jl_syserr(err, "calloc");
  json_array_foreach(opts, i, v) {
    const char *o = json_string_value(v);
    if (strcmp(o, "bind") == 0) { m->bind = true; continue; }
    if (strcmp(o, "rbind") == 0) { m->bind = m->recursive = true; continue; }
    bool known = false;
    for (size_t k = 0; k < sizeof mount_opts / sizeof mount_opts[0]; k++) {
      if (strcmp(o, mount_opts[k].name) != 0) continue;
      m->flags = (m->flags | mount_opts[k].set) & ~mount_opts[k].clear;
      if (mount_opts[k].prop) m->propagation = mount_opts[k].prop;
      known = true;
    }
    if (known) continue;
    used += (size_t)snprintf(m->data + used, cap - used, "%s%s", used ? "," : "", o);
  }
  return 0;
}

static int parse_mounts(json_t *a, struct jl_config *cfg, struct jl_err *err) {
  cfg->nmounts = a ? json_array_size(a) : 0;
  cfg->mounts = calloc(cfg->nmounts + 1, sizeof *cfg->mounts);
  if (!cfg->mounts) return jl_syserr(err, "calloc");
  size_t i; json_t *v;
  json_array_foreach(a, i, v) {
    struct jl_mount *m = &cfg->mounts[i];
    char w[64];
    snprintf(w, sizeof w, "mounts[%zu]", i);
    if (!json_is_object(v)) return BAD(err, "%s: expected an object", w);
    json_t *d = json_object_get(v, "destination"), *t = json_object_get(v, "type"),
           *s = json_object_get(v, "source"), *o = json_object_get(v, "options");
    if (!json_is_string(d) || json_string_value(d)[0] != '/')
      return BAD(err, "%s.destination: expected an absolute path", w);
    if (t && !json_is_string(t)) return BAD(err, "%s.type: expected a string", w);
    if (s && !json_is_string(s)) return BAD(err, "%s.source: expected a string", w);
    if (o && !json_is_array(o)) return BAD(err, "%s.options: expected an array", w);
    m->dest = json_string_value(d);
    m->type = t ? json_string_value(t) : "";
    m->source = s ? json_string_value(s) : "";
    if (jl_mount_options(o, w, m, err) < 0) return -1;
    if (strcmp(m->type, "bind") == 0) m->bind = true;
    if (m->bind && !*m->source) return BAD(err, "%s.source: a bind mount needs a source", w);
    if (!m->bind && !*m->type) return BAD(err, "%s.type: required for a non-bind mount", w);
  }
  return 0;
}

static int parse_namespaces(json_t *a, struct jl_config *cfg, struct jl_err *err) {
  size_t i; json_t *v;
  json_array_foreach(a, i, v) {
    const char *type = NULL, *path = NULL;
    char w[64];
    snprintf(w, sizeof w, "linux.namespaces[%zu].", i);
    if (!json_is_object(v)) return BAD(err, "linux.namespaces[%zu]: expected an object", i);
    json_t *t = json_object_get(v, "type"), *p = json_object_get(v, "path");
    if (!json_is_string(t)) return BAD(err, "%stype: expected a string", w);
    if (p && !json_is_null(p) && !json_is_string(p)) return BAD(err, "%spath: expected a string", w);
    type = json_string_value(t);
    path = p && json_is_string(p) && *json_string_value(p) ? json_string_value(p) : NULL;
    int k = 0;
    while (k < JL_NS_COUNT && strcmp(jl_ns_name[k], type) != 0) k++;
    if (k == JL_NS_COUNT) {
      if (strcmp(type, "user") == 0 || strcmp(type, "time") == 0)
        return BAD(err, "%stype: %s namespaces are not supported by jiffy-launch", w, type);
      return BAD(err, "%stype: unknown namespace type %s", w, type);
    }
    if (path && path[0] != '/') return BAD(err, "%spath: expected an absolute path", w);
    if (path) cfg->ns_path[k] = path;
    else cfg->ns_flags |= jl_ns_flag[k];
  }
  if (!(cfg->ns_flags & CLONE_NEWNS) && !cfg->ns_path[JL_NS_MNT])
    return BAD(err, "linux.namespaces: a mount namespace is required (pivot_root needs one)");
  return 0;
}

static int parse_resources(json_t *r, struct jl_resources *res, struct jl_err *err) {
  res->mem_limit = res->mem_swap = res->cpu_shares = res->cpu_quota = res->cpu_period = res->pids_limit = -1;
  if (!r) return 0;
  json_t *mem, *cpu, *pids;
  if ((mem = json_object_get(r, "memory")) && !json_is_object(mem) && !json_is_null(mem))
    return BAD(err, "linux.resources.memory: expected an object");
  if ((cpu = json_object_get(r, "cpu")) && !json_is_object(cpu) && !json_is_null(cpu))
    return BAD(err, "linux.resources.cpu: expected an object");
  if ((pids = json_object_get(r, "pids")) && !json_is_object(pids) && !json_is_null(pids))
    return BAD(err, "linux.resources.pids: expected an object");
  struct { json_t *o; const char *k; const char *w; int64_t min; int64_t *out; } f[] = {
    {mem, "limit", "linux.resources.memory.", 0, &res->mem_limit},
    {mem, "swap", "linux.resources.memory.", -1, &res->mem_swap},
    {cpu, "shares", "linux.resources.cpu.", 2, &res->cpu_shares},
    {cpu, "quota", "linux.resources.cpu.", -1, &res->cpu_quota},
    {cpu, "period", "linux.resources.cpu.", 1000, &res->cpu_period},
    {pids, "limit", "linux.resources.pids.", -1, &res->pids_limit},
  };
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    json_t *v = json_is_object(f[i].o) ? json_object_get(f[i].o, f[i].k) : NULL;
    if (!v || json_is_null(v)) continue;
    if (!json_is_integer(v)) return BAD(err, "%s%s: expected an integer", f[i].w, f[i].k);
    int64_t n = json_integer_value(v);
    if (n < f[i].min) return BAD(err, "%s%s: must be >= %lld, got %lld", f[i].w, f[i].k, (long long)f[i].min, (long long)n);
    *f[i].out = n;
  }
  if (res->mem_swap > 0 && res->mem_limit > 0 && res->mem_swap < res->mem_limit)
    return BAD(err, "linux.resources.memory.swap: must be >= memory.limit (it counts memory+swap)");
  return 0;
}

static int parse_root(json_t *json, const char *bundle, struct jl_config *cfg, struct jl_err *err) {
  json_t *root;
  const char *path = NULL;
  if (jl_cfg_get_obj(json, "root", "", &root, err) < 0) return -1;
  if (!root) return BAD(err, "root: required");
  if (jl_cfg_get_str(root, "path", "root.", &path, err) < 0 ||
      jl_cfg_get_bool(root, "readonly", "root.", &cfg->root_ro, err) < 0)
    return -1;
  if (!path || !*path) return BAD(err, "root.path: required");
  int n;
  if (path[0] == '/') n = snprintf(cfg->root, sizeof cfg->root, "%s", path);
  else if (!bundle) return BAD(err, "root.path: relative path %s needs a bundle directory", path);
  else if (strstr(path, "..")) return BAD(err, "root.path: relative path %s must stay inside the bundle", path);
  else n = snprintf(cfg->root, sizeof cfg->root, "%s/%s", bundle, path);
  if (n >= (int)sizeof cfg->root) return BAD(err, "root.path: too long");
  return 0;
}

static int parse_sysctl(json_t *o, struct jl_config *cfg, struct jl_err *err) {
  size_t n = o ? json_object_size(o) : 0, i = 0;
  cfg->sysctl_keys = calloc(n + 1, sizeof *cfg->sysctl_keys);
  cfg->sysctl_vals = calloc(n + 1, sizeof *cfg->sysctl_vals);
  if (!cfg->sysctl_keys || !cfg->sysctl_vals) return jl_syserr(err, "calloc");
  const char *k; json_t *v;
  json_object_foreach(o, k, v) {
    if (!json_is_string(v)) return BAD(err, "linux.sysctl.%s: expected a string", k);
    if (strstr(k, "..") || strchr(k, '/')) return BAD(err, "linux.sysctl.%s: bad key", k);
    cfg->sysctl_keys[i] = k;
    cfg->sysctl_vals[i++] = json_string_value(v);
  }
  cfg->nsysctl = i;
  return 0;
}

static int parse_propagation(const char *p, unsigned long *out, struct jl_err *err) {
  static const struct { const char *n; unsigned long f; } t[] = {
    {"private", MS_PRIVATE}, {"rprivate", MS_PRIVATE | MS_REC}, {"shared", MS_SHARED},
    {"rshared", MS_SHARED | MS_REC}, {"slave", MS_SLAVE}, {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
  };
  if (!p) return 0;
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp(p, t[i].n) == 0) { *out = t[i].f; return 0; }
  return BAD(err, "linux.rootfsPropagation: unknown value %s", p);
}

static int parse_linux(json_t *lx, struct jl_config *cfg, struct jl_err *err) {
  json_t *ns = NULL, *res = NULL, *masked = NULL, *ro = NULL, *sysctl = NULL;
  const char *prop = NULL;
  if (lx && (jl_cfg_get_arr(lx, "namespaces", "linux.", &ns, err) < 0 ||
             jl_cfg_get_obj(lx, "resources", "linux.", &res, err) < 0 ||
             jl_cfg_get_arr(lx, "maskedPaths", "linux.", &masked, err) < 0 ||
             jl_cfg_get_arr(lx, "readonlyPaths", "linux.", &ro, err) < 0 ||
             jl_cfg_get_obj(lx, "sysctl", "linux.", &sysctl, err) < 0 ||
             jl_cfg_get_str(lx, "rootfsPropagation", "linux.", &prop, err) < 0))
    return -1;
  if (parse_namespaces(ns, cfg, err) < 0 || parse_resources(res, &cfg->res, err) < 0 ||
      jl_cfg_str_array(masked, "linux.maskedPaths", &cfg->masked, &cfg->nmasked, err) < 0 ||
      jl_cfg_str_array(ro, "linux.readonlyPaths", &cfg->ropaths, &cfg->nropaths, err) < 0 ||
      parse_sysctl(sysctl, cfg, err) < 0 || parse_propagation(prop, &cfg->root_propagation, err) < 0)
    return -1;
  for (size_t i = 0; i < cfg->nmasked; i++)
    if (cfg->masked[i][0] != '/') return BAD(err, "linux.maskedPaths[%zu]: expected an absolute path", i);
  for (size_t i = 0; i < cfg->nropaths; i++)
    if (cfg->ropaths[i][0] != '/') return BAD(err, "linux.readonlyPaths[%zu]: expected an absolute path", i);
  return 0;
}

int jl_config_parse(json_t *json, const char *bundle, struct jl_config *cfg, struct jl_err *err) {
  memset(cfg, 0, sizeof *cfg);
  cfg->res.mem_limit = -1;
  if (!json_is_object(json)) return BAD(err, "expected a JSON object");
  cfg->json = json_incref(json);
  if (bundle) snprintf(cfg->bundle, sizeof cfg->bundle, "%s", bundle);
  json_t *proc, *mounts, *lx, *ann;
  if (jl_cfg_get_obj(json, "process", "", &proc, err) < 0 || jl_cfg_get_arr(json, "mounts", "", &mounts, err) < 0 ||
      jl_cfg_get_obj(json, "linux", "", &lx, err) < 0 || jl_cfg_get_obj(json, "annotations", "", &ann, err) < 0 ||
      jl_cfg_get_str(json, "hostname", "", &cfg->hostname, err) < 0)
    return -1;
  if (!proc) return BAD(err, "process: required");
  cfg->annotations = ann;
  if (jl_process_parse(proc, "process", &cfg->proc, err) < 0) return -1;
  if (parse_root(json, bundle, cfg, err) < 0 || parse_mounts(mounts, cfg, err) < 0) return -1;
  if (parse_linux(lx, cfg, err) < 0) return -1;
  if (cfg->hostname && !(cfg->ns_flags & CLONE_NEWUTS) && !cfg->ns_path[JL_NS_UTS])
    return BAD(err, "hostname: setting a hostname needs a uts namespace");
  return 0;
}

int jl_config_load(const char *bundle, struct jl_config *cfg, struct jl_err *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/config.json", bundle);
  json_error_t je;
  json_t *json = json_load_file(path, 0, &je);
  if (!json) {
    memset(cfg, 0, sizeof *cfg);
    if (access(path, R_OK) < 0) return jl_syserr(err, "open %s", path);
    return jl_fail(err, "invalid_argument", "%s: line %d: %s", path, je.line, je.text);
  }
  int r = jl_config_parse(json, bundle, cfg, err);
  json_decref(json);
  return r;
}

void jl_config_free(struct jl_config *cfg) {
  jl_process_free(&cfg->proc);
  for (size_t i = 0; cfg->mounts && i < cfg->nmounts; i++) free(cfg->mounts[i].data);
  free(cfg->mounts);
  free(cfg->masked);
  free(cfg->ropaths);
  free(cfg->sysctl_keys);
  free(cfg->sysctl_vals);
  if (cfg->json) json_decref(cfg->json);
  memset(cfg, 0, sizeof *cfg);
}
