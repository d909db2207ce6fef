/* Process attributes applied just before exec, in the order that keeps each step permitted:
 * rlimits and oom_score_adj while still privileged, bounding set before the uid change (dropping
 * needs CAP_SETPCAP), KEEPCAPS across setresuid so permitted caps survive leaving uid 0, then the
 * final capability sets, ambient caps (need permitted+inheritable), no_new_privs, cwd as the user. */
#include "jl-container.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>

static int set_rlimits(const struct jl_process *p, struct jl_err *err) {
  for (size_t i = 0; i < p->nrlimits; i++) {
    struct rlimit rl = {p->rlimits[i].soft, p->rlimits[i].hard};
    if (setrlimit(p->rlimits[i].resource, &rl) < 0) return jl_syserr(err, "process.rlimits[%zu]: setrlimit", i);
  }
  return 0;
}

int jl_process_oom_score(const struct jl_process *p, struct jl_err *err) {
  if (!p->has_oom_score_adj) return 0;
  char buf[16];
  snprintf(buf, sizeof buf, "%d", p->oom_score_adj);
  if (jl_write_file_at(AT_FDCWD, "/proc/self/oom_score_adj", buf, err) < 0) return jl_err_wrap(err, "process.oomScoreAdj");
  return 0;
}

static int drop_bounding(uint64_t keep, struct jl_err *err) {
  for (int c = 0; c <= CAP_LAST_CAP; c++) {
    if (keep & (1ULL << c)) continue;
    /* EINVAL: the running kernel does not know this capability; nothing to drop. */
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) return jl_syserr(err, "prctl(PR_CAPBSET_DROP, %d)", c);
  }
  return 0;
}

static int set_user(const struct jl_process *p, struct jl_err *err) {
  /* Raw syscalls: glibc's wrappers broadcast id changes to all threads through shared memory,
   * which is wrong in a CLONE_VM child (the memory is the parent's). */
  if (syscall(SYS_setgroups, p->ngids, p->gids) < 0) return jl_syserr(err, "process.user.additionalGids: setgroups");
  if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0) return jl_syserr(err, "process.user.gid: setresgid %u", p->gid);
  if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0) return jl_syserr(err, "process.user.uid: setresuid %u", p->uid);
  return 0;
}

static int set_caps(const struct jl_process *p, struct jl_err *err) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  for (int i = 0; i < 2; i++) {
    data[i].effective = (uint32_t)(p->caps[JL_CAP_EFFECTIVE] >> (32 * i));
    data[i].permitted = (uint32_t)(p->caps[JL_CAP_PERMITTED] >> (32 * i));
    data[i].inheritable = (uint32_t)(p->caps[JL_CAP_INHERITABLE] >> (32 * i));
  }
  if (syscall(SYS_capset, &hdr, data) < 0) return jl_syserr(err, "process.capabilities: capset");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return jl_syserr(err, "process.capabilities.ambient: clear");
  for (int c = 0; c <= CAP_LAST_CAP; c++)
    if ((p->caps[JL_CAP_AMBIENT] & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
      return jl_syserr(err, "process.capabilities.ambient: raise %d (it must also be permitted and inheritable)", c);
  return 0;
}

int jl_process_apply(const struct jl_process *p, struct jl_err *err) {
  if (set_rlimits(p, err) < 0) return -1;
  if (drop_bounding(p->caps[JL_CAP_BOUNDING], err) < 0) return jl_err_wrap(err, "process.capabilities.bounding");
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return jl_syserr(err, "prctl(PR_SET_KEEPCAPS)");
  if (set_user(p, err) < 0) return -1;
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) return jl_syserr(err, "prctl(PR_SET_KEEPCAPS)");
  if (set_caps(p, err) < 0) return -1;
  if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return jl_syserr(err, "process.noNewPrivileges");
  if (chdir(p->cwd) < 0) return jl_syserr(err, "process.cwd: chdir %s", p->cwd);
  umask(022);
  return 0;
}

static const char *env_path(const struct jl_process *p) {
  for (const char **e = p->env; e && *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) return *e + 5;
  return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

/* PATH lookup with the CONTAINER's PATH: execvp would use ours (and setting environ is not an
 * option in a CLONE_VM child: it would rewrite the parent's memory). */
int jl_process_exec(const struct jl_process *p, struct jl_err *err) {
  const char *arg0 = p->args[0];
  char *const *argv = (char *const *)p->args;
  char *const *envp = (char *const *)(p->env ? p->env : (const char *[]){NULL});
  if (strchr(arg0, '/')) {
    execve(arg0, argv, envp);
    return jl_syserr(err, "process.args[0]: exec %s", arg0);
  }
  int saved = ENOENT;
  for (const char *dir = env_path(p); ; ) {
    const char *end = strchrnul(dir, ':');
    char path[PATH_MAX];
    if (end == dir) snprintf(path, sizeof path, "./%s", arg0);
    else snprintf(path, sizeof path, "%.*s/%s", (int)(end - dir), dir, arg0);
    execve(path, argv, envp);
    if (errno != ENOENT && errno != ENOTDIR) saved = errno;
    if (!*end) break;
    dir = end + 1;
  }
  errno = saved;
  return jl_syserr(err, "process.args[0]: exec %s (searched the container's PATH)", arg0);
}

int jl_loopback_up(struct jl_err *err) {
  cleanup_fd int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return jl_syserr(err, "socket for loopback");
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) return jl_syserr(err, "SIOCGIFFLAGS lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) return jl_syserr(err, "SIOCSIFFLAGS lo");
  return 0;
}
