import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { deployQuery, tarDir } from '../src/functions/client.js';
import { serveGateway, type GatewayServer } from '../src/gateway/server.js';
import { ImageStore } from '../src/images/store.js';
import { createLogger } from '../src/log.js';
import { createKeys, type Keys } from '../src/queue/keys.js';
import { createSpawner } from '../src/worker/spawners.js';
import type { Spawner } from '../src/worker/spawner.js';
import { FunctionWorker } from '../src/worker/worker.js';
import { startTestRedis, type TestRedis } from './support/redis.js';

/**
 * A real function stack for integration tests: private Redis, temp store root, a worker booting
 * real containers through the launcher, and the gateway on an ephemeral port. Gateway and worker
 * can be stopped and restarted separately (restart tests).
 */
export class Stack {
  gateway?: GatewayServer;
  worker?: FunctionWorker;
  spawner?: Spawner;
  readonly keys: Keys;
  private readonly log = createLogger('test', process.env.JIFFY_LOG_LEVEL ?? 'warn');

  private constructor(readonly redis: TestRedis, readonly root: string, readonly store: ImageStore) {
    this.keys = createKeys(redis.prefix('fn'));
  }

  static async start(): Promise<Stack> {
    const redis = await startTestRedis();
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-fn-test-'));
    const s = new Stack(redis, root, await ImageStore.open(root));
    await s.startWorker();
    await s.startGateway();
    return s;
  }

  get url(): string {
    return this.gateway!.url;
  }

  async startWorker(): Promise<void> {
    this.spawner = await createSpawner(this.store, this.log);
    this.worker = await FunctionWorker.start({ redisUrl: this.redis.url, keys: this.keys, spawner: this.spawner, log: this.log });
  }

  async stopWorker(): Promise<void> {
    await this.worker?.close();
    await this.spawner?.close();
    this.worker = undefined;
    this.spawner = undefined;
  }

  async startGateway(): Promise<void> {
    this.gateway = await serveGateway({ redisUrl: this.redis.url, keys: this.keys, store: this.store, log: this.log, port: 0, host: '127.0.0.1' });
  }

  async stopGateway(): Promise<void> {
    await this.gateway?.close();
    this.gateway = undefined;
  }

  /** Writes `files` to a temp dir and deploys it; returns the gateway's JSON answer. */
  async deploy(name: string, files: Record<string, string>, settings: Record<string, unknown> & { runtime: string }): Promise<{ version: number; preparedOn: string[] }> {
    const dir = await fs.mkdtemp(path.join(this.root, 'src-'));
    for (const [f, text] of Object.entries(files)) {
      await fs.writeFile(path.join(dir, f), text, { mode: f === 'handler' || f.endsWith('.sh') ? 0o755 : 0o644 });
    }
    const res = await fetch(`${this.url}/v1/functions/${name}?${deployQuery(settings)}`, { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: new Uint8Array(await tarDir(dir)) });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`deploy ${name} failed: ${res.status} ${text}`);
    return JSON.parse(text);
  }

  invoke(ref: string, body: unknown, mode?: 'async'): Promise<Response> {
    const data = typeof body === 'string' ? body : JSON.stringify(body);
    return fetch(`${this.url}/v1/functions/${ref}/invoke${mode ? '?mode=async' : ''}`, { method: 'POST', body: data, headers: { 'content-type': 'application/json' } });
  }

  /** Polls an invocation until it finished. */
  async result(id: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const j = (await (await fetch(`${this.url}/v1/invocations/${id}`)).json()) as Record<string, unknown>;
      if (j.status === 'succeeded' || j.status === 'failed') return j;
      if (Date.now() > deadline) throw new Error(`invocation ${id} still ${j.status} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Mounts left under this stack's root (must be none after stop). */
  async mountsUnderRoot(): Promise<string[]> {
    const m = await fs.readFile('/proc/self/mountinfo', 'utf8');
    return m.split('\n').filter((l) => l.includes(this.root));
  }

  /** Stops everything, checks nothing leaked, removes the root. */
  async stop(): Promise<string[]> {
    await this.stopGateway();
    await this.stopWorker();
    const leaks = await this.mountsUnderRoot();
    const left = [...(await fs.readdir(this.store.paths.containers).catch(() => [])), ...(await fs.readdir(path.join(this.root, 'fn-instances')).catch(() => []))];
    await this.redis.stop();
    await fs.rm(this.root, { recursive: true, force: true });
    return [...leaks, ...left.map((d) => `container dir left: ${d}`)];
  }
}
