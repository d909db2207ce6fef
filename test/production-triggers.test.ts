import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, type Job } from 'bullmq';
import { Hono } from 'hono';
import type { InvocationJob } from '../src/functions/outcome.js';
import { FunctionRegistry } from '../src/functions/registry.js';
import { parseSettings, type FunctionVersion } from '../src/functions/spec.js';
import { onError } from '../src/gateway/errors.js';
import { createLogger } from '../src/log.js';
import { connectRedis } from '../src/queue/connection.js';
import { Invoker } from '../src/queue/invocations.js';
import { createKeys, type Keys } from '../src/queue/keys.js';
import { createTriggerKeys } from '../src/triggers/keys.js';
import { queueRoutes } from '../src/triggers/routes.js';
import { TriggerService } from '../src/triggers/service.js';
import { isCron, triggerFields } from '../src/triggers/spec.js';
import { z } from 'zod';
import { startTestRedis, type TestRedis } from './support/redis.js';

// Queue and cron triggers on a real Redis with real BullMQ queues: jobs posted over HTTP or added
// by an outside BullMQ producer become invocation jobs on the functions' own queues (through the
// gateway's Invoker); no worker runs here, so the invocation jobs are read straight off the queues.
const log = createLogger('t', 'silent');
let r: TestRedis;
let redis: ReturnType<typeof connectRedis>;
before(async () => {
  r = await startTestRedis();
  redis = connectRedis(r.url);
});
after(async () => {
  redis?.disconnect();
  await r?.stop();
});

async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 25));
  }
}

class World {
  readonly registry: FunctionRegistry;
  readonly invoker: Invoker;
  readonly service: TriggerService;
  readonly removed: string[] = [];
  readonly fnQueues = new Map<string, Queue>();
  constructor(readonly keys: Keys) {
    this.registry = new FunctionRegistry(redis, keys);
    this.invoker = new Invoker({ redis, subscriber: redis, keys, gatewayId: 'g' });
    this.service = new TriggerService({ redis, keys, log, resyncMs: 60_000, enqueue: (fn, ev) => this.invoker.enqueue(fn, ev), onRemove: async (n) => { this.removed.push(n); } });
  }
  /** Records and publishes a version the way Deployer does (no image: nothing runs it here). */
  async deploy(name: string, settings: Record<string, unknown>): Promise<FunctionVersion> {
    const s = z.object({ ...triggerFields }).parse(settings);
    const fn: FunctionVersion = { name, version: await this.registry.nextVersion(name), settings: { ...parseSettings(settings), ...s }, image: { id: 'sha256:x', ref: 'none' }, codeDiffId: 'sha256:y', createdAt: new Date().toISOString() };
    await this.registry.put(fn);
    await this.registry.publish(fn);
    await redis.publish(this.keys.controlChannel(), JSON.stringify({ type: 'published', name, version: fn.version }));
    return fn;
  }
  async remove(name: string): Promise<void> {
    await this.registry.remove(name);
    await redis.publish(this.keys.controlChannel(), JSON.stringify({ type: 'remove', name }));
  }
  /** Invocation jobs waiting on a function's own queue. */
  async invocations(name: string): Promise<Array<Job<InvocationJob>>> {
    let q = this.fnQueues.get(name);
    if (!q) { q = new Queue(this.keys.queueName(name), { connection: redis, prefix: this.keys.bullPrefix() }); this.fnQueues.set(name, q); }
    return (await q.getJobs(['waiting'])) as Array<Job<InvocationJob>>;
  }
  async close(): Promise<void> {
    await this.service.close();
    await this.invoker.close();
    for (const q of this.fnQueues.values()) await q.close();
  }
}

