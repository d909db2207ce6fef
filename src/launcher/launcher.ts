/**
 * Binding to the fork-server `jiffy-launch serve` (native/src/serve.c documents the protocol).
 *
 * One Launcher = one server process, spoken to over its stdin/stdout with length-prefixed frames.
 * Each boot costs the server one vfork-style clone, with a cgroup and a network namespace it
 * created ahead of time (while idle). Container stdio are pipes owned by the server and relayed as
 * frames (Node cannot receive fds over a pipe). Errors come back as a code plus a message and
 * become `JiffyError`s; if the server dies, every pending call and every `wait()` fails with
 * `unavailable`.
 *
 * Wire protocol (full description at the top of native/src/serve.c): frames of
 * u32 LE length | u8 type | u32 LE handle | payload, both ways over the server's stdin/stdout.
 *   to server:   0x01 request (JSON {op,...}; handle = request id)   0x02 stdin bytes (empty = close)
 *                0x03 / 0x04 pause / resume reading the process's stdout+stderr (backpressure)
 *   from server: 0x81 reply {ok,...} or {ok:false,code,message,errno}   0x82 stdout / 0x83 stderr
 *                bytes (empty = EOF)   0x84 exit {exitCode,signal,oomKilled,peakMemoryBytes,
 *                cpuTimeUs,wallTimeUs}   0x85 stdin ack (u32 LE bytes written)
 * A booted or exec'd process's handle is its request id; per handle the server sends
 * reply < output < both EOFs < exit.
 *
 * Lifecycle: `Launcher.start()` → boot/exec/... → `close()` (kills what is still running,
 * removes its cgroups, stops the server). The server also cleans up by itself when its stdin
 * closes, so a crashed worker leaves no containers behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { JiffyError, type ErrorCode } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { launcherBinary } from '../paths.js';
import { encodeFrame, FrameDecoder, FrameType, type Frame } from './frames.js';
import type { OciProcess, OciRuntimeSpec } from './oci-spec.js';
import { ProcessIo, type ExitStatus } from './process-io.js';

export type { ExitStatus } from './process-io.js';

export interface LauncherOptions {
  /** jiffy-launch binary (default: native/build/jiffy-launch, JIFFY_LAUNCHER overrides). */
  binary?: string;
  /** Passed as --root to the server. */
  stateRoot?: string;
  logger?: Logger;
}

export interface RootfsOverlay {
  lower: string[];
  upper: string;
  work: string;
  cwd?: string;
}

type StdioMode = 'pipe' | 'null';

export interface BootSpec {
  id: string;
  config: OciRuntimeSpec;
  bundle?: string;
  /** Mounted by the launcher inside the container's mount namespace at config.root.path. */
  rootfsOverlay?: RootfsOverlay;
  stdin?: StdioMode;
  stdout?: StdioMode;
  stderr?: StdioMode;
}

export interface ContainerHandle {
  id: string;
  pid: number;
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  /** Resolves after stdout/stderr have ended. */
  wait(): Promise<ExitStatus>;
  kill(signal?: NodeJS.Signals | number): Promise<void>;
}

export interface ContainerStats {
  memoryBytes: number;
  peakMemoryBytes: number;
  cpuTimeUs: number;
  pids: number;
}

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

const CLOSE_GRACE_MS = 10_000;

function signalArg(sig: NodeJS.Signals | number | undefined): string | number {
  if (sig === undefined) return 'SIGTERM';
  if (typeof sig === 'number') return sig;
  if (!(sig in osConstants.signals)) throw new JiffyError('invalid_argument', `unknown signal ${sig}`);
  return sig;
}

export class Launcher {
  private nextHandle = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly procs = new Map<number, ProcessIo>();
  private readonly decoder = new FrameDecoder();
  private dead: JiffyError | null = null;
  private stderrTail = '';
  private readonly exited: Promise<void>;
  private corked = false;

