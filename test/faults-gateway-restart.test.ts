import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  RedisProcess, deployFunction, invocation, invoke, removeRoot, startGateway, startWorker, waitUntil,
  type GatewayProcess, type WorkerProcess,
} from './support/processes.js';

// Fault: the gateway process is SIGKILLed while async invocations are queued and running. The
// gateway holds no invocation state, so a new gateway process (on another port) must report
// every one of them through GET /v1/invocations/:id until each has finished.
let root: string;
let redis: RedisProcess;
const gateways: GatewayProcess[] = [];
let worker: WorkerProcess;
const prefix = `jfg${process.pid}`;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-fault-gw-'));
  redis = await RedisProcess.start(path.join(root, 'redis'));
  const env = { root, redisUrl: redis.url, prefix };
  gateways.push(await startGateway(env, 'gateway-1'));
  worker = await startWorker(env);
});

after(async () => {
  await worker?.proc.stop().catch(() => {});
  for (const g of gateways) await g.proc.stop().catch(() => {});
  worker?.proc.killGroup();
  for (const g of gateways) g.proc.killGroup();
  await redis?.stop();
  await removeRoot(root);
});

test('a SIGKILLed gateway: a new one reports every queued and running invocation to its end', async () => {
  const g1 = gateways[0]!;
  const handler = '#!/bin/sh\ninput=$(cat)\nsleep 1\necho "t:$input"\n';
  await deployFunction(g1.url, 'ticker', { handler }, { runtime: 'exec', maxInstances: 2, timeoutS: 60 });
  const ids: string[] = [];
  for (let n = 0; n < 8; n++) {
    const res = await invoke(g1.url, 'ticker', `n${n}`, 'async');
    assert.equal(res.status, 202, await res.clone().text());
    ids.push(((await res.json()) as { id: string }).id);
  }
  // With two running at a time, the rest are queued when the gateway dies.
  const before = await waitUntil('two invocations to run', async () => {
    const st = await Promise.all(ids.map(async (id) => (await invocation(g1.url, id)).status as string));
    return st.filter((s) => s === 'running').length === 2 ? st : undefined;
  }, 30_000, 20);
  assert.ok(before.includes('queued'), `some invocations are still queued: ${before.join(',')}`);
  assert.equal((await g1.proc.kill('SIGKILL')).signal, 'SIGKILL');

  const g2 = await startGateway({ root, redisUrl: redis.url, prefix }, 'gateway-2');
  gateways.push(g2);
  for (const [n, id] of ids.entries()) {
    const rec = await waitUntil(`invocation ${id} to finish`, async () => {
      const r = await invocation(g2.url, id);
      assert.equal(r.httpStatus, 200, `the new gateway knows ${id}: ${JSON.stringify(r)}`);
      return r.status === 'succeeded' || r.status === 'failed' ? r : undefined;
    }, 60_000, 100);
    assert.equal(rec.status, 'succeeded', `${id} (${before[n]} when the gateway died): ${JSON.stringify(rec)}`);
    assert.equal(rec.id, id);
    assert.equal(rec.result, `t:n${n}\n`);
  }
  // And the new gateway serves sync calls through the same worker.
  const sync = await invoke(g2.url, 'ticker', 'again');
  assert.equal(sync.status, 200, await sync.clone().text());
  assert.equal(await sync.text(), 't:again\n');
});

// A client whose POST got no answer because the gateway died retries it with the same
// Idempotency-Key; it must get the invocation it already created, not a second one.
test('a retried POST with the same Idempotency-Key after a gateway restart returns the same invocation', async () => {
  const g = gateways[gateways.length - 1]!;
  const key = `fault-${process.pid}-${Date.now()}`;
  const first = await invoke(g.url, 'ticker', 'once', 'async', { 'idempotency-key': key });
  assert.equal(first.status, 202, await first.clone().text());
  const { id } = (await first.json()) as { id: string };
  await g.proc.kill('SIGKILL');
  const g3 = await startGateway({ root, redisUrl: redis.url, prefix }, 'gateway-3');
  gateways.push(g3);
  const again = await invoke(g3.url, 'ticker', 'once', 'async', { 'idempotency-key': key });
  assert.ok(again.status === 200 || again.status === 202, await again.clone().text());
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  assert.equal(((await again.json()) as { id: string }).id, id, 'the same invocation, not a second one');
  const rec = await waitUntil(`invocation ${id} to finish`, async () => {
    const r = await invocation(g3.url, id);
    return r.status === 'succeeded' || r.status === 'failed' ? r : undefined;
  }, 60_000, 100);
  assert.equal(rec.result, 't:once\n');
});

// Found by the Redis-restart fault test: GET /v1/invocations/:id read the job and then its state
// in two round trips, so a poll that straddled the completion saw state "completed" with no
// result yet and reported the invocation as failed (with no error). Many pollers on many quick
// invocations make that window likely to be hit.
test('polling invocations while they complete never shows a terminal state without its outcome', async () => {
  const g = gateways[gateways.length - 1]!;
  await deployFunction(g.url, 'quick', { handler: '#!/bin/sh\necho "q:$(cat)"\n' }, { runtime: 'exec', maxInstances: 4 });
  const seen: string[] = [];
  for (let round = 0; round < 3; round++) {
    const ids: string[] = [];
    for (let n = 0; n < 40; n++) {
      const res = await invoke(g.url, 'quick', `${n}`, 'async');
      assert.equal(res.status, 202);
      ids.push(((await res.json()) as { id: string }).id);
    }
    const poll = async (id: string) => {
      for (;;) {
        const r = await invocation(g.url, id);
        if (r.status === 'succeeded' || r.status === 'failed') return seen.push(`${id} ${r.status} ${JSON.stringify(r.result ?? r.error ?? null)}`);
      }
    };
    await Promise.all(ids.flatMap((id) => [poll(id), poll(id), poll(id), poll(id)]));
  }
  const bad = seen.filter((s) => !/ succeeded "q:\d+\\n"$/.test(s));
  assert.equal(seen.length, 3 * 40 * 4);
  assert.deepEqual(bad, [], 'every terminal answer is the success with its result');
});
