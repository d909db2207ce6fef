import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { Registry } from 'prom-client';
import { createMetrics, outcomeLabel } from '../src/metrics/metrics.js';
import { bullQueueDepths } from '../src/metrics/queue-depths.js';
import { metricsRoutes, recordThrottled, serveMetrics } from '../src/metrics/routes.js';
import { Hono } from 'hono';
import { onError } from '../src/gateway/errors.js';
import { JiffyError } from '../src/errors.js';
import { connectRedis } from '../src/queue/connection.js';
import { startTestRedis, type TestRedis } from './support/redis.js';

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

/** Value of one sample line `name{labels} value` in Prometheus text. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    const body = line.slice(name.length + 1, line.lastIndexOf('}'));
    const got = Object.fromEntries([...body.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

const outcome = (ok: boolean, code?: string, cold = false) => ({
  id: 'f.1', ok, error: code ? { code: code as 'function_error', message: 'x' } : undefined, logs: '', coldStart: cold, functionVersion: 1,
  timings: { queueWaitMs: 1, bootMs: cold ? 4 : 0, initMs: cold ? 3 : 0, handlerMs: 2, totalMs: cold ? 10 : 3 },
});

test('outcome labels cover every way an invocation ends', () => {
  assert.equal(outcomeLabel(outcome(true)), 'success');
  assert.equal(outcomeLabel(outcome(false, 'function_error')), 'error');
  assert.equal(outcomeLabel(outcome(false, 'deadline_exceeded')), 'timeout');
  assert.equal(outcomeLabel(outcome(false, 'out_of_memory')), 'oom');
  assert.equal(outcomeLabel(outcome(false, 'function_crashed')), 'crashed');
  assert.equal(outcomeLabel(outcome(false, 'resource_exhausted')), 'throttled');
});

test('invocations, phase histograms, instances and queue depth appear on /metrics', async () => {
  const prefix = `${r.prefix('m')}:bull`;
  const q = new Queue('fn-hello', { connection: redis, prefix });
  await q.add('invoke', {}, { delay: 60_000 });
  await q.add('invoke', {});
  await q.add('invoke', {});
  const depths = bullQueueDepths({ connection: redis, prefix, names: () => ['fn-hello', 'fn-empty'] });
  const m = createMetrics();
  m.watchQueues(depths);
  m.recordOutcome('hello', outcome(true, undefined, true));
  m.recordOutcome('hello', outcome(true));
  m.recordOutcome('hello', outcome(false, 'deadline_exceeded'));
  m.recordInvocation({ fn: 'other', outcome: 'throttled', phases: {}, cold: false });
  m.setInstances('hello', 2, 1);
  const res = await metricsRoutes(m).request('/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  assert.equal(sample(text, 'jiffy_invocations_total', { function: 'hello', outcome: 'success' }), 2);
  assert.equal(sample(text, 'jiffy_invocations_total', { function: 'hello', outcome: 'timeout' }), 1);
  assert.equal(sample(text, 'jiffy_invocations_total', { function: 'other', outcome: 'throttled' }), 1);
  assert.equal(sample(text, 'jiffy_invocation_duration_seconds_count', { function: 'hello', phase: 'boot', start: 'cold' }), 1);
  assert.equal(sample(text, 'jiffy_invocation_duration_seconds_count', { function: 'hello', phase: 'total', start: 'warm' }), 2);
  assert.equal(sample(text, 'jiffy_invocation_duration_seconds_sum', { function: 'hello', phase: 'total', start: 'cold' }), 0.01);
  assert.equal(sample(text, 'jiffy_instances', { function: 'hello', state: 'warm' }), 2);
  assert.equal(sample(text, 'jiffy_instances', { function: 'hello', state: 'busy' }), 1);
  assert.equal(sample(text, 'jiffy_queue_depth', { queue: 'fn-hello' }), 3);
  assert.equal(sample(text, 'jiffy_queue_depth', { queue: 'fn-empty' }), 0);
  m.forgetFunction('hello');
  assert.equal(sample(await m.registry.metrics(), 'jiffy_instances', { function: 'hello', state: 'warm' }), undefined);
  await q.obliterate({ force: true });
  await q.close();
  await depths.close();
});

test('metrics live on the registry passed in (no global default) and serve standalone', async () => {
  const reg = new Registry();
  const a = createMetrics({ registry: reg });
  const b = createMetrics();
  a.recordInvocation({ fn: 'x', outcome: 'success', phases: { total: 1 }, cold: false });
  assert.equal(sample(await reg.metrics(), 'jiffy_invocations_total', { function: 'x', outcome: 'success' }), 1);
  assert.equal(sample(await b.registry.metrics(), 'jiffy_invocations_total', { function: 'x', outcome: 'success' }), undefined);
  const s = await serveMetrics(a, 0);
  try {
    const res = await fetch(s.url);
    assert.equal(res.status, 200);
    assert.equal(sample(await res.text(), 'jiffy_invocations_total', { function: 'x', outcome: 'success' }), 1);
    assert.equal((await fetch(s.url.replace('/metrics', '/other'))).status, 404);
  } finally {
    await s.close();
  }
});

test('busy and warm instances come from live counts and invocations in flight; 429s count as throttled', async () => {
  const m = createMetrics();
  let counts: Record<string, number> = { 'hello@1': 2, 'hello@2': 1 };
  m.watchInstances(() => counts);
  const done1 = m.invocationStarted('hello');
  const done2 = m.invocationStarted('sh');
  let text = await m.registry.metrics();
  assert.equal(sample(text, 'jiffy_instances', { function: 'hello', state: 'busy' }), 1);
  assert.equal(sample(text, 'jiffy_instances', { function: 'hello', state: 'warm' }), 2);
  assert.equal(sample(text, 'jiffy_instances', { function: 'sh', state: 'busy' }), 1);
  done1(outcome(true));
  done1(outcome(true));
  done2(outcome(false, 'out_of_memory'));
  counts = { 'hello@2': 1 };
  text = await m.registry.metrics();
  assert.equal(sample(text, 'jiffy_instances', { function: 'hello', state: 'busy' }), 0);
  assert.equal(sample(text, 'jiffy_instances', { function: 'hello', state: 'warm' }), 1);
  assert.equal(sample(text, 'jiffy_instances', { function: 'sh', state: 'busy' }), undefined);
  assert.equal(sample(text, 'jiffy_invocations_total', { function: 'hello', outcome: 'success' }), 1, 'a done callback records once');
  assert.equal(sample(text, 'jiffy_invocations_total', { function: 'sh', outcome: 'oom' }), 1);

  const app = new Hono();
  app.onError(onError);
  app.use('*', recordThrottled(m));
  app.post('/v1/functions/:ref/invoke', () => { throw new JiffyError('resource_exhausted', 'at capacity'); });
  app.post('/fn/:ref', (c) => c.json({}));
  assert.equal((await app.request('/v1/functions/busy@3/invoke', { method: 'POST' })).status, 429);
  assert.equal((await app.request('/fn/busy', { method: 'POST' })).status, 200);
  assert.equal(sample(await m.registry.metrics(), 'jiffy_invocations_total', { function: 'busy', outcome: 'throttled' }), 1);
});
