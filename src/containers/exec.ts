/**
 * `exec`: run another process inside a running container. A shell joins the container's cgroups
 * (it writes its own pid, then execs, so no window outside), then execs `jiffy-exec`
 * (native/exec/exec.c), which enters the container's namespaces and root and gives the new process
 * exactly the container's process security settings from its config.json (./security.ts):
 * capability sets, no_new_privs, rlimits, uid/gid/additional gids (or the `-u` override).
 * util-linux nsenter alone would leave the host root's full capability set on the new process.
 * The env is the container's (plus `-e`), the cwd and user default to the container's.
 */
import { spawn, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { JiffyError } from '../errors.js';
import { repoRoot } from '../paths.js';
import { joinFiles } from './cgroup.js';
import { leafCgroup } from './runtime.js';
import { CAP_SETS, processSecurity } from './security.js';
import { resolveEnv } from './spec.js';
import type { ContainerRecord } from './types.js';

export interface ExecOptions {
  env?: string[];
  workdir?: string;
  /** Numeric `uid[:gid]`, already resolved by the caller for names. */
  uid?: number;
  gid?: number;
  /** Supplementary groups with a `uid` override (default: the container's when no override). */
  additionalGids?: number[];
  /** 'inherit' (CLI) or 'pipe' (collect output; stdin from `input`). */
  stdio?: 'inherit' | 'pipe';
  /** Keep stdin open (`-i`); otherwise stdin is /dev/null. */
  interactive?: boolean;
  input?: Buffer | string;
}

export interface ExecResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
}

/** The exec helper binary (JIFFY_EXEC_HELPER overrides); built by `make -C native`. */
export function execHelper(): string {
  const bin = process.env.JIFFY_EXEC_HELPER || path.join(repoRoot(), 'native', 'build', 'jiffy-exec');
  if (!existsSync(bin)) throw new JiffyError('failed_precondition', `exec helper ${bin} is missing: build it with make -C native (or npm run setup)`);
  return bin;
}

/**
 * argv for `/bin/sh` that runs `cmd` in `rec` (its init's pid): join the cgroups, then jiffy-exec.
 * The caller spawns `/bin/sh` with these args and the container's env (sandboxes use this too).
 */
export function execArgv(rec: ContainerRecord, cmd: string[], o: ExecOptions): string[] {
  const sec = processSecurity(rec);
  const override = o.uid !== undefined;
  const uid = o.uid ?? sec.uid;
  const gid = o.gid ?? (override ? uid : sec.gid);
  const groups = override ? o.additionalGids ?? [] : sec.additionalGids;
  const flags = ['--pid', String(rec.state.pid!), '--uid', String(uid), '--gid', String(gid), '--cwd', o.workdir ?? rec.process.cwd];
  if (groups.length) flags.push('--groups', groups.join(','));
  for (const set of CAP_SETS) flags.push(`--cap-${set}`, sec.caps[set].toString(16));
  if (sec.noNewPrivileges) flags.push('--no-new-privs');
  for (const [res, soft, hard] of sec.rlimits) flags.push('--rlimit', `${res}=${soft}:${hard}`);
  const files = joinFiles(leafCgroup(rec.runtime, rec.cgroupPath));
  return [
    '-c', 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"', 'jiffy-exec', ...files, '--',
    execHelper(), ...flags, '--', ...cmd,
  ];
}

/** Run `cmd` in running container `rec`; resolves with its exit code (and output with stdio 'pipe'). */
export async function execInContainer(rec: ContainerRecord, cmd: string[], o: ExecOptions = {}): Promise<ExecResult> {
  if (rec.state.status !== 'running' || !rec.state.pid) {
    throw new JiffyError('failed_precondition', `container ${rec.name} is not running (${rec.state.status}): start it first (jiffy start ${rec.name})`);
  }
  if (cmd.length === 0) throw new JiffyError('invalid_argument', 'exec needs a command');
  const env = resolveEnv({ Env: rec.process.env }, o.env ?? []);
  const pipe = o.stdio === 'pipe';
  const stdin = o.interactive || o.input !== undefined ? (pipe ? 'pipe' : 'inherit') : 'ignore';
  const stdio: StdioOptions = [stdin, pipe ? 'pipe' : 'inherit', pipe ? 'pipe' : 'inherit'];
  const child = spawn('/bin/sh', execArgv(rec, cmd, o), { stdio, env: Object.fromEntries(env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => err.push(c));
  if (o.input !== undefined && child.stdin) child.stdin.end(o.input);
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.once('error', (e) => reject(new JiffyError('unavailable', `exec failed to start /bin/sh + jiffy-exec: ${e.message}; run npm run setup`, { cause: e })));
    child.once('close', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15)));
  });
  return { exitCode, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}
