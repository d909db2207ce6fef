import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { deployFunction, invocation, invoke, redisServersIn, removeRoot, startUp, waitUntil, type UpProcess } from './support/processes.js';

// Fault: the all-in-one `jiffy up` process (gateway + worker + its private redis-server, AOF on,
// data under <root>/redis) is SIGKILLed with invocations queued, and started again on the same
// store root. The queued invocations must all complete, and afterwards exactly one redis-server
// may be using <root>/redis: two servers appending to one AOF directory corrupt it.
let root: string;
const ups: UpProcess[] = [];
const prefix = `jfu${process.pid}`;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-fault-up-'));
  ups.push(await startUp({ root, prefix }, 'up-1'));
});

after(async () => {
  for (const u of ups) await u.proc.stop().catch(() => {});
  for (const u of ups) u.proc.killGroup();
  // Whatever redis-server is still serving this test's store (started by our `jiffy up`s).
  for (const pid of await redisServersIn(path.join(root, 'redis'))) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  await removeRoot(root);
});

test('jiffy up SIGKILLed and started again: queued invocations complete on one Redis', async () => {
  const up1 = ups[0]!;
  const handler = '#!/bin/sh\ninput=$(cat)\nsleep 1\necho "u:$input"\n';
  await deployFunction(up1.url, 'allinone', { handler }, { runtime: 'exec', maxInstances: 1, timeoutS: 60 });
  const ids: string[] = [];
  for (let n = 0; n < 4; n++) {
    const res = await invoke(up1.url, 'allinone', `${n}`, 'async');
    assert.equal(res.status, 202, await res.clone().text());
    ids.push(((await res.json()) as { id: string }).id);
  }
  await waitUntil('the first invocation to run', async () => (await invocation(up1.url, ids[0]!)).status === 'running', 30_000, 20);
  assert.equal((await up1.proc.kill('SIGKILL')).signal, 'SIGKILL');

  const up2 = await startUp({ root, prefix }, 'up-2');
  ups.push(up2);
  const servers = await redisServersIn(path.join(root, 'redis'));
  // The running one is recovered by BullMQ's stalled-job check (up to about a minute).
  for (const [n, id] of ids.entries()) {
    const rec = await waitUntil(`invocation ${id} to finish`, async () => {
      const r = await invocation(up2.url, id);
      return r.status === 'succeeded' || r.status === 'failed' ? r : undefined;
    }, 110_000, 200);
    assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
    assert.equal(rec.result, `u:${n}\n`);
  }
  assert.equal(servers.length, 1, `redis-servers using ${root}/redis after the restart: pids ${servers.join(', ')} (the killed jiffy up's private Redis, ${up1.redisUrl}, must be reused or stopped, not run beside ${up2.redisUrl})`);
});
