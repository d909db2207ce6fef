import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './functions-harness.js';

// Deadlines, crashes, OOM, scale to zero, and the instance cap — against real containers.
let s: Stack;
before(async () => { s = await Stack.start(); });
after(async () => {
  const leaks = await s?.stop();
  assert.deepEqual(leaks, [], 'no mounts or container dirs left behind');
});

const SLOW_FN = `
export async function handler(event) {
  if (event && event.sleepMs) await new Promise((r) => setTimeout(r, event.sleepMs));
  if (event && event.hang) for (;;) {}
  if (event && event.exit) process.exit(event.exit);
  if (event && event.hog) { const keep = []; for (;;) keep.push(Buffer.alloc(1 << 20, 1)); }
  return { pid: process.pid };
}`;

async function errorOf(r: Response): Promise<{ code: string; message: string; details?: Record<string, unknown> }> {
  return ((await r.json()) as { error: { code: string; message: string; details?: Record<string, unknown> } }).error;
}

test('past the timeout the caller gets 504 and the next call a fresh instance', async () => {
  await s.deploy('slow', { 'index.mjs': SLOW_FN }, { runtime: 'node', timeoutS: 0.5 });
  const warm = await s.invoke('slow', {});
  const pid1 = ((await warm.json()) as { pid: number }).pid;
  const r = await s.invoke('slow', { hang: true });
  assert.equal(r.status, 504);
  const e = await errorOf(r);
  assert.equal(e.code, 'deadline_exceeded');
  assert.match(e.message, /did not finish within its 0\.5 s timeout/);
  const next = await s.invoke('slow', {});
  assert.equal(next.status, 200);
  assert.equal(next.headers.get('x-jiffy-cold-start'), 'true');
  assert.ok(((await next.json()) as { pid: number }).pid > 0 && pid1 > 0);
});

test('a crash is a 502 function_crashed naming the exit code; the next call gets a fresh instance', async () => {
  const r = await s.invoke('slow', { exit: 7 });
  assert.equal(r.status, 502);
  const e = await errorOf(r);
  assert.equal(e.code, 'function_crashed');
  assert.match(e.message, /exited with code 7/);
  const next = await s.invoke('slow', {});
  assert.equal(next.status, 200);
  assert.equal(next.headers.get('x-jiffy-cold-start'), 'true');
});

test('running out of memory is a 502 out_of_memory naming the limit', async () => {
  await s.deploy('hog', { 'index.mjs': SLOW_FN }, { runtime: 'node', memoryMb: 64, timeoutS: 30 });
  const r = await s.invoke('hog', { hog: true });
  assert.equal(r.status, 502);
  const e = await errorOf(r);
  assert.equal(e.code, 'out_of_memory', e.message);
  assert.match(e.message, /ran out of memory \(limit 64 MiB\)/);
  const next = await s.invoke('hog', {});
  assert.equal(next.status, 200);
});

test('idle instances scale to zero and the next call is cold again', async () => {
  await s.deploy('idle', { 'index.mjs': SLOW_FN }, { runtime: 'node', idleTimeoutS: 0.2 });
  assert.equal((await s.invoke('idle', {})).headers.get('x-jiffy-cold-start'), 'true');
  assert.equal((await s.invoke('idle', {})).headers.get('x-jiffy-cold-start'), 'false');
  const deadline = Date.now() + 10_000;
  while ((s.worker!.executor.instanceCounts()['idle@1'] ?? 0) > 0) {
    assert.ok(Date.now() < deadline, 'instance was not reaped');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await s.invoke('idle', {})).headers.get('x-jiffy-cold-start'), 'true');
});

test('min-warm instances are started at deploy: the first call is warm', async () => {
  await s.deploy('prewarmed', { 'index.mjs': SLOW_FN }, { runtime: 'node', minWarm: 1 });
  assert.equal(s.worker!.executor.instanceCounts()['prewarmed@1'], 1);
  assert.equal((await s.invoke('prewarmed', {})).headers.get('x-jiffy-cold-start'), 'false');
});

test('past max-instances sync calls get 429 while async ones wait in the queue', async () => {
  await s.deploy('capped', { 'index.mjs': SLOW_FN }, { runtime: 'node', maxInstances: 1, concurrency: 1, timeoutS: 30 });
  const busy = s.invoke('capped', { sleepMs: 1500 });
  const deadline = Date.now() + 10_000;
  while ((s.worker!.executor.instanceCounts()['capped@1'] ?? 0) === 0) {
    assert.ok(Date.now() < deadline, 'first call never started');
    await new Promise((r) => setTimeout(r, 20));
  }
  const over = await s.invoke('capped', {});
  assert.equal(over.status, 429);
  const e = await errorOf(over);
  assert.equal(e.code, 'resource_exhausted');
  assert.match(e.message, /at capacity/);
  const queued = await s.invoke('capped', { after: 'busy' }, 'async');
  assert.equal(queued.status, 202);
  const { id } = (await queued.json()) as { id: string };
  assert.equal((await busy).status, 200);
  assert.equal((await s.result(id)).status, 'succeeded');
});
