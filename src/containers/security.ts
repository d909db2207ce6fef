/**
 * The process security settings of a container — capability sets, no_new_privs, rlimits, user —
 * as its OCI `config.json` gives them to the container's init, so `exec` can give a new process
 * exactly the same (docker/runc semantics). Read from the bundle's config.json; a record written
 * before the bundle was recorded falls back to what its init process has (/proc/<pid>/status).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { JiffyError } from '../errors.js';
import type { ContainerRecord } from './types.js';

/** Capability numbers (linux/capability.h), by OCI name. */
const CAP_NAMES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
];

const RLIMITS = [
  'CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE', 'MEMLOCK', 'AS', 'LOCKS', 'SIGPENDING',
  'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME',
];

export type CapSet = 'bounding' | 'effective' | 'permitted' | 'inheritable' | 'ambient';
export const CAP_SETS: CapSet[] = ['bounding', 'effective', 'permitted', 'inheritable', 'ambient'];

/** Everything exec applies besides namespaces, cgroups, env and cwd. */
export interface ProcessSecurity {
  /** Capability sets as bit masks. */
  caps: Record<CapSet, bigint>;
  noNewPrivileges: boolean;
  /** [resource number, soft, hard]. */
  rlimits: Array<[number, bigint, bigint]>;
  uid: number;
  gid: number;
  additionalGids: number[];
}

/** Bit mask of OCI capability names (`CAP_SYS_ADMIN`); an unknown name is an error. */
export function capMask(names: string[] = []): bigint {
  let mask = 0n;
  for (const n of names) {
    const i = CAP_NAMES.indexOf(n.replace(/^CAP_/, ''));
    if (i < 0) throw new JiffyError('invalid_argument', `unknown capability ${n} in the container's config.json`);
    mask |= 1n << BigInt(i);
  }
  return mask;
}

/**
 * Capability names as the OCI config spells them (`CAP_CHOWN`); `chown` and `CHOWN` are accepted
 * too. Sorted and deduplicated; an unknown name is invalid_argument naming it.
 */
export function normalizeCapabilities(names: string[], what = 'capabilities'): string[] {
  const out = new Set<string>();
  for (const n of names) {
    const bare = String(n).trim().toUpperCase().replace(/^CAP_/, '');
    if (!CAP_NAMES.includes(bare)) {
      throw new JiffyError('invalid_argument', `unknown capability ${JSON.stringify(n)} in ${what}: use names such as CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_NET_BIND_SERVICE (see capabilities(7))`, { details: { field: what } });
    }
    out.add(`CAP_${bare}`);
  }
  return [...out].sort();
}

interface OciProcessJson {
  user?: { uid?: number; gid?: number; additionalGids?: number[] };
  capabilities?: Partial<Record<CapSet, string[]>>;
  noNewPrivileges?: boolean;
  rlimits?: Array<{ type: string; soft: number; hard: number }>;
}

/** The settings `rec`'s init was given (config.json in its bundle), or, lacking one, what it has. */
export function processSecurity(rec: ContainerRecord): ProcessSecurity {
  if (!rec.bundle) return fromStatus(rec);
  const file = path.join(rec.bundle, 'config.json');
  let proc: OciProcessJson;
  try {
    proc = (JSON.parse(readFileSync(file, 'utf8')) as { process?: OciProcessJson }).process ?? {};
  } catch (e) {
    throw new JiffyError('failed_precondition', `reading ${file} failed: ${(e as Error).message}; the container's bundle is damaged, remove it (jiffy rm -f ${rec.name})`, { cause: e });
  }
  const caps = Object.fromEntries(CAP_SETS.map((s) => [s, capMask(proc.capabilities?.[s])])) as Record<CapSet, bigint>;
  const rlimits = (proc.rlimits ?? []).map((r): [number, bigint, bigint] => {
    const n = RLIMITS.indexOf(r.type.replace(/^RLIMIT_/, ''));
    if (n < 0) throw new JiffyError('invalid_argument', `unknown rlimit ${r.type} in ${file}`);
    return [n, u64(r.soft), u64(r.hard)];
  });
  return {
    caps, noNewPrivileges: !!proc.noNewPrivileges, rlimits,
    uid: proc.user?.uid ?? rec.process.uid, gid: proc.user?.gid ?? rec.process.gid,
    additionalGids: proc.user?.additionalGids ?? rec.process.additionalGids,
  };
}

const U64_MAX = (1n << 64n) - 1n;
/** JSON numbers lose precision above 2^53: RLIM_INFINITY (2^64-1) arrives as 2^64. */
const u64 = (n: number) => (BigInt(Math.trunc(n)) > U64_MAX ? U64_MAX : BigInt(Math.trunc(n)));

/** Fallback for records without a bundle path: copy the init process's current settings. */
function fromStatus(rec: ContainerRecord): ProcessSecurity {
  const status = readFileSync(`/proc/${rec.state.pid}/status`, 'utf8');
  const field = (k: string) => new RegExp(`^${k}:\\s*(\\S*)`, 'm').exec(status)?.[1] ?? '';
  const hex = (k: string) => BigInt(`0x${field(k) || '0'}`);
  return {
    caps: { bounding: hex('CapBnd'), effective: hex('CapEff'), permitted: hex('CapPrm'), inheritable: hex('CapInh'), ambient: hex('CapAmb') },
    noNewPrivileges: field('NoNewPrivs') === '1',
    rlimits: [],
    uid: rec.process.uid, gid: rec.process.gid, additionalGids: rec.process.additionalGids,
  };
}
