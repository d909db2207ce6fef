import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { deployQuery, tarDir } from '../../src/functions/client.js';
import { repoRoot } from '../../src/paths.js';
import { freePort } from '../../src/queue/redis-server.js';

/**
 * Real OS processes for fault-injection tests (test/faults-*.test.ts): `node bin/jiffy gateway`,
 * `jiffy worker`, one-shot CLI commands and a redis-server with AOF on, each started by the test
 * with its own JIFFY_ROOT, Redis URL and key prefix, so the test can SIGKILL, SIGTERM or restart
 * any one of them and watch what the others do. Output is collected for failure messages.
 * Every process is started in its own process group (detached) so cleanup can end it and the
 * launcher processes it started, and nothing else.
 */

/** Exit of a child: code or signal. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One child process and its collected output (stdout and stderr interleaved). */
export class ChildHandle {
  private output = '';
  private readonly listeners = new Set<() => void>();
  readonly exited: Promise<Exit>;

  constructor(readonly label: string, readonly child: ChildProcess) {
    const take = (c: Buffer) => {
      this.output += c.toString('utf8');
      for (const l of this.listeners) l();
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      for (const l of this.listeners) l();
      resolve({ code, signal });
    }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything the process wrote so far. */
  logs(): string {
    return this.output;
  }

  /** Waits for output matching `re`; fails with the logs when the process exits first or time runs out. */
  waitForOutput(re: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.output);
        if (m) return done(() => resolve(m));
        if (!this.alive) done(() => reject(new Error(`${this.label} exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${re}; output:\n${this.tail()}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${this.label} did not print ${re} within ${timeoutMs} ms; output:\n${this.tail()}`))), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        f();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** The last lines of output (for assertion messages). */
  tail(lines = 40): string {
    return this.output.trim().split('\n').slice(-lines).join('\n');
  }

  /** Sends `sig` to this process only (not its children) and waits for it to exit. */
  async kill(sig: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    if (this.alive) this.child.kill(sig);
    return this.exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; returns how it exited. */
  async stop(graceMs = 10_000): Promise<Exit> {
    if (!this.alive) return this.exited;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const e = await this.exited;
    clearTimeout(t);
    return e;
  }

  /** SIGKILLs the whole process group this child leads (it and anything it started that stayed in it). */
  killGroup(): void {
    try { process.kill(-this.pid, 'SIGKILL'); } catch { /* group already empty */ }
  }
}

/** Where a jiffy process keeps its state and which Redis (and key prefix) it uses. */
export interface JiffyEnv {
  root: string;
  redisUrl: string;
  prefix: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

function jiffyEnv(o: { root: string; redisUrl?: string; env?: Record<string, string> }): NodeJS.ProcessEnv {
  return { ...process.env, JIFFY_ROOT: o.root, ...(o.redisUrl ? { REDIS_URL: o.redisUrl } : {}), JIFFY_LOG_LEVEL: process.env.JIFFY_LOG_LEVEL ?? 'warn', ...o.env };
}

/** Starts `node bin/jiffy ARGS` as a child in its own process group. */
export function spawnJiffy(label: string, args: string[], o: { root: string; redisUrl?: string; env?: Record<string, string> }): ChildHandle {
  const child = spawn(process.execPath, [path.join(repoRoot(), 'bin', 'jiffy'), ...args], { env: jiffyEnv(o), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  return new ChildHandle(label, child);
}

/** Runs a one-shot `jiffy ARGS` to its end. */
export async function runJiffy(args: string[], o: { root: string; env?: Record<string, string>; timeoutMs?: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(repoRoot(), 'bin', 'jiffy'), ...args], { env: jiffyEnv(o), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, o.timeoutMs ?? 120_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** A `jiffy gateway` process on a free loopback port. */
export interface GatewayProcess {
  proc: ChildHandle;
  url: string;
}

/** Starts `jiffy gateway` (port 0: the kernel picks a free one) and waits until it serves. */
export async function startGateway(o: JiffyEnv, label = 'gateway'): Promise<GatewayProcess> {
  const proc = spawnJiffy(label, ['gateway', '--port', '0', '--host', '127.0.0.1', '--prefix', o.prefix, '--redis', o.redisUrl], o);
  const m = await proc.waitForOutput(/jiffy gateway: (http:\/\/\S+)/);
  return { proc, url: m[1]! };
}

/** A `jiffy worker` process and the id it serves under (its container ids start with it). */
export interface WorkerProcess {
  proc: ChildHandle;
  id: string;
}

/** Starts `jiffy worker` and waits until it serves every deployed function's queue. */
export async function startWorker(o: JiffyEnv, label = 'worker'): Promise<WorkerProcess> {
  const proc = spawnJiffy(label, ['worker', '--prefix', o.prefix, '--redis', o.redisUrl], o);
  const m = await proc.waitForOutput(/jiffy worker (\S+): serving/);
  return { proc, id: m[1]! };
}

/** A `jiffy up` process (gateway, worker and, unless REDIS_URL is set, its private redis-server). */
export interface UpProcess {
  proc: ChildHandle;
  url: string;
  redisUrl: string;
}

/** Starts `jiffy up` on a free port with its own store root (and its private Redis under it). */
export async function startUp(o: { root: string; prefix: string; env?: Record<string, string> }, label = 'up'): Promise<UpProcess> {
  const proc = spawnJiffy(label, ['up', '--port', '0', '--host', '127.0.0.1', '--prefix', o.prefix], { root: o.root, env: { REDIS_URL: '', ...o.env } });
  const m = await proc.waitForOutput(/jiffy is up: (http:\/\/\S+) \(redis (redis:\/\/\S+),/);
  return { proc, url: m[1]!, redisUrl: m[2]! };
}

/** Pids of redis-server processes whose working dir is `dir` (how `jiffy up` starts its private one). */
export async function redisServersIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const p of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const comm = (await fs.readFile(`/proc/${p}/comm`, 'utf8').catch(() => '')).trim();
    if (comm !== 'redis-server') continue;
    if ((await fs.readlink(`/proc/${p}/cwd`).catch(() => '')) === dir) pids.push(Number(p));
  }
  return pids;
}

/**
 * A redis-server child with AOF on (`--appendonly yes --dir <dir>`), which can be shut down
 * (SHUTDOWN: AOF flushed) and started again on the same port and dir.
 */
export class RedisProcess {
  proc?: ChildHandle;
  private starts = 0;

  private constructor(readonly dir: string, readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts a redis-server on a free port with its data in `dir`. */
  static async start(dir: string): Promise<RedisProcess> {
    const r = new RedisProcess(dir, await freePort());
    await r.restart();
    return r;
  }

  /** (Re)starts the server on the same port and dir; waits until it answers PING. */
  async restart(): Promise<void> {
    if (this.proc?.alive) throw new Error('redis-server is still running');
    await fs.mkdir(this.dir, { recursive: true });
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--daemonize', 'no', '--logfile', 'redis.log'];
    const child = spawn('redis-server', args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.proc = new ChildHandle(`redis-server#${++this.starts}`, child);
    const spawned = await new Promise<Error | null>((resolve) => { child.once('spawn', () => resolve(null)); child.once('error', resolve); });
    if (spawned) throw new Error(`cannot start redis-server (${spawned.message}): install it with apt-get install redis-server`);
    await waitUntil(`redis-server on ${this.url} to answer PING`, () => this.ping(), 15_000);
  }

  private async ping(): Promise<boolean> {
    if (!this.proc?.alive) {
      const log = await fs.readFile(path.join(this.dir, 'redis.log'), 'utf8').catch(() => '');
      throw new Error(`redis-server exited: ${log.trim().split('\n').slice(-3).join(' | ')}`);
    }
    const r = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      return (await r.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  }

  /** `SHUTDOWN` (the AOF is flushed first), then waits for the process to exit. */
  async shutdown(): Promise<Exit> {
    const r = new Redis(this.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    await r.shutdown().catch(() => {}); // the connection drops as the server exits
    r.disconnect();
    return this.proc!.exited;
  }

  /** Stops the server for good (cleanup). */
  async stop(): Promise<void> {
    if (!this.proc?.alive) return;
    await this.proc.stop(5000);
  }
}

/** Polls `f` until it returns something other than undefined/false; fails naming `what`. */
export async function waitUntil<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Tars `files` (name → text; `handler` and `*.sh` executable) and deploys them through a gateway. */
export async function deployFunction(url: string, name: string, files: Record<string, string>, settings: Record<string, unknown> & { runtime: string }): Promise<{ version: number; preparedOn: string[] }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-fault-src-'));
  try {
    for (const [f, text] of Object.entries(files)) {
      await fs.writeFile(path.join(dir, f), text, { mode: f === 'handler' || f.endsWith('.sh') ? 0o755 : 0o644 });
    }
    const res = await fetch(`${url}/v1/functions/${name}?${deployQuery(settings)}`, { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: new Uint8Array(await tarDir(dir)) });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`deploy ${name} failed: ${res.status} ${text}`);
    return JSON.parse(text) as { version: number; preparedOn: string[] };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** POSTs an invocation; `mode` async gets 202 and an id. */
export function invoke(url: string, ref: string, body: string, mode?: 'async', headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/v1/functions/${ref}/invoke${mode ? '?mode=async' : ''}`, { method: 'POST', body, headers });
}

/** `GET /v1/invocations/:id` as JSON (with the HTTP status). */
export async function invocation(url: string, id: string): Promise<Record<string, unknown> & { httpStatus: number }> {
  const res = await fetch(`${url}/v1/invocations/${encodeURIComponent(id)}`);
  return { ...((await res.json()) as Record<string, unknown>), httpStatus: res.status };
}

/** Mount points under `dir` (from this process's mount table, which a test shares with its children). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const m = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return m.split('\n').map((l) => l.split(' ')[4] ?? '').filter((p) => p === dir || p.startsWith(`${dir}/`));
}

/** Lazily unmounts every mount under `dir`, deepest first (cleanup after a test, even a failed one). */
export async function unmountUnder(dir: string): Promise<void> {
  for (const m of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) {
    await new Promise<void>((resolve) => execFile('umount', ['-l', m], () => resolve()));
  }
}

/** Removes a test's temp root: unmounts what is mounted under it first, so rm never walks into a mount. */
export async function removeRoot(dir: string | undefined): Promise<void> {
  if (!dir) return;
  await unmountUnder(dir);
  await fs.rm(dir, { recursive: true, force: true });
}

/**
 * Entries named `<idPrefix>…` one level below any top-level dir of a store root (containers/,
 * fn-instances/, …): where a worker keeps per-container bundles, whatever the layout.
 */
export async function dirsWithPrefix(root: string, idPrefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const top of await fs.readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (!top.isDirectory()) continue;
    const names = await fs.readdir(path.join(root, top.name)).catch(() => [] as string[]);
    for (const n of names) if (n.startsWith(idPrefix)) found.push(`${top.name}/${n}`);
  }
  return found;
}

/** Everything a worker's containers could leave behind: host mounts, bundle dirs, cgroups, processes. */
export async function workerLeftovers(root: string, workerId: string): Promise<string[]> {
  const mounts = (await mountsUnder(root)).filter((m) => m.includes(`/${workerId}-`)).map((m) => `mount ${m}`);
  const dirs = (await dirsWithPrefix(root, `${workerId}-`)).map((d) => `dir ${d}`);
  const cgroups = (await cgroupsWithPrefix(`${workerId}-`)).map((c) => `cgroup ${c}`);
  const procs = (await processesMentioning(`${workerId}-`)).map((p) => `process ${p}`);
  return [...mounts, ...dirs, ...cgroups, ...procs];
}

/** Cgroups named `jiffy/<id>` (launcher cgroups) whose id starts with `idPrefix`, in every hierarchy. */
export async function cgroupsWithPrefix(idPrefix: string): Promise<string[]> {
  const found: string[] = [];
  const base = '/sys/fs/cgroup';
  const hierarchies = [base, ...(await fs.readdir(base).catch(() => [] as string[])).map((h) => path.join(base, h))];
  for (const h of hierarchies) {
    const names = await fs.readdir(path.join(h, 'jiffy')).catch(() => [] as string[]);
    for (const n of names) if (n.startsWith(idPrefix)) found.push(path.join(h, 'jiffy', n));
  }
  return found;
}

/** Pids of processes (any, including container processes) whose command line mentions `needle`. */
export async function processesMentioning(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const p of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    const cmd = await fs.readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(needle)) pids.push(Number(p));
  }
  return pids;
}
