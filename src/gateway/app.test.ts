import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { ImageStore } from '../images/store.js';
import { createLogger } from '../log.js';
import { connectRedis } from '../queue/connection.js';
import { idempotencyDedupeId } from '../queue/invocations.js';
import { createKeys } from '../queue/keys.js';
import { FunctionRegistry } from '../functions/registry.js';
import { parseSettings } from '../functions/spec.js';
import { startTestRedis, type TestRedis } from '../../test/support/redis.js';
import { createGateway, type Gateway } from './app.js';

// In-process gateway tests (app.request(), no port) against a real Redis; no worker runs, so these
// cover validation, lookups, limits and error mapping. Invocations end to end: test/functions-*.test.ts.
let r: TestRedis;
let gw: Gateway;
let root: string;
const conns: Array<{ disconnect(): void }> = [];
const keys = createKeys(`gwunit${process.pid}`);

before(async () => {
  r = await startTestRedis();
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-gw-unit-'));
  const redis = connectRedis(r.url);
  const subscriber = connectRedis(r.url);
  conns.push(redis, subscriber);
  const store = await ImageStore.open(root);
  gw = createGateway({ redis, subscriber, keys, store, log: createLogger('t', 'silent'), maxBodyBytes: 1024, runtimeImage: async () => { throw new Error('not used: deploys here fail validation first'); } });
  await gw.start();
  // A version recorded directly (no image needed: nothing runs it here).
  const reg = new FunctionRegistry(redis, keys);
  const fn = { name: 'capped', version: 1, settings: parseSettings({ runtime: 'node', maxInstances: 1 }), image: { id: 'sha256:x', ref: 'none' }, codeDiffId: 'sha256:y', createdAt: new Date().toISOString() };
  await reg.put(fn);
  await reg.publish(fn);
});

after(async () => {
  await gw?.close();
  for (const c of conns) c.disconnect();
  await r?.stop();
  await fs.rm(root, { recursive: true, force: true });
});

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  const j = (await res.json()) as { error: { code: string; message: string } };
  return j.error;
}

test('deploy with a bad setting is a 400 naming the field', async () => {
  const res = await gw.app.request('/v1/functions/f1?runtime=node&memory=1', { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: 'x' });
  assert.equal(res.status, 400);
  const e = await errorOf(res);
  assert.equal(e.code, 'invalid_argument');
  assert.match(e.message, /memoryMb/);
});

test('deploy rejects unknown runtimes, unknown params, bad names and non-tar bodies', async () => {
  const cases: Array<[string, RequestInit, RegExp]> = [
    ['/v1/functions/f1?runtime=ruby', { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: 'x' }, /runtime/],
    ['/v1/functions/f1?runtime=node&colour=red', { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: 'x' }, /colour/],
    ['/v1/functions/Bad.Name?runtime=node', { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: 'x' }, /name/],
    ['/v1/functions/f1?runtime=node', { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'x' }, /tar/],
    ['/v1/functions/f1', { method: 'PUT', headers: { 'content-type': 'application/x-tar', 'x-jiffy-settings': '{"runtime":"node","timeoutS":-1}' }, body: 'x' }, /timeoutS/],
    ['/v1/functions/f1?runtime=node&min-warm=5&max-instances=2', { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: 'x' }, /minWarm/],
  ];
  for (const [url, init, re] of cases) {
    const res = await gw.app.request(url, init);
    assert.equal(res.status, 400, url);
    assert.match((await errorOf(res)).message, re, url);
  }
});

test('deploy with a tar that is not a tar is a 400 and records no version', async () => {
  const res = await gw.app.request('/v1/functions/junk?runtime=exec', { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: 'definitely not a tar archive'.repeat(40) });
  assert.equal(res.status, 400);
  assert.equal((await errorOf(res)).code, 'invalid_argument');
  assert.equal((await gw.app.request('/v1/functions/junk')).status, 404);
});

test('unknown functions, versions, invocations and routes are 404s with a JSON error', async () => {
  for (const [method, url] of [['POST', '/v1/functions/nope/invoke'], ['POST', '/v1/functions/capped@7/invoke'], ['GET', '/v1/invocations/nope.abc'], ['GET', '/nowhere'], ['GET', '/fn/nope/x']]) {
    const res = await gw.app.request(url!, { method });
    assert.equal(res.status, 404, url);
    assert.equal((await errorOf(res)).code, 'not_found');
  }
});

test('a body over the limit is a 413', async () => {
  const res = await gw.app.request('/v1/functions/capped/invoke', { method: 'POST', body: 'x'.repeat(5000), headers: { 'content-length': '5000' } });
  assert.equal(res.status, 413);
  assert.equal((await errorOf(res)).code, 'payload_too_large');
});

