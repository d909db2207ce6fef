import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { deployQuery, tarDir } from '../src/functions/client.js';
import { serveGateway, type GatewayServer } from '../src/gateway/server.js';
import { ImageStore } from '../src/images/store.js';
import { createLogger } from '../src/log.js';
import { createMetrics, type Metrics } from '../src/metrics/metrics.js';
import { createKeys, type Keys } from '../src/queue/keys.js';
import type { Spawner } from '../src/worker/spawner.js';
import { createSpawner } from '../src/worker/spawners.js';
import { FunctionWorker } from '../src/worker/worker.js';
import { startTestRedis, type TestRedis } from './support/redis.js';

/**
 * The whole function stack with the production pieces on (test/production-*.test.ts and
 * bench/soak.ts): private Redis, temp store root, one worker booting real containers, the gateway
 * on 127.0.0.1 with API keys required (optional) and one metrics registry shared by both.
 */
export class ProdStack {
  gateway?: GatewayServer;
  worker?: FunctionWorker;
  spawner?: Spawner;
  readonly keys: Keys;
  /** Prefix of every container id (and cgroup name) this stack's worker creates. */
  readonly workerId = `wp${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  readonly metrics: Metrics = createMetrics();
  /** Bearer token sent by deploy()/call() (set once a key exists). */
  token?: string;
  private readonly log = createLogger('prod-test', process.env.JIFFY_LOG_LEVEL ?? 'warn');

  private constructor(readonly redis: TestRedis, readonly root: string, readonly store: ImageStore, readonly auth: boolean) {
    this.keys = createKeys(redis.prefix('prod'));
  }

  static async start(o: { auth?: boolean } = {}): Promise<ProdStack> {
    const redis = await startTestRedis();
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-prod-test-'));
    const s = new ProdStack(redis, root, await ImageStore.open(root), o.auth ?? false);
    try {
      s.spawner = await createSpawner(s.store, s.log);
      s.worker = await FunctionWorker.start({ redisUrl: redis.url, keys: s.keys, spawner: s.spawner, log: s.log, metrics: s.metrics, workerId: s.workerId });
      s.gateway = await serveGateway({ redisUrl: redis.url, keys: s.keys, store: s.store, log: s.log, port: 0, host: '127.0.0.1', auth: s.auth, metrics: s.metrics });
    } catch (e) {
      await s.stop().catch(() => {});
      throw e;
    }
    return s;
  }

  get url(): string {
    return this.gateway!.url;
  }

  /** fetch() against the gateway with the bearer token (if any). */
  call(p: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.token && !headers.has('authorization')) headers.set('authorization', `Bearer ${this.token}`);
    return fetch(this.url + p, { ...init, headers });
  }

  /** Writes `files` to a temp dir and deploys them; throws with the gateway's answer unless 201. */
  async deploy(name: string, files: Record<string, string>, settings: Record<string, unknown> & { runtime: string }): Promise<{ version: number }> {
    const dir = await fs.mkdtemp(path.join(this.root, 'src-'));
    for (const [f, text] of Object.entries(files)) await fs.writeFile(path.join(dir, f), text, { mode: f === 'handler' ? 0o755 : 0o644 });
    const res = await this.call(`/v1/functions/${name}?${deployQuery(settings as Parameters<typeof deployQuery>[0])}`, { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: new Uint8Array(await tarDir(dir)) });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`deploy ${name} failed: ${res.status} ${text}`);
    return JSON.parse(text) as { version: number };
  }

  /** Polls an invocation until it finished (succeeded or failed). */
  async result(id: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await this.call(`/v1/invocations/${id}`);
      const j = (await res.json()) as Record<string, unknown>;
      if (j.status === 'succeeded' || j.status === 'failed') return j;
      if (Date.now() > deadline) throw new Error(`invocation ${id} still ${String(j.status)} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Mounts under this stack's root plus container dirs left behind (must be none after stop). */
  async leftovers(): Promise<string[]> {
    const mounts = (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(this.root));
    const dirs = [...(await fs.readdir(this.store.paths.containers).catch(() => [])), ...(await fs.readdir(path.join(this.root, 'fn-instances')).catch(() => []))];
    return [...mounts, ...dirs.map((d) => `container dir left: ${d}`)];
  }

  /** Redis keys of this stack's functions (registry, slots, dead letters) still present. */
  async functionKeys(redis: { keys(p: string): Promise<string[]> }): Promise<string[]> {
    return redis.keys(`${this.keys.prefix}:fn:*`);
  }

  /** Stops gateway and worker, reports leftovers, stops Redis, removes the root. */
  async stop(): Promise<string[]> {
    await this.gateway?.close();
    await this.worker?.close();
    await this.spawner?.close();
    const left = await this.leftovers();
    await this.redis.stop();
    await fs.rm(this.root, { recursive: true, force: true });
    return left;
  }
}
