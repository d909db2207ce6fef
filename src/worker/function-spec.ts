import type { FunctionSettings } from '../functions/spec.js';

/** The unprivileged user functions run as (nobody). */
export const FUNCTION_UID = 65534;

export interface FunctionSpecInput {
  args: string[];
  env: string[];
  cwd: string;
  hostname: string;
  rootPath: string;
  settings: FunctionSettings;
}

/**
 * The OCI runtime config.json for a function container: uid/gid 65534, no capabilities at all,
 * no_new_privs, its own pid/ipc/uts/mount (+ network unless the function asked for the host's)
 * namespaces, the function's memory (swap included, so the limit is real), CPU and pids limits,
 * a private /tmp (HOME) — the root filesystem is the function image's overlay.
 */
export function functionSpec(i: FunctionSpecInput): Record<string, unknown> {
  const s = i.settings;
  const namespaces = ['pid', 'ipc', 'uts', 'mount', ...(s.network === 'host' ? [] : ['network'])].map((type) => ({ type }));
  const memory = s.memoryMb * 1024 * 1024;
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: FUNCTION_UID, gid: FUNCTION_UID },
      args: i.args,
      env: i.env,
      cwd: i.cwd,
      capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
      noNewPrivileges: true,
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 4096 }],
    },
    root: { path: i.rootPath, readonly: false },
    hostname: i.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=65536k'] },
    ],
    linux: {
      namespaces,
      resources: {
        memory: { limit: memory, swap: memory },
        cpu: { period: 100000, quota: Math.max(1000, Math.round(s.cpus * 100000)) },
        pids: { limit: 256 },
      },
      maskedPaths: ['/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'],
      readonlyPaths: ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
