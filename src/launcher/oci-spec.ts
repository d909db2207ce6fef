/**
 * TypeScript types for the OCI runtime-spec `config.json` subset that jiffy-launch understands
 * (see native/include/jl-config.h), plus `defaultSpec`, a runc-like default configuration.
 * Unknown fields are allowed by the launcher and ignored.
 */

export interface OciUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

export interface OciCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface OciRlimit {
  type: string; // RLIMIT_NOFILE, ...
  soft: number;
  hard: number;
}

export interface OciProcess {
  terminal?: false;
  user?: OciUser;
  args: string[];
  env?: string[];
  cwd?: string;
  capabilities?: OciCapabilities;
  rlimits?: OciRlimit[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
}

export interface OciRoot {
  path: string;
  readonly?: boolean;
}

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export type OciNamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'cgroup';

export interface OciNamespace {
  type: OciNamespaceType;
  /** Join this existing namespace instead of creating one. */
  path?: string;
}

export interface OciMemory {
  limit?: number;
  /** memory + swap, as in the spec (v1 memsw semantics). */
  swap?: number;
}

export interface OciCpu {
  shares?: number;
  quota?: number;
  period?: number;
}

export interface OciResources {
  memory?: OciMemory;
  cpu?: OciCpu;
  pids?: { limit: number };
}

export interface OciLinux {
  namespaces?: OciNamespace[];
  resources?: OciResources;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  rootfsPropagation?: string;
  sysctl?: Record<string, string>;
}

export interface OciRuntimeSpec {
  ociVersion: string;
  process: OciProcess;
  root: OciRoot;
  hostname?: string;
  mounts?: OciMount[];
  linux?: OciLinux;
  annotations?: Record<string, string>;
}

/** Capabilities runc gives by default (its `runc spec` set, minus nothing). */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

export const DEFAULT_MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];

export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root'];

/** Options for {@link defaultSpec}. */
export interface DefaultSpecOptions {
  args: string[];
  rootPath: string;
  env?: string[];
  cwd?: string;
  hostname?: string;
  uid?: number;
  gid?: number;
  readonlyRoot?: boolean;
  network?: 'none' | 'host';
  memoryBytes?: number;
  cpus?: number;
  pidsLimit?: number;
  mounts?: OciMount[];
  /** Capability names for bounding/effective/permitted; an empty list means none. */
  capabilities?: string[];
}

function defaultMounts(): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];
}

function resources(o: DefaultSpecOptions): OciResources | undefined {
  const r: OciResources = {};
  if (o.memoryBytes !== undefined) r.memory = { limit: o.memoryBytes, swap: o.memoryBytes };
  // cpus -> CFS quota over a 100 ms period, as `docker run --cpus` does.
  if (o.cpus !== undefined) r.cpu = { quota: Math.round(o.cpus * 100_000), period: 100_000 };
  if (o.pidsLimit !== undefined) r.pids = { limit: o.pidsLimit };
  return Object.keys(r).length ? r : undefined;
}

/**
 * A runc-like config: every namespace (no netns with network 'host'), /proc /dev /dev/pts
 * /dev/shm /dev/mqueue and a read-only /sys, masked and read-only paths, noNewPrivileges, the
 * default capability set (or `capabilities`; an empty list means none), RLIMIT_NOFILE 1024.
 */
export function defaultSpec(o: DefaultSpecOptions): OciRuntimeSpec {
  const caps = o.capabilities ?? DEFAULT_CAPABILITIES;
  const ns: OciNamespaceType[] = ['pid', 'ipc', 'uts', 'mount', 'cgroup'];
  if (o.network !== 'host') ns.push('network');
  const spec: OciRuntimeSpec = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: o.uid ?? 0, gid: o.gid ?? 0 },
      args: o.args,
      env: o.env ?? DEFAULT_ENV,
      cwd: o.cwd ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: o.rootPath, readonly: o.readonlyRoot ?? false },
    hostname: o.hostname ?? 'jiffy',
    mounts: [...defaultMounts(), ...(o.mounts ?? [])],
    linux: {
      namespaces: ns.map((type) => ({ type })),
      maskedPaths: DEFAULT_MASKED_PATHS,
      readonlyPaths: DEFAULT_READONLY_PATHS,
    },
  };
  const res = resources(o);
  if (res) spec.linux!.resources = res;
  return spec;
}
