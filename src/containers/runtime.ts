/**
 * The OCI runtime command line the containers run under. Jiffy's own launcher speaks the same CLI
 * as runc/crun (`--root DIR run|create|start|state|kill|delete [--bundle DIR] [--pid-file F] ID`), so
 * this adapter is one argv builder: `jiffy-launch` when it is built, else runc (crun refuses
 * hybrid cgroup hosts). JIFFY_OCI_RUNTIME picks another binary explicitly.
 *
 * The two kinds differ in who owns the cgroup. jiffy-launch creates `jiffy/<id>` itself, applies
 * the spec's limits there and reports the exit (code, signal, OOM kill, peak memory) as JSON with
 * `--report`. A generic OCI runtime gets `cgroupsPath = /jiffy/<id>/c` below a level Jiffy creates
 * with the memory limit on it, so OOM kills and peak memory stay readable after the runtime has
 * removed its own cgroup (see ./cgroup.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { JiffyError } from '../errors.js';
import { launcherBinary, storePaths } from '../paths.js';

const run = promisify(execFile);

/** Which runtime a container was created with (recorded, so every later call uses the same). */
export interface RuntimeProfile {
  bin: string;
  kind: 'jiffy-launch' | 'oci';
}

/** The runtime for new containers. */
export function currentRuntime(): RuntimeProfile {
  const bin = runtimeBinary();
  return { bin, kind: path.basename(bin) === 'jiffy-launch' ? 'jiffy-launch' : 'oci' };
}

/** The cgroup (relative path) the container's processes live in, for exec to join. */
export function leafCgroup(profile: RuntimeProfile, cgroupPath: string): string {
  return profile.kind === 'jiffy-launch' ? cgroupPath : `${cgroupPath}/c`;
}

/** The runtime binary to use. */
export function runtimeBinary(): string {
  const env = process.env.JIFFY_OCI_RUNTIME;
  if (env) return env;
  const own = launcherBinary();
  if (existsSync(own)) return own;
  for (const p of ['/usr/sbin/runc', '/usr/bin/runc']) if (existsSync(p)) return p;
  throw new JiffyError('failed_precondition', `no container runtime: build the launcher (make -C native) or install runc (apt-get install runc)`);
}

/** Where the runtime keeps its per-container state (its `--root`). */
export function runtimeRoot(storeRoot: string): string {
  return path.join(storePaths(storeRoot).run, 'oci');
}

/** argv for `run`: boot the bundle and wait; the runtime exits with the container's status. */
export function runArgv(profile: RuntimeProfile, storeRoot: string, runtimeId: string, bundle: string, pidFile: string, reportFile: string): [string, string[]] {
  const report = profile.kind === 'jiffy-launch' ? ['--report', reportFile] : [];
  return [profile.bin, ['--root', runtimeRoot(storeRoot), 'run', '--bundle', bundle, '--pid-file', pidFile, ...report, runtimeId]];
}

/** Forget the runtime's state for a container (after it stopped); missing state is fine. */
export async function runtimeDelete(profile: RuntimeProfile, storeRoot: string, runtimeId: string): Promise<void> {
  const root = runtimeRoot(storeRoot);
  if (!existsSync(path.join(root, runtimeId))) return;
  await run(profile.bin, ['--root', root, 'delete', '--force', runtimeId]).catch(() => undefined);
}

const SIGNALS: Record<number, string> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL',
  10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM',
};

/** Signal name for a runtime exit code of 128+n (how OCI runtimes report a signal death). */
export function signalOfExitCode(code: number): string | undefined {
  return code > 128 && code < 160 ? SIGNALS[code - 128] ?? `SIG${code - 128}` : undefined;
}

/** Signal number from `SIGTERM`, `TERM`, `15`. */
export function signalNumber(sig: string | number): number {
  if (typeof sig === 'number') return sig;
  if (/^\d+$/.test(sig)) return Number(sig);
  const name = sig.toUpperCase().startsWith('SIG') ? sig.toUpperCase() : `SIG${sig.toUpperCase()}`;
  const n = Object.entries(SIGNALS).find(([, v]) => v === name)?.[0];
  if (!n) throw new JiffyError('invalid_argument', `unknown signal ${sig}: use a name like TERM, KILL, HUP or a number`);
  return Number(n);
}
