/**
 * Streaming, bounded exec in a sandbox. The process enters the container exactly as `jiffy exec`
 * does (H5's execArgv: join the container's cgroups, then nsenter into its mount, uts, ipc, pid
 * and network namespaces and root) but its output is streamed, not buffered, and two bounds apply:
 *   - output: once stdout+stderr reach `maxOutputBytes`, the rest is discarded AND the command is
 *     killed (a flood would otherwise keep a CPU busy for nothing); `truncated: true`.
 *   - time: after `timeoutS` the command is killed; `timedOut: true`.
 * "Killed" means SIGKILL to the exec's whole process group: the shell wrapper is spawned as a
 * session leader, nsenter and the command inherit that group, so children the command forks die
 * too. A process that deliberately leaves the group (setsid) survives until the sandbox goes.
 * An exec that ends normally leaves its background processes running (a server started for
 * later execs); they hold the output pipes open unless redirected, as with `docker exec`.
 */
import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { JiffyError } from '../errors.js';
import { execArgv } from '../containers/exec.js';
import { resolveEnv } from '../containers/spec.js';
import type { ContainerRecord } from '../containers/types.js';
import type { SandboxExecOptions, SandboxExecResult, SandboxExecution } from './types.js';

export const DEFAULT_TIMEOUT_S = 60;
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** Start `o.cmd` in the running container `rec`; output streams at once, `done` settles at exit. */
export function execStreaming(rec: ContainerRecord, o: SandboxExecOptions): SandboxExecution {
  if (rec.state.status !== 'running' || !rec.state.pid) {
    throw new JiffyError('failed_precondition', `sandbox ${rec.id.slice(0, 12)} is not running (${rec.state.status}): snapshot or remove it, then create a new one`);
  }
  if (!o.cmd.length || !o.cmd[0]) throw new JiffyError('invalid_argument', 'exec needs a command, e.g. ["sh","-c","echo hi"]');
  const env = resolveEnv({ Env: rec.process.env }, o.env ?? []);
  const child = spawn('/bin/sh', execArgv(rec, o.cmd, { workdir: o.cwd }), {
    stdio: [o.stdin !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: Object.fromEntries(env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
    detached: true, // own process group: one kill reaches nsenter and everything the command forked
  });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const state = { timedOut: false, truncated: false, budget: o.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES };
  const killGroup = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch { /* already gone */ }
  };
  const forward = (src: Readable | null, dst: PassThrough) => {
    src?.on('data', (c: Buffer) => {
      if (state.truncated) return;
      if (c.length > state.budget) {
        if (state.budget > 0) dst.write(c.subarray(0, state.budget));
        state.budget = 0;
        state.truncated = true;
        killGroup();
        return;
      }
      state.budget -= c.length;
      // Backpressure: a slow reader pauses the pipe, so the command blocks instead of us buffering.
      if (!dst.write(c)) {
        src.pause();
        dst.once('drain', () => src.resume());
      }
    });
  };
  forward(child.stdout, stdout);
  forward(child.stderr, stderr);
  feedStdin(child.stdin, o.stdin);
  const timeoutS = o.timeoutS ?? DEFAULT_TIMEOUT_S;
  const timer = timeoutS > 0 ? setTimeout(() => { state.timedOut = true; killGroup(); }, timeoutS * 1000) : undefined;
  const done = new Promise<SandboxExecResult>((resolve, reject) => {
    child.once('error', (e) => {
      clearTimeout(timer);
      stdout.end();
      stderr.end();
      reject(new JiffyError('unavailable', `exec could not start /bin/sh + nsenter: ${e.message}; install util-linux`, { cause: e }));
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      stdout.end();
      stderr.end();
      resolve({ exitCode: code ?? 128 + signalNo(sig), signal: sig ?? null, timedOut: state.timedOut, truncated: state.truncated });
    });
  });
  return { stdout, stderr, done, kill: killGroup };
}

function feedStdin(dst: NodeJS.WritableStream | null, src: SandboxExecOptions['stdin']): void {
  if (!dst || src === undefined) return;
  // The command may exit without reading its input: EPIPE then is expected, not an error.
  (dst as NodeJS.WritableStream & { on: (e: string, f: () => void) => void }).on('error', () => undefined);
  if (typeof src === 'string' || Buffer.isBuffer(src)) dst.end(src);
  else src.pipe(dst);
}

function signalNo(sig: NodeJS.Signals | null): number {
  return ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1, SIGSEGV: 11, SIGABRT: 6, SIGPIPE: 13 } as Record<string, number>)[sig ?? ''] ?? 0;
}

/** Collect a stream into a Buffer (tests, CLI). */
export async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
