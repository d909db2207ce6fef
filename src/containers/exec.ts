/**
 * `exec`: run another process inside a running container. It enters the container's namespaces
 * (mount, uts, ipc, net, pid) and root via setns — util-linux nsenter does the setns calls — after
 * joining the container's cgroups, so the new process counts against the same limits. The env is
 * the container's (plus `-e`), the cwd and user default to the container's.
 */
import { spawn, type StdioOptions } from 'node:child_process';
import { JiffyError } from '../errors.js';
import { joinFiles } from './cgroup.js';
import { leafCgroup } from './runtime.js';
import { resolveEnv } from './spec.js';
import type { ContainerRecord } from './types.js';

export interface ExecOptions {
  env?: string[];
  workdir?: string;
  /** Numeric `uid[:gid]`, already resolved by the caller for names. */
  uid?: number;
  gid?: number;
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

/** argv of the nsenter call for `cmd` in `rec` (pid = the container's init). */
export function execArgv(rec: ContainerRecord, cmd: string[], o: ExecOptions): string[] {
  const pid = rec.state.pid!;
  const ns = ['-m', '-u', '-i', '-p', ...(rec.options.network === 'host' ? [] : ['-n'])];
  const uid = o.uid ?? rec.process.uid;
  const gid = o.gid ?? rec.process.gid;
  const cwd = o.workdir ?? rec.process.cwd;
  // Join the cgroups first (a shell writes its own pid, then execs nsenter: no window outside).
  const files = joinFiles(leafCgroup(rec.runtime, rec.cgroupPath));
  return [
    '-c', 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"', 'jiffy-exec', ...files, '--',
    // nsenter opens --wd before entering: reach the container's dir through its root magic link.
    'nsenter', '-t', String(pid), ...ns, '-r', `--wd=/proc/${pid}/root${cwd}`, '-S', String(uid), '-G', String(gid), '--', ...cmd,
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
    child.once('error', (e) => reject(new JiffyError('unavailable', `exec failed to start nsenter: ${e.message}; install util-linux`, { cause: e })));
    child.once('close', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15)));
  });
  return { exitCode, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}
