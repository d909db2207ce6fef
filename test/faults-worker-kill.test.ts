import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  RedisProcess, deployFunction, dirsWithPrefix, invocation, invoke, removeRoot, startGateway, startWorker, waitUntil,
  workerLeftovers, type GatewayProcess, type WorkerProcess,
} from './support/processes.js';

// Fault: the worker process running an invocation is SIGKILLed. Gateway, worker and redis-server
// are separate OS processes. BullMQ's stalled-job check (the lock of a dead worker expires, the
// next check moves the job back to wait) must hand the job to a new worker, which runs it to one
// result under the same invocation id; nothing the dead worker started may stay behind.
let root: string;
let redis: RedisProcess;
let gw: GatewayProcess;
const workers: WorkerProcess[] = [];
const prefix = `jfw${process.pid}`;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-fault-wk-'));
  redis = await RedisProcess.start(path.join(root, 'redis'));
  const env = { root, redisUrl: redis.url, prefix };
  gw = await startGateway(env);
  workers.push(await startWorker(env, 'worker-1'));
});

after(async () => {
  for (const w of workers) await w.proc.stop().catch(() => {});
  await gw?.proc.stop().catch(() => {});
  for (const w of workers) w.proc.killGroup();
  gw?.proc.killGroup();
  await redis?.stop();
  await removeRoot(root);
});

test('a worker SIGKILLed mid-invocation: a new worker runs the job to one result under the same id', async () => {
  const handler = '#!/bin/sh\ninput=$(cat)\nsleep 3\necho "done:$input"\n';
  await deployFunction(gw.url, 'slowpoke', { handler }, { runtime: 'exec', timeoutS: 60 });
  const res = await invoke(gw.url, 'slowpoke', 'abc', 'async');
  assert.equal(res.status, 202, await res.clone().text());
  const { id } = (await res.json()) as { id: string };
  const w1 = workers[0]!;
  // Kill only once the handler runs: the job is active and w1's container exists.
  await waitUntil('the invocation to run in a container of worker 1', async () => {
    const rec = await invocation(gw.url, id);
    return rec.status === 'running' && (await dirsWithPrefix(root, `${w1.id}-`)).length > 0;
  }, 60_000, 20);
  const killed = await w1.proc.kill('SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');
  assert.equal((await invocation(gw.url, id)).status, 'running', 'the killed worker cannot have finished it');

  workers.push(await startWorker({ root, redisUrl: redis.url, prefix }, 'worker-2'));
  // BullMQ: the dead worker's lock expires (lockDuration 30 s) and a stalled check moves the job
  // back to wait (every stalledInterval, 30 s), so this takes up to about a minute.
  const rec = await waitUntil('the invocation to finish after the worker was killed', async () => {
    const r = await invocation(gw.url, id);
    return r.status === 'succeeded' || r.status === 'failed' ? r : undefined;
  }, 110_000, 200);
  assert.equal(rec.status, 'succeeded', `${JSON.stringify(rec)}\nworker-2 log:\n${workers[1]!.proc.tail()}`);
  assert.equal(rec.id, id);
  assert.equal(rec.result, 'done:abc\n');
  // From the caller's view it completed once: the record does not change afterwards.
  const again = await invocation(gw.url, id);
  assert.deepEqual({ status: again.status, result: again.result, timings: again.timings }, { status: rec.status, result: rec.result, timings: rec.timings });

  // The new worker serves the function normally after the takeover.
  const sync = await invoke(gw.url, 'slowpoke', 'xyz');
  assert.equal(sync.status, 200, await sync.clone().text());
  assert.equal(await sync.text(), 'done:xyz\n');

  // Nothing the killed worker started stays behind (containers, rootfs mounts, dirs, cgroups).
  const left = await waitUntil('the killed worker\'s containers to be cleaned up', async () => {
    const l = await workerLeftovers(root, w1.id);
    return l.length === 0 ? l : undefined;
  }, 5_000, 250).catch(async () => workerLeftovers(root, w1.id));
  assert.deepEqual(left, [], `left behind by SIGKILLed worker ${w1.id} (worker-2 ${workers[1]!.id} should clean these up)`);
});

test('a worker stopped with SIGTERM leaves nothing behind', async () => {
  const w2 = workers[1];
  assert.ok(w2, 'the first test did not get as far as starting worker 2');
  const exit = await w2.proc.stop(30_000);
  assert.equal(exit.code, 0, w2.proc.tail());
  assert.deepEqual(await workerLeftovers(root, w2.id), []);
});
