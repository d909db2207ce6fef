import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  RedisProcess, deployFunction, invocation, invoke, removeRoot, startGateway, startWorker, waitUntil,
  workerLeftovers, type GatewayProcess, type WorkerProcess,
} from './support/processes.js';

// Fault: a function whose instances crash on every call (process.exit in the handler). A storm of
// such invocations must each end (failed, function_crashed) without wedging the warm pool or
// leaking capacity slots: afterwards the crashing version still answers (with its crash, not a
// hang or a 429), a healthy version of the same function serves normally, and the crashed
// instances leave nothing behind. Gateway, worker and redis-server are separate processes.
let root: string;
let redis: RedisProcess;
let gw: GatewayProcess;
let worker: WorkerProcess;
const prefix = `jfc${process.pid}`;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-fault-crash-'));
  redis = await RedisProcess.start(path.join(root, 'redis'));
  const env = { root, redisUrl: redis.url, prefix };
  gw = await startGateway(env);
  worker = await startWorker(env);
});

after(async () => {
  await worker?.proc.stop().catch(() => {});
  await gw?.proc.stop().catch(() => {});
  worker?.proc.killGroup();
  gw?.proc.killGroup();
  await redis?.stop();
  await removeRoot(root);
});

test('a crash storm fails every call as function_crashed and leaves the pool serving', async () => {
  // Each instance takes several invocations at once and dies under all of them.
  const crashing = 'export const handler = async () => { await new Promise((r) => setTimeout(r, 100)); process.exit(1); };\n';
  await deployFunction(gw.url, 'crashy', { 'index.mjs': crashing }, { runtime: 'node', maxInstances: 2, concurrency: 4, timeoutS: 30 });
  const ids: string[] = [];
  for (let n = 0; n < 16; n++) {
    const res = await invoke(gw.url, 'crashy@1', JSON.stringify({ n }), 'async');
    assert.equal(res.status, 202, await res.clone().text());
    ids.push(((await res.json()) as { id: string }).id);
  }
  for (const id of ids) {
    const rec = await waitUntil(`crashing invocation ${id} to end`, async () => {
      const r = await invocation(gw.url, id);
      return r.status === 'succeeded' || r.status === 'failed' ? r : undefined;
    }, 90_000, 100);
    assert.equal(rec.status, 'failed', JSON.stringify(rec));
    assert.equal((rec.error as { code: string }).code, 'function_crashed', JSON.stringify(rec));
  }
  // Sync calls on the crashing version are answered with the crash, never 429 (leaked slots) or a hang.
  for (let i = 0; i < 3; i++) {
    const res = await invoke(gw.url, 'crashy@1', '{}');
    const body = (await res.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'function_crashed', JSON.stringify(body));
    assert.equal(res.status, 502);
  }

  // A healthy version of the same function serves normally, warm after the first call.
  await deployFunction(gw.url, 'crashy', { 'index.mjs': 'export const handler = async (e) => ({ ok: true, n: e.n });\n' }, { runtime: 'node', maxInstances: 2, concurrency: 1 });
  // Two at a time: the capacity (max-instances 2 × concurrency 1); more would rightly get 429.
  const results: Array<{ body: unknown; version: string | null }> = [];
  for (const pair of [[1, 2], [3, 4], [5, 6]]) {
    results.push(...(await Promise.all(pair.map(async (n) => {
      const res = await invoke(gw.url, 'crashy', JSON.stringify({ n }));
      assert.equal(res.status, 200, await res.clone().text());
      return { body: await res.json(), version: res.headers.get('x-jiffy-function-version') };
    }))));
  }
  assert.deepEqual(results.map((r) => r.body), [1, 2, 3, 4, 5, 6].map((n) => ({ ok: true, n })));
  assert.ok(results.every((r) => r.version === '2'), JSON.stringify(results));
  const warm = await invoke(gw.url, 'crashy', JSON.stringify({ n: 7 }));
  assert.equal(warm.status, 200);
  assert.equal(warm.headers.get('x-jiffy-cold-start'), 'false', 'instances of the healthy version stay warm');
});

test('after the storm the worker stops cleanly and no crashed instance is left behind', async () => {
  assert.equal((await worker.proc.stop(30_000)).code, 0, worker.proc.tail());
  assert.deepEqual(await workerLeftovers(root, worker.id), []);
});
