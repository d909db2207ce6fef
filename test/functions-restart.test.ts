import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './functions-harness.js';

// The gateway holds no invocation state: async jobs enqueued while no worker runs survive a
// gateway restart and all complete once a worker is back.
let s: Stack;
before(async () => { s = await Stack.start(); });
after(async () => {
  const leaks = await s?.stop();
  assert.deepEqual(leaks, [], 'no mounts or container dirs left behind');
});

test('async jobs queued across a gateway and worker restart all complete', async () => {
  await s.deploy('durable', { 'index.mjs': 'export const handler = (e) => ({ n: e.n * 2 });' }, { runtime: 'node' });
  await s.stopWorker();
  const ids: string[] = [];
  for (let n = 0; n < 8; n++) {
    const r = await s.invoke('durable', { n }, 'async');
    assert.equal(r.status, 202);
    ids.push(((await r.json()) as { id: string }).id);
  }
  const queued = (await (await fetch(`${s.url}/v1/invocations/${ids[0]}`)).json()) as { status: string };
  assert.equal(queued.status, 'queued');
  await s.stopGateway();
  await s.startGateway();
  await s.startWorker();
  for (const [n, id] of ids.entries()) {
    const rec = await s.result(id);
    assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
    assert.deepEqual(rec.result, { n: n * 2 });
  }
});
