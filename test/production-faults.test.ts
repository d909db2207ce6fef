import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createTriggerKeys } from '../src/triggers/keys.js';
import { dedupeId } from '../src/triggers/service.js';
import {
  RedisProcess, deployFunction, invocation, invoke, removeRoot, runJiffy, startGateway, startWorker, waitUntil,
  type GatewayProcess, type WorkerProcess,
} from './support/processes.js';

// Faults around the production pieces, on real processes (`jiffy gateway`, `jiffy worker`, a
// redis-server with AOF on): Redis restarted — API keys, dead letters and schedules survive and
// every process reconnects; gateway SIGKILLed — queue jobs produced while it is down are run
// once it is back (triggers run in the gateway), exactly once per subscriber.
let root: string;
let redis: RedisProcess;
let gw: GatewayProcess | undefined;
let worker: WorkerProcess | undefined;
const prefix = `jpf${process.pid}`;
const env = () => ({ root, redisUrl: redis.url, prefix });

const FN = `
export async function handler(event) {
  if (event && event.fail) throw new Error('failing on purpose');
  return { echo: event };
}`;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-prod-faults-'));
  redis = await RedisProcess.start(path.join(root, 'redis'));
  gw = await startGateway(env());
  worker = await startWorker(env());
});

after(async () => {
  await gw?.proc.stop().catch(() => {});
  await worker?.proc.stop(30_000).catch(() => {});
  gw?.proc.killGroup();
  worker?.proc.killGroup();
  await redis?.stop();
  await removeRoot(root);
});

async function deadLetters(name: string): Promise<Array<{ invocationId: string }>> {
  const res = await fetch(`${gw!.url}/v1/functions/${name}/dead-letters`);
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { deadLetters: Array<{ invocationId: string }> }).deadLetters;
}

async function finished(id: string): Promise<Record<string, unknown>> {
  return waitUntil(`invocation ${id} to finish`, async () => {
    const r = await invocation(gw!.url, id);
    return r.status === 'succeeded' || r.status === 'failed' ? r : undefined;
  }, 90_000, 100);
}

test('Redis restarted: keys, dead letters and schedules survive; gateway, worker and triggers reconnect', async () => {
  await deployFunction(gw!.url, 'sturdy', { 'index.mjs': FN }, { runtime: 'node', attempts: 2, backoff: { type: 'fixed', delayMs: 50 }, queues: ['jobs-in'], schedule: '0 0 1 1 *' } as never);
  const key = await runJiffy(['keys', 'create', '--scope', 'admin', '--name', 'survivor', '--redis', redis.url, '--prefix', prefix], { root });
  assert.equal(key.code, 0, key.stderr);
  const a = await invoke(gw!.url, 'sturdy', '{"fail":1}', 'async');
  const { id } = (await a.json()) as { id: string };
  assert.equal((await finished(id)).status, 'failed');
  assert.deepEqual((await deadLetters('sturdy')).map((d) => d.invocationId), [id]);

  const exit = await redis.shutdown();
  assert.equal(exit.code, 0);
  await redis.restart();

  // Every process reconnects on its own: the gateway answers from Redis again...
  await waitUntil('the gateway to read from the restarted Redis', async () => (await fetch(`${gw!.url}/v1/functions/sturdy`)).status === 200, 30_000, 200);
  assert.deepEqual((await deadLetters('sturdy')).map((d) => d.invocationId), [id], 'the dead letter survived (AOF)');
  assert.match((await runJiffy(['keys', 'ls', '--redis', redis.url, '--prefix', prefix], { root })).stdout, /survivor\tadmin/);
  const q = (await (await fetch(`${gw!.url}/v1/queues`)).json()) as { schedules: Array<{ function: string; pattern: string }> };
  assert.deepEqual(q.schedules, [{ function: 'sturdy', pattern: '0 0 1 1 *' }]);
  // ...the worker takes new jobs...
  const b = await invoke(gw!.url, 'sturdy', '{"after":"restart"}', 'async');
  const rec = await finished(((await b.json()) as { id: string }).id);
  assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
  // ...and the trigger workers in the gateway run queue jobs again.
  const post = await fetch(`${gw!.url}/v1/queues/jobs-in/jobs`, { method: 'POST', body: '{"n":1}' });
  assert.equal(post.status, 202, await post.clone().text());
  const { jobId } = (await post.json()) as { jobId: string };
  const trig = await waitUntil('the queue job to be invoked', async () => {
    const r = await invocation(gw!.url, `sturdy.${dedupeId('q:jobs-in', jobId, 'sturdy')}`);
    return r.status === 'succeeded' || r.status === 'failed' ? r : undefined;
  }, 60_000, 100);
  assert.deepEqual(trig.result, { echo: { n: 1 } });
});

test('gateway SIGKILLed: queue jobs produced while it is down run once it is back, once each', async () => {
  await deployFunction(gw!.url, 'fanout', { 'index.mjs': FN }, { runtime: 'node', queues: ['while-down'] } as never);
  await gw!.proc.kill('SIGKILL');
  gw!.proc.killGroup();
  // An outside producer keeps adding jobs straight to the BullMQ queue while no gateway runs.
  const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  const producer = new Queue('while-down', { connection: conn, prefix: createTriggerKeys(prefix).queuePrefix() });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await producer.add('job', { i })).id!);
  await producer.close();
  conn.disconnect();

  gw = await startGateway(env());
  const results = [];
  for (const [i, jobId] of ids.entries()) {
    const id = `fanout.${dedupeId('q:while-down', jobId, 'fanout')}`;
    const r = await finished(id);
    assert.equal(r.status, 'succeeded', JSON.stringify(r));
    assert.deepEqual(r.result, { echo: { i } });
    results.push(r);
  }
  // Exactly once per subscriber: the function's queue holds one invocation job per trigger job.
  const conn2 = new Redis(redis.url, { maxRetriesPerRequest: null });
  const fnQueue = new Queue('fn-fanout', { connection: conn2, prefix: `${prefix}:bull` });
  assert.equal((await fnQueue.getJobCounts('completed')).completed, ids.length);
  await fnQueue.close();
  conn2.disconnect();
});
