import { randomBytes } from 'node:crypto';
import { LogBuffer, type OutcomeCode } from '../functions/outcome.js';
import { encodeRequest, ReplyParser, type ShimReply, type ShimRequest } from '../functions/protocol.js';
import type { FunctionVersion } from '../functions/spec.js';
import { SHIM_DIR, TASK_ROOT, type ExitInfo, type SpawnedProcess, type Spawner } from './spawner.js';

type ResultReply = Extract<ShimReply, { type: 'result' }>;

interface Pending {
  resolve: (r: ResultReply) => void;
  reject: (e: InstanceError) => void;
  logs: LogBuffer;
  timer: NodeJS.Timeout;
}

/** Why an invocation on an instance did not produce a reply; `code` maps to an HTTP status. */
export class InstanceError extends Error {
  override name = 'InstanceError';
  constructor(readonly code: OutcomeCode, message: string, readonly details: Record<string, unknown> = {}, readonly logs = '') {
    super(message);
  }
}

/** Command line that starts a runtime's shim inside the container. */
export function shimArgs(runtime: 'node' | 'python'): string[] {
  return runtime === 'node'
    ? ['/usr/bin/node', `${SHIM_DIR}/shim.mjs`]
    : ['/usr/bin/python3', '-u', `${SHIM_DIR}/shim.py`];
}

/**
 * One warm instance: a container whose runtime shim loaded the handler once and serves many
 * invocations over stdin/stdout. Dies on timeout (killed, so a stuck handler cannot poison the
 * next call), on crash, or when reaped idle; `dead` instances are dropped by the pool.
 */
export class Instance {
  inflight = 0;
  lastUsed = Date.now();
  dead = false;
  exit?: ExitInfo;
  readonly bootMs: number;
  initMs = 0;
  private readonly pending = new Map<string, Pending>();
  private readonly exited: Promise<ExitInfo>;
  private readyWaiter?: { resolve: () => void; reject: (e: Error) => void };
  /** Output while nothing is in flight (shown when init fails). */
  private readonly stray = new LogBuffer(8192);

  private constructor(readonly id: string, readonly fn: FunctionVersion, private readonly proc: SpawnedProcess, bootMs: number, nonce: string) {
    this.bootMs = bootMs;
    const parser = new ReplyParser(nonce, (r) => this.onReply(r), (t) => this.onStray(t));
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c: string) => parser.push(c));
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (c: string) => this.onStray(c));
    proc.stdin.on('error', () => {}); // EPIPE when the shim died: surfaced through wait()
    this.exited = proc.wait().then((x) => this.onExit(x));
  }

  /** Boots a container running the runtime shim and waits for its `ready`. */
  static async start(spawner: Spawner, fn: FunctionVersion, id: string, initTimeoutMs: number): Promise<Instance> {
    const nonce = randomBytes(8).toString('hex');
    const t0 = performance.now();
    const proc = await spawner.spawn({
      id,
      fn,
      args: shimArgs(fn.settings.runtime as 'node' | 'python'),
      env: { ...fn.settings.env, JIFFY_NONCE: nonce, JIFFY_HANDLER: fn.settings.handler, JIFFY_TASK_ROOT: TASK_ROOT, JIFFY_FUNCTION: fn.name },
      cwd: TASK_ROOT,
    });
    const inst = new Instance(id, fn, proc, performance.now() - t0, nonce);
    const t1 = performance.now();
    await inst.waitReady(initTimeoutMs);
    inst.initMs = performance.now() - t1;
    return inst;
  }

  private waitReady(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill();
        reject(new InstanceError('init_failed', `runtime did not become ready within ${timeoutMs} ms (${this.stray.toString().slice(-500)})`));
      }, timeoutMs);
      this.readyWaiter = {
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  private onReply(r: ShimReply): void {
    if (r.type === 'ready') return this.readyWaiter?.resolve();
    if (r.type === 'init_error') {
      this.readyWaiter?.reject(new InstanceError('init_failed', `handler ${this.fn.settings.handler} failed to load: ${r.error.message}`, { error: r.error }));
      return;
    }
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    clearTimeout(p.timer);
    p.logs.append(r.logs ?? '');
    p.resolve({ ...r, logs: p.logs.toString() });
  }

  /** Untagged stdout and all stderr: filed under the logs of whatever is in flight. */
  private onStray(text: string): void {
    if (this.pending.size === 0) this.stray.append(text);
    for (const p of this.pending.values()) p.logs.append(text);
  }

  private onExit(x: ExitInfo): ExitInfo {
    this.dead = true;
    this.exit = x;
    const err = crashError(this.fn, x);
    this.readyWaiter?.reject(new InstanceError(err.code, `${err.message} while loading the handler: ${this.stray.toString().slice(-1000)}`, err.details));
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new InstanceError(err.code, err.message, err.details, p.logs.toString()));
      this.pending.delete(id);
    }
    return x;
  }

  /** Sends one request; resolves with the shim's reply or rejects with an InstanceError. */
  invoke(req: ShimRequest, timeoutMs: number): Promise<ResultReply> {
    if (this.dead) return Promise.reject(new InstanceError('function_crashed', 'instance is gone'));
    this.inflight++;
    this.lastUsed = Date.now();
    return new Promise<ResultReply>((resolve, reject) => {
      const timer = setTimeout(() => this.onTimeout(req.id, timeoutMs), timeoutMs);
      // Room above the shim's own 64 KiB cap so the shim's truncation note survives.
      this.pending.set(req.id, { resolve, reject, logs: new LogBuffer(65536 + 1024), timer });
      this.proc.stdin.write(encodeRequest(req));
    }).finally(() => {
      this.inflight--;
      this.lastUsed = Date.now();
    });
  }

  private onTimeout(id: string, timeoutMs: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.reject(new InstanceError('deadline_exceeded', `function ${this.fn.name}@${this.fn.version} did not finish within its ${seconds(timeoutMs)} s timeout; the instance was killed (raise --timeout if it needs longer)`, { timeoutMs }, p.logs.toString()));
    this.kill();
  }

  /** Kills the container (SIGKILL) and waits for it to be gone. */
  async kill(): Promise<ExitInfo> {
    this.dead = true;
    try { this.proc.kill('SIGKILL'); } catch { /* already gone */ }
    return this.exited;
  }

  /** Asks the shim to exit by closing its stdin; kills it if it lingers. */
  async stop(graceMs = 1000): Promise<void> {
    this.dead = true;
    this.proc.stdin.end();
    const t = setTimeout(() => { try { this.proc.kill('SIGKILL'); } catch { /* gone */ } }, graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

/** "0.5", "30", "1.25": seconds for messages. */
export function seconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(2)));
}

/** Turns an exit status into the outcome error a caller sees (OOM named as such). */
export function crashError(fn: FunctionVersion, x: ExitInfo): { code: OutcomeCode; message: string; details: Record<string, unknown> } {
  const details: Record<string, unknown> = { exitCode: x.exitCode, signal: x.signal, oomKilled: x.oomKilled, peakMemoryBytes: x.peakMemoryBytes };
  if (x.oomKilled) {
    return { code: 'out_of_memory', message: `function ${fn.name}@${fn.version} ran out of memory (limit ${fn.settings.memoryMb} MiB) and was killed by the OOM killer; raise --memory`, details };
  }
  const how = x.signal != null ? `was killed by signal ${x.signal}` : `exited with code ${x.exitCode}`;
  return { code: 'function_crashed', message: `function ${fn.name}@${fn.version} crashed: its process ${how}`, details };
}

