import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  RedisProcess, deployFunction, dirsWithPrefix, invocation, invoke, removeRoot, startGateway, startWorker, waitUntil, workerLeftovers,
  type GatewayProcess, type WorkerProcess,
} from './support/processes.js';

// Fault: Redis goes away (SHUTDOWN with appendonly on) while a gateway and a worker are running
// and invocations are queued and running, and comes back on the same port and dir. Gateway and
// worker must reconnect on their own (ioredis retries; BullMQ resumes), every queued invocation
// must complete, and sync invokes must work again. All of them are separate OS processes.
let root: string;
let redis: RedisProcess;
let gw: GatewayProcess;
let worker: WorkerProcess;
const workers: WorkerProcess[] = [];
const prefix = `jfr${process.pid}`;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-fault-redis-'));
  redis = await RedisProcess.start(path.join(root, 'redis'));
  const env = { root, redisUrl: redis.url, prefix };
  gw = await startGateway(env);
  workers.push((worker = await startWorker(env)));
});

after(async () => {
  for (const w of workers) await w.proc.stop().catch(() => {});
  await gw?.proc.stop().catch(() => {});
  for (const w of workers) w.proc.killGroup();
  gw?.proc.killGroup();
  await redis?.stop();
  await removeRoot(root);
});

async function containers(): Promise<string[]> {
  return dirsWithPrefix(root, `${worker.id}-`);
}

async function finished(id: string): Promise<Record<string, unknown>> {
  return waitUntil(`invocation ${id} to finish`, async () => {
    const r = await invocation(gw.url, id);
    return r.status === 'succeeded' || r.status === 'failed' ? r : undefined;
  }, 90_000, 100);
}

test('invocations queued and running across a Redis restart all complete; sync works after', async () => {
  // One at a time (max-instances 1), so most of the jobs wait in Redis while it restarts.
  const handler = '#!/bin/sh\ninput=$(cat)\nsleep 1\necho "r:$input"\n';
  await deployFunction(gw.url, 'steady', { handler }, { runtime: 'exec', maxInstances: 1, timeoutS: 60 });
  const ids: string[] = [];
  for (let n = 0; n < 5; n++) {
    const res = await invoke(gw.url, 'steady', `a${n}`, 'async');
    assert.equal(res.status, 202, await res.clone().text());
    ids.push(((await res.json()) as { id: string }).id);
  }
  await waitUntil('the first invocation to run', async () => (await invocation(gw.url, ids[0]!)).status === 'running' && (await containers()).length > 0, 30_000, 20);

  const down = await redis.shutdown();
  assert.equal(down.code, 0, 'redis-server exits cleanly on SHUTDOWN');
  // The running invocation finishes while Redis is away: its result must not be lost.
  await waitUntil('the running container to finish while Redis is down', async () => (await containers()).length === 0, 30_000, 50);
  // A caller enqueueing during the outage: the gateway must not lose it (it may hold the request
  // until Redis is back) nor crash.
  const during = invoke(gw.url, 'steady', 'during', 'async');
  assert.ok(gw.proc.alive && worker.proc.alive, 'gateway and worker survive losing Redis');

  await redis.restart();
  const lateRes = await during;
  assert.equal(lateRes.status, 202, `an invocation posted while Redis was down: ${await lateRes.clone().text()}`);
  ids.push(((await lateRes.json()) as { id: string }).id);

  for (const [n, id] of ids.entries()) {
    const rec = await finished(id);
    assert.equal(rec.status, 'succeeded', `${id}: ${JSON.stringify(rec)}\nworker log:\n${worker.proc.tail()}`);
    assert.equal(rec.result, `r:${n < 5 ? `a${n}` : 'during'}\n`);
  }
  const sync = await invoke(gw.url, 'steady', 'sync-after');
  assert.equal(sync.status, 200, await sync.clone().text());
  assert.equal(await sync.text(), 'r:sync-after\n');
  assert.ok(gw.proc.alive && worker.proc.alive);
});

test('right after a Redis restart a SIGTERMed worker finishes its running invocation and exits', async () => {
  // As in the first test, Redis goes away under a running invocation; the worker is told to stop
  // while the next one, taken right after Redis came back, runs. The outage is held a few seconds
  // so ioredis backs off between reconnect attempts and BullMQ's blocking client may still be
  // "reconnecting" at that moment (the race is not hit every time, hence several rounds).
  for (let round = 0; round < 3; round++) {
    if (round > 0) workers.push((worker = await startWorker({ root, redisUrl: redis.url, prefix }, `worker-${round + 1}`)));
    const ids: string[] = [];
    for (const n of ['p', 'q']) {
      const res = await invoke(gw.url, 'steady', `${n}${round}`, 'async');
      assert.equal(res.status, 202);
      ids.push(((await res.json()) as { id: string }).id);
    }
    await waitUntil('the first to run', async () => (await invocation(gw.url, ids[0]!)).status === 'running' && (await containers()).length > 0, 30_000, 20);
    assert.equal((await redis.shutdown()).code, 0);
    await waitUntil('its container to finish while Redis is down', async () => (await containers()).length === 0, 30_000, 50);
    await new Promise((r) => setTimeout(r, 3000));
    await redis.restart();
    // Watched on disk, not through the gateway: its own reconnect may lag behind the worker's.
    await waitUntil('the second to run in a container', async () => (await containers()).length > 0, 30_000, 5);
    // A graceful stop waits for the running invocation (1 s); 30 s means it hangs.
    const exit = await worker.proc.stop(30_000);
    assert.equal(exit.code, 0, `round ${round}: worker did not exit on SIGTERM (${JSON.stringify(exit)}):\n${worker.proc.tail()}`);
    for (const [i, id] of ids.entries()) {
      const rec = await invocation(gw.url, id);
      assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
      assert.equal(rec.result, `r:${'pq'[i]}${round}\n`);
    }
  }
});

test('gateway and workers shut down cleanly after the restarts and leave no containers', async () => {
  for (const w of workers.filter((x) => x.proc.alive)) assert.equal((await w.proc.stop(30_000)).code, 0, w.proc.tail());
  assert.equal((await gw.proc.stop(30_000)).code, 0, gw.proc.tail());
  for (const w of workers) assert.deepEqual(await workerLeftovers(root, w.id), []);
});
