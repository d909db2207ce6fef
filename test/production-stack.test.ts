import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import { ApiKeyStore } from '../src/auth/api-keys.js';
import { createAuthKeys } from '../src/auth/keys.js';
import { connectRedis } from '../src/queue/connection.js';
import type { CallbackPayload } from '../src/retries/callbacks.js';
import { repoRoot } from '../src/paths.js';
import { dedupeId } from '../src/triggers/service.js';
import { ProdStack } from './production-support.js';

// The production pieces wired into the real stack: API keys on the gateway, retries with backoff
// into dead letters, callbacks to a receiver on 127.0.0.1, queue and cron triggers, /metrics —
// real Redis, real gateway over HTTP, a real worker booting real containers.
let s: ProdStack;
let redis: ReturnType<typeof connectRedis>;
let receiver: http.Server;
let hookUrl: string;
const hooks: CallbackPayload[] = [];

before(async () => {
  s = await ProdStack.start({ auth: true });
  redis = connectRedis(s.redis.url);
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => { hooks.push(JSON.parse(Buffer.concat(chunks).toString()) as CallbackPayload); res.writeHead(204).end(); });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/done`;
});
after(async () => {
  await new Promise<void>((resolve) => { receiver?.close(() => resolve()); receiver?.closeAllConnections(); });
  redis?.disconnect();
  const left = await s?.stop();
  assert.deepEqual(left, [], 'no mounts or container dirs left behind');
});

async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

// Counts calls per warm instance so the test can see a retry really ran the handler again.
const FLAKY = `
let calls = 0;
export async function handler(event) {
  calls++;
  if (event && event.sleep) await new Promise((r) => setTimeout(r, event.sleep));
  if (event && event.fail) throw new Error('failing on purpose, call ' + calls);
  return { echo: event, calls };
}`;

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

test('auth: without a key everything but /healthz is 401; an admin key deploys; invoke keys are scoped', async () => {
  const res = await s.call('/v1/functions');
  assert.equal(res.status, 401);
  assert.match(res.headers.get('www-authenticate') ?? '', /Bearer/);
  assert.equal((await s.call('/healthz')).status, 200);
  const store = new ApiKeyStore(redis, createAuthKeys(s.keys.prefix));
  s.token = (await store.create({ scope: 'admin', name: 'test-admin' })).token;
  await s.deploy('flaky', { 'index.mjs': FLAKY }, { runtime: 'node', attempts: 3, backoff: { type: 'fixed', delayMs: 20 }, maxInstances: 2 } as never);
  const only = (await store.create({ scope: 'invoke', functions: ['flaky'] })).token;
  const ok = await fetch(`${s.url}/v1/functions/flaky/invoke`, { method: 'POST', body: '{"a":1}', headers: { authorization: `Bearer ${only}` } });
  assert.equal(ok.status, 200);
  const denied = await fetch(`${s.url}/v1/functions/flaky`, { method: 'DELETE', headers: { authorization: `Bearer ${only}` } });
  assert.equal(denied.status, 403);
  assert.match(((await denied.json()) as { error: { message: string } }).error.message, /admin key/);
});

test('async failures are retried, then kept as a dead letter, called back, and replayable', async () => {
  hooks.length = 0;
  const a = await s.call(`/v1/functions/flaky/invoke?mode=async`, { method: 'POST', body: JSON.stringify({ fail: 'yes' }), headers: { 'x-jiffy-callback': hookUrl } });
  assert.equal(a.status, 202);
  const { id } = (await a.json()) as { id: string };
  const rec = await s.result(id);
  assert.equal(rec.status, 'failed');
  const hook = await until('the failure callback', async () => hooks.find((h) => h.id === id));
  assert.equal(hook.status, 'failed');
  assert.equal(hook.attempts, 3);
  assert.match(hook.error?.message ?? '', /failing on purpose/);
  const list = (await (await s.call('/v1/functions/flaky/dead-letters')).json()) as { count: number; deadLetters: Array<{ id: string; invocationId: string; attempts: number; event: unknown; error: { code: string; message: string } }> };
  assert.equal(list.count, 1);
  const dl = list.deadLetters[0]!;
  assert.deepEqual([dl.invocationId, dl.attempts, dl.error.code, dl.event], [id, 3, 'function_error', { fail: 'yes' }]);
  assert.equal(hook.deadLetterId, dl.id);

  // Fix the function, replay the letter: the new invocation succeeds and calls back again.
  await s.deploy('flaky', { 'index.mjs': FLAKY.replace("if (event && event.fail)", 'if (false)') }, { runtime: 'node', attempts: 3, backoff: { type: 'fixed', delayMs: 20 } } as never);
  const rep = await s.call(`/v1/functions/flaky/dead-letters/${dl.id}/replay`, { method: 'POST' });
  assert.equal(rep.status, 202);
  const newId = ((await rep.json()) as { id: string }).id;
  const again = await s.result(newId);
  assert.equal(again.status, 'succeeded');
  assert.deepEqual((again.result as { echo: unknown }).echo, { fail: 'yes' });
  const hook2 = await until('the replay callback', async () => hooks.find((h) => h.id === newId));
  assert.equal(hook2.status, 'succeeded');
  assert.equal(((await (await s.call('/v1/functions/flaky/dead-letters')).json()) as { count: number }).count, 0);
});

test('a bad callback URL and a callback on a sync call are 400s', async () => {
  for (const url of ['/v1/functions/flaky/invoke?mode=async&callback=ftp%3A%2F%2Fx', `/v1/functions/flaky/invoke?callback=${encodeURIComponent(hookUrl)}`]) {
    const res = await s.call(url, { method: 'POST', body: '{}' });
    assert.equal(res.status, 400, url);
  }
});

test('queue triggers: HTTP jobs become invocations of the subscriber (exactly the id the trigger derives)', async () => {
  await s.deploy('orders', { 'index.mjs': FLAKY }, { runtime: 'node', queues: ['orders-in'] } as never);
  const res = await s.call('/v1/queues/orders-in/jobs', { method: 'POST', body: JSON.stringify({ order: 7 }) });
  assert.equal(res.status, 202);
  const { jobId } = (await res.json()) as { jobId: string };
  const invId = `orders.${dedupeId('q:orders-in', jobId, 'orders')}`;
  const rec = await until('the triggered invocation', async () => {
    const r = await s.call(`/v1/invocations/${invId}`);
    if (r.status !== 200) return undefined;
    const j = (await r.json()) as Record<string, unknown>;
    return (j.status === 'succeeded' || j.status === 'failed') && j;
  });
  assert.equal(rec.status, 'succeeded');
  assert.deepEqual((rec.result as { echo: unknown }).echo, { order: 7 });
});

test('cron triggers invoke on schedule and stop when redeployed without one', async () => {
  await s.deploy('ticker', { 'index.mjs': FLAKY }, { runtime: 'node', schedule: '* * * * * *' } as never);
  await until('a scheduled invocation on /metrics', async () => metric(await (await s.call('/metrics')).text(), 'jiffy_invocations_total', 'function="ticker",outcome="success"') >= 1);
  await s.deploy('ticker', { 'index.mjs': FLAKY }, { runtime: 'node' });
  const q = (await (await s.call('/v1/queues')).json()) as { schedules: unknown[] };
  assert.deepEqual(q.schedules, []);
});

test('/metrics: outcomes, phases by cold/warm, instances, queue depth', async () => {
  const res = await s.call('/metrics');
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.ok(metric(text, 'jiffy_invocations_total', 'function="flaky",outcome="success"') >= 2);
  assert.ok(metric(text, 'jiffy_invocations_total', 'function="flaky",outcome="error"') >= 3, 'each failed attempt counts');
  assert.ok(metric(text, 'jiffy_invocation_duration_seconds_count', 'function="flaky",phase="boot",start="cold"') >= 1);
  assert.ok(metric(text, 'jiffy_invocation_duration_seconds_count', 'function="flaky",phase="handler",start="warm"') >= 1);
  assert.match(text, /jiffy_instances\{function="flaky",state="warm"\} \d/);
  assert.match(text, /jiffy_queue_depth\{queue="fn-flaky"\} 0/);
});

test('CLI: deploy flags, JIFFY_TOKEN, invoke --async --callback, fn dead-letters list and drop', async () => {
  const run = promisify(execFile);
  const jiffy = (args: string[], token = s.token) => run(path.join(repoRoot(), 'bin', 'jiffy'), args, { env: { ...process.env, JIFFY_URL: s.url, JIFFY_TOKEN: token ?? '' } });
  const dir = await fs.mkdtemp(path.join(s.root, 'cli-src-'));
  await fs.writeFile(path.join(dir, 'index.mjs'), FLAKY);
  await jiffy(['deploy', 'clifn', dir, '--runtime', 'node', '--attempts', '2', '--backoff', 'fixed:10', '--queue', 'cli-a', '--queue', 'cli-b', '--schedule', '0 0 1 1 *']);
  const info = JSON.parse((await jiffy(['fn', 'info', 'clifn'])).stdout) as { versions: Array<Record<string, unknown>> };
  const v = info.versions.at(-1)!;
  assert.deepEqual([v.attempts, v.backoff, v.queues, v.schedule], [2, { type: 'fixed', delayMs: 10 }, ['cli-a', 'cli-b'], '0 0 1 1 *']);
  hooks.length = 0;
  const id = (await jiffy(['invoke', 'clifn', '--async', '--callback', hookUrl, '-d', '{"fail":"cli"}'])).stdout.trim();
  const hook = await until('the CLI invocation callback', async () => hooks.find((h) => h.id === id));
  assert.equal(hook.attempts, 2);
  const ls = (await jiffy(['fn', 'dead-letters', 'clifn'])).stdout;
  const row = ls.split('\n').find((l) => l.includes(id));
  assert.ok(row, ls);
  assert.match(row, /\t2\t.*function_error: Error: failing on purpose/);
  const dlId = row.split('\t')[0]!;
  assert.match((await jiffy(['fn', 'dead-letters', 'clifn', '--drop', dlId])).stdout, /dropped/);
  await assert.rejects(jiffy(['fn', 'dead-letters', 'clifn', '--drop', dlId]), (e: { stderr: string }) => /not found/.test(e.stderr));
  await assert.rejects(jiffy(['fn', 'ls'], ''), (e: { stderr: string }) => /jiffy keys create/.test(e.stderr));
  await assert.rejects(jiffy(['deploy', 'clifn', dir, '--runtime', 'node', '--backoff', 'linear']), (e: { stderr: string }) => /fixed:MS or exponential:MS/.test(e.stderr));
});
