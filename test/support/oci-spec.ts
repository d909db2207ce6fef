/**
 * A plain OCI runtime-spec `config.json` for the launcher conformance suite, shaped like
 * `runc spec` output. It is written by hand (not by Jiffy's own defaultSpec) on purpose: the
 * suite checks that jiffy-launch accepts the same standard config that crun and runc accept.
 */

/** Options for {@link conformanceSpec}; everything beyond `args` has a runc-like default. */
export interface ConformanceSpecOptions {
  args: string[];
  /** Root filesystem; relative to the bundle ("rootfs") or absolute. */
  rootPath?: string;
  hostname?: string;
  env?: string[];
  cwd?: string;
  uid?: number;
  gid?: number;
  readonlyRoot?: boolean;
  noNewPrivileges?: boolean;
  /** Capability names for bounding/effective/permitted; default runc's three. */
  capabilities?: string[];
  rlimits?: { type: string; soft: number; hard: number }[];
  memoryBytes?: number;
  pidsLimit?: number;
  /** CFS quota and period in microseconds (linux.resources.cpu). */
  cpu?: { quota: number; period: number };
  /** Extra mounts appended after the standard ones. */
  mounts?: OciMount[];
  maskedPaths?: string[];
  readonlyPaths?: string[];
}

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export const RUNC_DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
export const DEFAULT_MASKED = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi',
];
export const DEFAULT_READONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

function standardMounts(): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];
}

function resources(o: ConformanceSpecOptions): Record<string, unknown> | undefined {
  const r: Record<string, unknown> = {};
  if (o.memoryBytes !== undefined) r.memory = { limit: o.memoryBytes, swap: o.memoryBytes };
  if (o.pidsLimit !== undefined) r.pids = { limit: o.pidsLimit };
  if (o.cpu !== undefined) r.cpu = { quota: o.cpu.quota, period: o.cpu.period };
  return Object.keys(r).length ? r : undefined;
}

/** A complete config.json object: full namespace set (pid, network, ipc, uts, mount, cgroup). */
export function conformanceSpec(o: ConformanceSpecOptions): Record<string, any> {
  const caps = o.capabilities ?? RUNC_DEFAULT_CAPS;
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: o.uid ?? 0, gid: o.gid ?? 0 },
      args: o.args,
      env: o.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: o.cwd ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: o.rlimits ?? [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: o.noNewPrivileges ?? true,
    },
    root: { path: o.rootPath ?? 'rootfs', readonly: o.readonlyRoot ?? false },
    hostname: o.hostname ?? 'jiffy-test',
    mounts: [...standardMounts(), ...(o.mounts ?? [])],
    linux: {
      resources: resources(o),
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup'].map((type) => ({ type })),
      maskedPaths: o.maskedPaths ?? DEFAULT_MASKED,
      readonlyPaths: o.readonlyPaths ?? DEFAULT_READONLY,
    },
  };
}
