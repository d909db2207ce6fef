import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { deployQuery, tarDir } from '../src/functions/client.js';
import { serveGateway, type GatewayServer } from '../src/gateway/server.js';
import { ImageStore } from '../src/images/store.js';
import { createLogger } from '../src/log.js';
import { createKeys } from '../src/queue/keys.js';
import { repoRoot } from '../src/paths.js';
import { createSpawner } from '../src/worker/spawners.js';
import { FunctionWorker } from '../src/worker/worker.js';
import type { Spawner } from '../src/worker/spawner.js';
import { startTestRedis, type TestRedis } from './support/redis.js';

// A `jiffy worker` process that is SIGKILLed: its containers must not outlive it (fork-server
// spawner: they die with the launcher; CLI spawner: the next worker kills them), and the next worker
// on the same store root removes what it left (instance dirs, overlay mounts) and serves the queue.
let redis: TestRedis | undefined;
let root = '';
let gw: GatewayServer | undefined;
let worker: FunctionWorker | undefined;
let spawner: Spawner | undefined;
let child: ReturnType<typeof spawn> | undefined;

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await gw?.close();
  await worker?.close();
  await spawner?.close();
  await redis?.stop();
  if (root) {
    const left = (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(root));
    await fs.rm(root, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no mounts left under the test root');
  }
});

async function mountsUnder(dir: string): Promise<number> {
  return (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(dir)).length;
}

async function until(what: string, ok: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a SIGKILLed worker leaves nothing behind once the next worker starts', async () => {
  redis = await startTestRedis();
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-fn-recovery-'));
  const prefix = redis.prefix('rec');
  const keys = createKeys(prefix);
  const log = createLogger('test', 'warn');
  const store = await ImageStore.open(root);
  gw = await serveGateway({ redisUrl: redis.url, keys, store, log, port: 0, host: '127.0.0.1' });
  const c = spawn(process.execPath, [path.join(repoRoot(), 'dist/src/cli/main.js'), '--root', root, 'worker', '--prefix', prefix, '--redis', redis.url], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, JIFFY_LOG_LEVEL: 'warn' } });
  child = c;
  const gone = new Promise((r) => c.once('exit', r));
  await until('the worker process to register', async () => ((await (await fetch(`${gw!.url}/healthz`)).json()) as { workers: number }).workers === 1);

  const code = await tarDir(path.join(repoRoot(), 'examples', 'hello-node'));
  const res = await fetch(`${gw.url}/v1/functions/survivor?${deployQuery({ runtime: 'node', minWarm: 1 })}`, { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: new Uint8Array(code) });
  assert.equal(res.status, 201, await res.text());
  const instances = path.join(root, 'fn-instances');
  const dead = await fs.readdir(instances);
  assert.equal(dead.length, 1, 'the pre-warmed instance is running');

  c.kill('SIGKILL');
  await gone;
  spawner = await createSpawner(store, log);
  assert.equal(await mountsUnder(root), 0, 'no mounts of the dead worker remain');
  assert.deepEqual((await fs.readdir(instances)).filter((d) => dead.includes(d)), [], 'its instance dirs are gone');
  await until('the dead worker\'s containers to be gone', async () => {
    const cgroups = await fs.readdir('/sys/fs/cgroup/pids/jiffy').catch(() => [] as string[]);
    return !cgroups.some((c) => dead.includes(c));
  }, 10_000);
  worker = await FunctionWorker.start({ redisUrl: redis.url, keys, spawner, log });
  const r = await fetch(`${gw.url}/v1/functions/survivor/invoke`, { method: 'POST', body: '{"name":"again"}' });
  assert.equal(r.status, 200);
  assert.equal(((await r.json()) as { message: string }).message, 'Hello, again!');
});
