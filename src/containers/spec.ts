/**
 * The OCI runtime `config.json` for a container: the image config (Entrypoint, Cmd, Env,
 * WorkingDir, User) merged with the create options, and the namespace / mount / capability set
 * docker uses by default. The rootfs is the snapshot's merged dir, mounted before the runtime runs.
 */
import type { ContainerConfig } from '../images/types.js';
import { JiffyError } from '../errors.js';
import { normalizeCapabilities } from './security.js';
import type { ContainerSpecOptions } from './types.js';

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** The command line: `--entrypoint` / image Entrypoint, then CMD args / image Cmd (docker's rules). */
export function resolveCommand(img: ContainerConfig, opts: ContainerSpecOptions): string[] {
  const entry = opts.entrypoint ?? img.Entrypoint ?? [];
  // A new entrypoint drops the image's Cmd, as in docker.
  const cmd = opts.cmd && opts.cmd.length ? opts.cmd : opts.entrypoint ? [] : img.Cmd ?? [];
  const argv = [...entry, ...cmd];
  if (argv.length === 0) {
    throw new JiffyError('invalid_argument', 'no command: the image has no Entrypoint or Cmd; give one after the image name');
  }
  return argv;
}

/** Image Env, then `-e` entries (later keys win); PATH defaults like docker. */
export function resolveEnv(img: ContainerConfig, extra: string[] = [], home?: string): string[] {
  const map = new Map<string, string>();
  for (const kv of [...(img.Env ?? []), ...extra]) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new JiffyError('invalid_argument', `bad environment entry ${JSON.stringify(kv)}: use KEY=VALUE`);
    map.set(kv.slice(0, i), kv.slice(i + 1));
  }
  if (!map.has('PATH')) map.set('PATH', DEFAULT_PATH.slice(5));
  if (home && !map.has('HOME')) map.set('HOME', home);
  return [...map].map(([k, v]) => `${k}=${v}`);
}

/** Inputs of buildSpec: what was resolved at create time. */
export interface SpecInput {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  rootPath: string;
  cgroupsPath: string;
  /** Put the memory limit in the spec (jiffy-launch) rather than on Jiffy's own cgroup level (OCI runtimes). */
  memoryInSpec: boolean;
  options: ContainerSpecOptions;
}

/** An OCI runtime-spec config.json object (runtime-spec 1.0 subset every runtime here reads). */
export function buildSpec(i: SpecInput): Record<string, unknown> {
  const o = i.options;
  const caps = o.capabilities ? normalizeCapabilities(o.capabilities) : CAPS;
  const namespaces = ['pid', 'ipc', 'uts', 'mount', ...(o.network === 'host' ? [] : ['network'])].map((type) => ({ type }));
  const resources: Record<string, unknown> = {};
  if (o.memoryBytes && i.memoryInSpec) resources.memory = { limit: o.memoryBytes, swap: o.memoryBytes };
  if (o.pidsLimit) resources.pids = { limit: o.pidsLimit };
  if (o.cpus) resources.cpu = { period: 100000, quota: Math.round(o.cpus * 100000) };
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: i.uid, gid: i.gid, ...(i.additionalGids.length ? { additionalGids: i.additionalGids } : {}) },
      args: i.args,
      env: i.env,
      cwd: i.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: false,
    },
    root: { path: i.rootPath, readonly: !!o.readonlyRoot },
    hostname: o.hostname ?? 'jiffy',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      ...(o.readonlyRoot ? [{ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] }] : []),
      ...(o.binds ?? []).map((b) => ({
        destination: b.destination, type: 'bind', source: b.source, options: ['rbind', b.readonly ? 'ro' : 'rw'],
      })),
    ],
    linux: {
      namespaces,
      cgroupsPath: i.cgroupsPath,
      resources,
      maskedPaths: ['/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'],
      readonlyPaths: ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
