/**
 * Streaming, bounded exec in a sandbox. The process enters the container exactly as `jiffy exec`
 * does (H5's execArgv: join the container's cgroups, then jiffy-exec into its namespaces, root
 * and security settings; or one launcher `exec` request, ./launched.ts) but its output is
 * streamed, not buffered, and two bounds apply:
 *   - output: once stdout+stderr reach `maxOutputBytes`, the rest is discarded AND the command is
 *     killed (a flood would otherwise keep a CPU busy for nothing); `truncated: true`.
 *   - time: after `timeoutS` the command is killed; `timedOut: true`.
 * "Killed" means SIGKILL to the command and everything it forked. Without a launcher the shell
 * wrapper is spawned as a session leader, jiffy-exec and the command inherit that group, and the
 * group is killed; a process that deliberately leaves the group (setsid) survives until the
 * sandbox goes. With the launcher (./launched.ts) the command runs in the server's group, so its
 * process tree is killed instead (./process-tree.ts).
 * An exec that ends normally leaves its background processes running (a server started for
 * later execs); they hold the output pipes open unless redirected, as with `docker exec`.
 */
import { spawn } from 'node:child_process';
import { PassThrough, Readable, type Writable } from 'node:stream';
import { JiffyError } from '../errors.js';
import { execArgv } from '../containers/exec.js';
import { resolveEnv } from '../containers/spec.js';
import type { ContainerRecord } from '../containers/types.js';
import type { SandboxExecOptions, SandboxExecution } from './types.js';

export const DEFAULT_TIMEOUT_S = 60;
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** What a started command hands to {@link boundedExecution}. */
export interface StartedCommand {
  stdout: Readable | null;
  stderr: Readable | null;
  stdin: Writable | null;
  /** SIGKILL the command and everything it forked. */
  kill(): void;
  /** Settles when the command has exited and its output ended. */
  exited: Promise<{ exitCode: number; signal: string | null }>;
}

/** Start `o.cmd` in the running container `rec`; output streams at once, `done` settles at exit. */
export function execStreaming(rec: ContainerRecord, o: SandboxExecOptions): SandboxExecution {
  checkExec(rec, o);
  const env = resolveEnv({ Env: rec.process.env }, o.env ?? []);
  const child = spawn('/bin/sh', execArgv(rec, o.cmd, { workdir: o.cwd }), {
    stdio: [o.stdin !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: Object.fromEntries(env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
    detached: true, // own process group: one kill reaches nsenter and everything the command forked
  });
  const exited = new Promise<{ exitCode: number; signal: string | null }>((resolve, reject) => {
    child.once('error', (e) => reject(new JiffyError('unavailable', `exec could not start /bin/sh + jiffy-exec: ${e.message}; build it with make -C native`, { cause: e })));
    child.once('close', (code, sig) => resolve({ exitCode: code ?? 128 + signalNo(sig), signal: sig ?? null }));
  });
  const kill = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch { /* already gone */ }
  };
  return boundedExecution({ stdout: child.stdout, stderr: child.stderr, stdin: child.stdin, kill, exited }, o);
}

/** Refuse an exec that cannot run (sandbox not running, empty command). */
export function checkExec(rec: ContainerRecord, o: SandboxExecOptions): void {
  if (rec.state.status !== 'running' || !rec.state.pid) {
    throw new JiffyError('failed_precondition', `sandbox ${rec.id.slice(0, 12)} is not running (${rec.state.status}): snapshot or remove it, then create a new one`);
  }
  if (!o.cmd.length || !o.cmd[0]) throw new JiffyError('invalid_argument', 'exec needs a command, e.g. ["sh","-c","echo hi"]');
}

/** The output and time bounds (see the header) around a started command, however it was started. */
export function boundedExecution(cmd: StartedCommand, o: SandboxExecOptions): SandboxExecution {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const state = { timedOut: false, truncated: false, budget: o.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES };
  // A stream's end is passed on when the source has delivered everything: the exit can be known
  // while output still sits in a paused source (backpressure), so it must not end `dst` itself.
  const forward = (src: Readable | null, dst: PassThrough): Promise<void> => {
    if (!src) {
      dst.end();
      return Promise.resolve();
    }
    const ended = new Promise<void>((resolve) => {
      const fin = () => {
        dst.end();
        resolve();
      };
      src.once('end', fin);
      src.once('close', fin);
      src.once('error', fin);
    });
    src.on('data', (c: Buffer) => {
      if (state.truncated) return;
      if (c.length > state.budget) {
        if (state.budget > 0) dst.write(c.subarray(0, state.budget));
        state.budget = 0;
        state.truncated = true;
        cmd.kill();
        src.resume(); // keep draining to EOF: the exit is reported after the output ends
        return;
      }
      state.budget -= c.length;
      // Backpressure: a slow reader pauses the pipe, so the command blocks instead of us buffering.
      if (!dst.write(c)) {
        src.pause();
        dst.once('drain', () => src.resume());
      }
    });
    return ended;
  };
  const outputEnded = Promise.all([forward(cmd.stdout, stdout), forward(cmd.stderr, stderr)]);
  feedStdin(cmd.stdin, o.stdin);
  const timeoutS = o.timeoutS ?? DEFAULT_TIMEOUT_S;
  const timer = timeoutS > 0 ? setTimeout(() => { state.timedOut = true; cmd.kill(); }, timeoutS * 1000) : undefined;
  const done = cmd.exited.then(
    async (r) => {
      clearTimeout(timer);
      await outputEnded;
      return { ...r, timedOut: state.timedOut, truncated: state.truncated };
    },
    (e) => {
      clearTimeout(timer);
      stdout.end();
      stderr.end();
      throw e;
    },
  );
  return { stdout, stderr, done, kill: cmd.kill };
}

function feedStdin(dst: Writable | null, src: SandboxExecOptions['stdin']): void {
  if (!dst || src === undefined) return;
  // The command may exit without reading its input: EPIPE then is expected, not an error.
  dst.on('error', () => undefined);
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