test('an invalid invoke mode is a 400', async () => {
  const res = await gw.app.request('/v1/functions/capped/invoke?mode=later', { method: 'POST', body: '{}' });
  assert.equal(res.status, 400);
});

test('sync calls past the capacity get 429 (slots are held in Redis)', async () => {
  const redis = connectRedis(r.url);
  conns.push(redis);
  await redis.zadd(keys.slots('capped'), Date.now() + 60_000, 'someone-else');
  const res = await gw.app.request('/v1/functions/capped/invoke', { method: 'POST', body: '{}' });
  assert.equal(res.status, 429);
  assert.match((await errorOf(res)).message, /capacity/);
  await redis.del(keys.slots('capped'));
});

test('listing and info show the recorded version', async () => {
  const list = (await (await gw.app.request('/v1/functions')).json()) as { functions: Array<{ name: string; version: number }> };
  assert.deepEqual(list.functions.map((f) => [f.name, f.version]), [['capped', 1]]);
  const info = (await (await gw.app.request('/v1/functions/capped')).json()) as { latest: number; versions: unknown[] };
  assert.equal(info.latest, 1);
  assert.equal(info.versions.length, 1);
});

test('Idempotency-Key on async invokes: same key → same invocation and one job; other keys and functions differ', async () => {
  const queue = new Queue(keys.queueName('capped'), { connection: connectRedis(r.url), prefix: keys.bullPrefix() });
  const jobs = async () => (await queue.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'])).map((j) => j.id).sort();
  const post = (key: string, ref = 'capped') => gw.app.request(`/v1/functions/${ref}/invoke?mode=async`, { method: 'POST', body: '{"n":1}', headers: { 'idempotency-key': key } });
  try {
    const before = await jobs();
    const key = `k-${process.pid}: any printable ~ text.`;
    const first = await post(key);
    assert.equal(first.status, 202, await first.clone().text());
    assert.equal(first.headers.get('idempotent-replayed'), null, 'the first POST creates the invocation');
    const { id } = (await first.json()) as { id: string };
    const again = await post(key);
    assert.equal(again.status, 202);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(((await again.json()) as { id: string }).id, id);
    // Two concurrent POSTs with one new key: one job, one of them replayed.
    const both = await Promise.all([post('concurrent'), post('concurrent')]);
    const ids = await Promise.all(both.map(async (b) => ((await b.json()) as { id: string }).id));
    assert.equal(ids[0], ids[1]);
    assert.deepEqual(both.map((b) => b.headers.get('idempotent-replayed')).sort(), ['true', null].sort());
    const other = (await (await post(`${key}2`)).json()) as { id: string };
    assert.notEqual(other.id, id, 'a different key is a different invocation');
    // Only one function exists here; the dedupe id (and the id's name part) differ per function.
    assert.notEqual(idempotencyDedupeId('capped', key), idempotencyDedupeId('other', key));
    assert.equal(id, `capped.${idempotencyDedupeId('capped', key)}`);
    assert.deepEqual(await jobs(), [...before, id, ids[0]!, other.id].sort(), 'one job per key');
    // An unkeyed POST still creates a fresh invocation every time.
    const plain = await gw.app.request('/v1/functions/capped/invoke?mode=async', { method: 'POST', body: '{}' });
    assert.equal(plain.status, 202);
    assert.notEqual(((await plain.json()) as { id: string }).id, id);
  } finally {
    await queue.close();
    (queue.opts.connection as { disconnect?: () => void }).disconnect?.();
  }
});

test('a bad Idempotency-Key, or one on a sync invoke, is a 400 naming the header and enqueues nothing', async () => {
  const queue = new Queue(keys.queueName('capped'), { connection: connectRedis(r.url), prefix: keys.bullPrefix() });
  try {
    const count = async () => Object.values(await queue.getJobCounts()).reduce((a, b) => a + b, 0);
    const n = await count();
    for (const [key, mode] of [['', 'async'], ['x'.repeat(201), 'async'], ['tab\there', 'async'], ['ok-key', 'sync']] as const) {
      const res = await gw.app.request(`/v1/functions/capped/invoke?mode=${mode}`, { method: 'POST', body: '{}', headers: { 'idempotency-key': key } });
      assert.equal(res.status, 400, JSON.stringify(key));
      const e = await errorOf(res);
      assert.equal(e.code, 'invalid_argument');
      assert.match(e.message, /Idempotency-Key/);
    }
    assert.equal(await count(), n);
  } finally {
    await queue.close();
    (queue.opts.connection as { disconnect?: () => void }).disconnect?.();
  }
});