test('queue jobs from HTTP and from an outside BullMQ producer invoke every subscribed function', async () => {
  const w = new World(createKeys(r.prefix('trq')));
  const app = new Hono();
  app.onError(onError);
  const routes = queueRoutes({ redis, keys: w.keys, maxBodyBytes: 200 });
  app.route('/', routes);
  try {
    await w.deploy('a', { runtime: 'node', queues: 'orders' });
    await w.deploy('b', { runtime: 'node', queues: ['orders', 'audit'] });
    await w.deploy('c', { runtime: 'exec', queues: ['audit'] });
    await w.service.start();
    const res = await app.request('/v1/queues/orders/jobs', { method: 'POST', body: JSON.stringify({ order: 1 }) });
    assert.equal(res.status, 202);
    assert.deepEqual(((await res.json()) as { subscribers: string[] }).subscribers.sort(), ['a', 'b']);
    const producer = new Queue('audit', { connection: redis, prefix: createTriggerKeys(w.keys.prefix).queuePrefix() });
    await producer.add('job', { audit: 'x' });
    await producer.close();
    const a = await until('a invoked', async () => { const j = await w.invocations('a'); return j.length === 1 && j; });
    assert.deepEqual([a[0]!.data.mode, a[0]!.data.event], ['async', { order: 1 }]);
    const b = await until('b invoked twice', async () => { const j = await w.invocations('b'); return j.length === 2 && j; });
    assert.deepEqual(b.map((j) => j.data.event).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))), [{ audit: 'x' }, { order: 1 }]);
    const c = await until('c invoked', async () => { const j = await w.invocations('c'); return j.length === 1 && j; });
    assert.equal(c[0]!.data.eventEncoding, 'base64', 'exec functions get the event as JSON bytes on stdin');
    assert.deepEqual(JSON.parse(Buffer.from(String(c[0]!.data.event), 'base64').toString()), { audit: 'x' });
    const listed = (await (await app.request('/v1/queues')).json()) as { queues: Array<{ name: string; functions: string[] }> };
    assert.deepEqual(listed.queues.map((q) => [q.name, q.functions.sort()]).sort(), [['audit', ['b', 'c']], ['orders', ['a', 'b']]]);

    for (const [url, body, status] of [['/v1/queues/nobody/jobs', '{}', 404], ['/v1/queues/orders/jobs', '{nope', 400], ['/v1/queues/bad:name/jobs', '{}', 400], ['/v1/queues/orders/jobs', JSON.stringify({ big: 'x'.repeat(500) }), 413]] as const) {
      const res2 = await app.request(url, { method: 'POST', body, headers: { 'content-length': String(body.length) } });
      assert.equal(res2.status, status, url);
      assert.ok(((await res2.json()) as { error: { message: string } }).error.message.length > 10);
    }

    // A redeploy without --queue unsubscribes; a removed function is unsubscribed and its hook runs.
    await w.deploy('a', { runtime: 'node' });
    await w.remove('c');
    await until('subscriptions follow deploys', async () => {
      const s = w.service.subscriptions().queues;
      return JSON.stringify(s.get('orders')) === '["b"]' && JSON.stringify(s.get('audit')) === '["b"]';
    });
    assert.deepEqual(w.removed, ['c']);
  } finally {
    await routes.close();
    await w.close();
  }
});

test('cron schedules invoke the function, and go away on redeploy without --schedule or on remove', async () => {
  const w = new World(createKeys(r.prefix('trc')));
  const cron = new Queue(createTriggerKeys(w.keys.prefix).cronQueue(), { connection: redis, prefix: createTriggerKeys(w.keys.prefix).cronPrefix() });
  try {
    await w.deploy('tick', { runtime: 'node', schedule: '* * * * * *' });
    await w.deploy('tock', { runtime: 'python', schedule: '0 0 1 1 *' });
    await w.service.start();
    const jobs = await until('a scheduled invocation', async () => { const j = await w.invocations('tick'); return j.length >= 1 && j; });
    const ev = jobs[0]!.data.event as { source: string; schedule: string; scheduledAt: string };
    assert.equal(ev.source, 'schedule');
    assert.equal(ev.schedule, '* * * * * *');
    assert.ok(!Number.isNaN(Date.parse(ev.scheduledAt)));
    assert.deepEqual((await cron.getJobSchedulers(0, -1)).map((s) => [s.key, s.pattern]).sort(), [['tick', '* * * * * *'], ['tock', '0 0 1 1 *']]);

    await w.deploy('tick', { runtime: 'node', schedule: '*/5 * * * *' });
    await until('schedule changed', async () => (await cron.getJobScheduler('tick'))?.pattern === '*/5 * * * *');
    await w.deploy('tick', { runtime: 'node' });
    await w.remove('tock');
    await until('schedulers removed', async () => (await cron.getJobSchedulers(0, -1)).length === 0);
  } finally {
    await w.close();
    await cron.close();
  }
});

test('trigger settings validate queue names and cron patterns', () => {
  const s = z.object({ ...triggerFields });
  assert.deepEqual(s.parse({}), { queues: [] });
  assert.deepEqual(s.parse({ queues: 'a, b.c' }), { queues: ['a', 'b.c'] });
  assert.equal(s.safeParse({ queues: 'a:b' }).success, false);
  assert.equal(s.safeParse({ schedule: 'every minute' }).success, false);
  assert.equal(s.safeParse({ schedule: '*/5 * * * *' }).success, true);
  assert.equal(isCron('61 * * * *'), false);
});