  private constructor(private readonly child: ChildProcess, private readonly log: Logger) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stdout!.on('data', (c: Buffer) => this.onData(c));
    child.stderr!.on('data', (c: Buffer) => {
      const s = c.toString('utf8');
      this.stderrTail = (this.stderrTail + s).slice(-2000);
      for (const line of s.split('\n')) if (line.trim()) this.log.warn({ server: line.trim() }, 'jiffy-launch serve');
    });
    child.stdin!.on('error', () => undefined); // EPIPE when the server died: reported by 'exit'
    child.once('exit', (code, signal) => this.onServerExit(code, signal));
  }

  /** Pid of the server process (diagnostics and tests). */
  get serverPid(): number | undefined {
    return this.child.pid;
  }

  /** Spawn `jiffy-launch serve` and check that it answers. */
  static async start(opts: LauncherOptions = {}): Promise<Launcher> {
    const bin = opts.binary ?? launcherBinary();
    const args = [...(opts.stateRoot ? ['--root', opts.stateRoot] : []), 'serve'];
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (e) =>
        reject(new JiffyError('unavailable', `cannot start ${bin}: ${e.message}; build it with \`make -C native\``, { cause: e })));
    });
    await spawned;
    const l = new Launcher(child, opts.logger ?? createLogger('launcher'));
    await l.request({ op: 'ping' });
    return l;
  }

  /** Boot a container; resolves once its process runs (setup errors reject here). */
  async boot(spec: BootSpec): Promise<ContainerHandle> {
    const modes = { stdin: spec.stdin ?? 'pipe', stdout: spec.stdout ?? 'pipe', stderr: spec.stderr ?? 'pipe' };
    const req = { op: 'boot', id: spec.id, config: spec.config, bundle: spec.bundle, rootfsOverlay: spec.rootfsOverlay, ...modes };
    return this.startProcess(spec.id, req, modes, (sig) => this.kill(spec.id, sig));
  }

  /** Run another process inside a running container (its namespaces, cgroup and root). */
  async exec(targetId: string, proc: OciProcess, stdio: Pick<BootSpec, 'stdin' | 'stdout' | 'stderr'> = {}): Promise<ContainerHandle> {
    const modes = { stdin: stdio.stdin ?? 'pipe', stdout: stdio.stdout ?? 'pipe', stderr: stdio.stderr ?? 'pipe' };
    const req = { op: 'exec', id: targetId, process: proc, ...modes };
    let handle = 0;
    const h = await this.startProcess(targetId, req, modes, async (sig) => {
      await this.request({ op: 'kill', handle, signal: signalArg(sig) });
    }, (n) => { handle = n; });
    return h;
  }

  private async startProcess(
    id: string,
    req: Record<string, unknown>,
    modes: { stdin: StdioMode; stdout: StdioMode; stderr: StdioMode },
    kill: (sig?: NodeJS.Signals | number) => Promise<void>,
    onHandle?: (n: number) => void,
  ): Promise<ContainerHandle> {
    const handle = this.allocHandle();
    onHandle?.(handle);
    const io = new ProcessIo(handle, (t, h, p) => this.send(t, h, p), {
      stdin: modes.stdin === 'pipe', stdout: modes.stdout === 'pipe', stderr: modes.stderr === 'pipe',
    });
    this.procs.set(handle, io);
    let reply: Record<string, unknown>;
    try {
      reply = await this.request(req, handle);
    } catch (e) {
      this.procs.delete(handle);
      throw e;
    }
    let finished = false;
    void io.exited.then(() => { finished = true; }, () => { finished = true; });
    return {
      id,
      pid: reply.pid as number,
      stdin: io.stdin,
      stdout: io.stdout,
      stderr: io.stderr,
      wait: () => io.exited,
      // A process that already ended cannot be signalled; that is not an error for its handle.
      kill: async (sig) => { if (!finished) await kill(sig).catch((e) => { if (!finished) throw e; }); },
    };
  }

  async kill(id: string, signal?: NodeJS.Signals | number): Promise<void> {
    await this.request({ op: 'kill', id, signal: signalArg(signal) });
  }

  /** Freeze every process of the container (cgroup freezer); used by commit. */
  async pause(id: string): Promise<void> {
    await this.request({ op: 'pause', id });
  }

  async resume(id: string): Promise<void> {
    await this.request({ op: 'resume', id });
  }

  async stats(id: string): Promise<ContainerStats> {
    const r = await this.request({ op: 'stats', id });
    return { memoryBytes: r.memoryBytes as number, peakMemoryBytes: r.peakMemoryBytes as number, cpuTimeUs: r.cpuTimeUs as number, pids: r.pids as number };
  }

  /** Overlay mount in the HOST mount namespace (image store warm cache, commit/diff/cp). */
  async mountOverlay(o: { lower: string[]; upper?: string; work?: string; target: string; readonly?: boolean; cwd?: string }): Promise<void> {
    await this.request({ op: 'mount-overlay', ...o });
  }

  async umount(target: string, opts: { detach?: boolean } = {}): Promise<void> {
    await this.request({ op: 'umount', target, detach: opts.detach ?? false });
  }

  /** Kill remaining containers, remove their cgroups, stop the server. */
  async close(): Promise<void> {
    if (!this.dead) {
      this.child.stdin!.end(); // stdin EOF = orderly shutdown in the server
      const timer = setTimeout(() => this.child.kill('SIGKILL'), CLOSE_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    }
    await this.exited;
  }

  private allocHandle(): number {
    const h = this.nextHandle;
    this.nextHandle = this.nextHandle >= 0xfffffff0 ? 1 : this.nextHandle + 1;
    return h;
  }

  private send(type: number, handle: number, payload?: Buffer): void {
    if (this.dead) return;
    const stdin = this.child.stdin!;
    // Frames sent in one tick (many instances written to at once) go out as one writev, and the
    // server reads them with one read: fewer syscalls both sides, same latency.
    if (!this.corked) {
      this.corked = true;
      stdin.cork();
      process.nextTick(() => {
        this.corked = false;
        stdin.uncork();
      });
    }
    stdin.write(encodeFrame(type, handle, payload));
  }

  private request(body: Record<string, unknown>, handle = this.allocHandle()): Promise<Record<string, unknown>> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.pending.set(handle, { resolve, reject });
      this.send(FrameType.request, handle, Buffer.from(JSON.stringify(body)));
    });
  }

  private onData(chunk: Buffer): void {
    for (const f of this.decoder.push(chunk)) this.onFrame(f);
  }

  private onFrame(f: Frame): void {
    switch (f.type) {
      case FrameType.reply: {
        const p = this.pending.get(f.handle);
        if (!p) return;
        this.pending.delete(f.handle);
        const r = JSON.parse(f.payload.toString('utf8')) as Record<string, unknown>;
        if (r.ok) p.resolve(r);
        else p.reject(new JiffyError((r.code as ErrorCode) ?? 'internal', String(r.message), { details: { errno: r.errno } }));
        return;
      }
      case FrameType.stdout:
      case FrameType.stderr:
        this.procs.get(f.handle)?.onOutput(f.type === FrameType.stdout ? 'stdout' : 'stderr', f.payload);
        return;
      case FrameType.stdinAck:
        this.procs.get(f.handle)?.onStdinAck(f.payload.readUInt32LE(0));
        return;
      case FrameType.exit: {
        const io = this.procs.get(f.handle);
        this.procs.delete(f.handle);
        io?.onExit(JSON.parse(f.payload.toString('utf8')) as ExitStatus);
        return;
      }
      default:
        this.log.warn({ type: f.type }, 'unknown frame from jiffy-launch serve');
    }
  }

  private onServerExit(code: number | null, signal: NodeJS.Signals | null): void {
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    const tail = this.stderrTail.trim() ? `; its last words: ${this.stderrTail.trim().split('\n').slice(-3).join(' | ')}` : '';
    this.dead = new JiffyError('unavailable', `the launcher server stopped (${how})${tail}; start a new Launcher`);
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
    for (const io of this.procs.values()) io.fail(this.dead);
    this.procs.clear();
  }
}
