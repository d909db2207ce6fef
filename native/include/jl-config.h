/* The OCI runtime-spec subset jiffy-launch understands, parsed from config.json (jansson).
 *
 * Parsing validates everything up front and names the offending field
 * ("config.json: linux.resources.memory.limit: expected an integer") so that a bad config is
 * refused before any namespace, cgroup or mount exists. Strings point into the jansson tree kept
 * in `json`; jl_config_free() releases both. Unknown fields are ignored, as the spec asks.
 */
#ifndef JL_CONFIG_H
#define JL_CONFIG_H

#include <jansson.h>
#include <limits.h>
#include "jl-util.h"

enum { JL_CAP_BOUNDING, JL_CAP_EFFECTIVE, JL_CAP_INHERITABLE, JL_CAP_PERMITTED, JL_CAP_AMBIENT, JL_CAP_NSETS };

/* Namespace kinds in a fixed order; flags are the CLONE_NEW* bits. */
enum { JL_NS_PID, JL_NS_NET, JL_NS_IPC, JL_NS_UTS, JL_NS_MNT, JL_NS_CGROUP, JL_NS_COUNT };
extern const int jl_ns_flag[JL_NS_COUNT];
extern const char *const jl_ns_name[JL_NS_COUNT];   /* OCI type names: pid, network, ... */
extern const char *const jl_ns_proc[JL_NS_COUNT];   /* /proc/PID/ns/<name> */

struct jl_rlimit { int resource; uint64_t soft, hard; };

struct jl_process {
  const char **args;        /* NULL terminated */
  const char **env;         /* NULL terminated */
  const char *cwd;
  uid_t uid; gid_t gid;
  gid_t *gids; size_t ngids;
  struct jl_rlimit *rlimits; size_t nrlimits;
  bool no_new_privs;
  uint64_t caps[JL_CAP_NSETS];
  bool has_oom_score_adj; int oom_score_adj;
};

/* One mount, described as data first (nsjail style) and executed later in rootfs.c. */
struct jl_mount {
  const char *dest, *type, *source;
  unsigned long flags;        /* MS_* for the mount itself */
  unsigned long propagation;  /* MS_PRIVATE|MS_REC ... applied after, 0 = none */
  bool bind, recursive;
  char *data;                 /* comma separated fs options (mode=, size=, newinstance, ...) */
};

/* -1 means "not set" for every limit. */
struct jl_resources {
  int64_t mem_limit, mem_swap, cpu_shares, cpu_quota, cpu_period, pids_limit;
};

struct jl_config {
  json_t *json;
  struct jl_process proc;
  char root[PATH_MAX];        /* absolute */
  char bundle[PATH_MAX];      /* resolves relative bind sources; "" when none */
  bool root_ro;
  const char *hostname;
  struct jl_mount *mounts; size_t nmounts;
  int ns_flags;                          /* CLONE_NEW* to create */
  const char *ns_path[JL_NS_COUNT];      /* namespaces to join instead */
  struct jl_resources res;
  const char **masked; size_t nmasked;
  const char **ropaths; size_t nropaths;
  unsigned long root_propagation;        /* 0 = default (rprivate) */
  const char **sysctl_keys, **sysctl_vals; size_t nsysctl;
  json_t *annotations;                   /* borrowed, may be NULL */
};

/* Parse a config object (reference kept). bundle resolves a relative root.path; may be NULL. */
int jl_config_parse(json_t *json, const char *bundle, struct jl_config *cfg, struct jl_err *err);
/* Load <bundle>/config.json and parse it. */
int jl_config_load(const char *bundle, struct jl_config *cfg, struct jl_err *err);
/* Parse only a process object (used by exec). `where` prefixes field names in messages. */
int jl_process_parse(json_t *proc, const char *where, struct jl_process *p, struct jl_err *err);
void jl_process_free(struct jl_process *p);
void jl_config_free(struct jl_config *cfg);
/* Parse "ro,nosuid,mode=755"-style option arrays into m (shared with the overlay op). */
int jl_mount_options(json_t *opts, const char *where, struct jl_mount *m, struct jl_err *err);
int jl_cap_from_name(const char *name);

#endif
