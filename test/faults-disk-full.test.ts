import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  RedisProcess, deployFunction, invoke, removeRoot, runJiffy, startGateway, startWorker,
  type GatewayProcess, type WorkerProcess,
} from './support/processes.js';

const run = promisify(execFile);

// Fault: the file system under the store root fills up. The store root is a small tmpfs; a
// deploy whose code does not fit and a `jiffy load` of an image bigger than the space must fail
// with an error that says the store is full and what to do, and leave the store as it was:
// earlier images still resolve and boot, no half-written blob or layer is visible, no temp files
// are left holding the space. Gateway, worker, redis-server and the CLI are separate processes.
const SIZE = '8m';
let base: string;
let root: string;
let mounted = false;
let redis: RedisProcess;
let gw: GatewayProcess;
let worker: WorkerProcess;
const prefix = `jfd${process.pid}`;

before(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-fault-disk-'));
  root = path.join(base, 'store');
  await fs.mkdir(root);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${SIZE},mode=0755`, 'jiffy-fault-tmpfs', root]);
    mounted = true;
  } catch (e) {
    throw new Error(`cannot mount a ${SIZE} tmpfs at ${root} (needs root and tmpfs support): ${(e as Error).message}`);
  }
  redis = await RedisProcess.start(path.join(base, 'redis'));
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
  await removeRoot(root); // unmounts anything left under the tmpfs first
  if (mounted) await run('umount', ['-l', root]).catch(() => {});
  await fs.rm(base, { recursive: true, force: true });
});

/** Files under the store that hold data (blobs, unpacked layers, names), with sizes. */
async function storeFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const d of ['blobs/sha256', 'layers']) {
    for (const n of await fs.readdir(path.join(root, d)).catch(() => [] as string[])) out.push(`${d}/${n}`);
  }
  return out.sort();
}

/** Every blob's content hashes to its name (nothing half-written became visible). */
async function corruptBlobs(): Promise<string[]> {
  const bad: string[] = [];
  for (const n of await fs.readdir(path.join(root, 'blobs', 'sha256'))) {
    const h = crypto.createHash('sha256').update(await fs.readFile(path.join(root, 'blobs', 'sha256', n))).digest('hex');
    if (h !== n) bad.push(n);
  }
  return bad;
}

/** Temp files left in the store's scratch areas (ingest/, tmp/, layers/.tmp-*). */
async function scratchLeft(): Promise<string[]> {
  const left: string[] = [];
  for (const d of ['ingest', 'tmp']) for (const n of await fs.readdir(path.join(root, d)).catch(() => [] as string[])) left.push(`${d}/${n}`);
  for (const n of await fs.readdir(path.join(root, 'layers')).catch(() => [] as string[])) if (n.startsWith('.')) left.push(`layers/${n}`);
  return left;
}

/** A docker-archive (`docker save` layout) of one image `name` with a layer holding `bytes` of random data. */
async function bigArchive(name: string, bytes: number): Promise<string> {
  const dir = await fs.mkdtemp(path.join(base, 'archive-'));
  await fs.mkdir(path.join(dir, 'fs'));
  await fs.writeFile(path.join(dir, 'fs', 'big.bin'), crypto.randomBytes(bytes));
  await run('tar', ['-cf', path.join(dir, 'layer.tar'), '-C', path.join(dir, 'fs'), 'big.bin']);
  const diffId = `sha256:${crypto.createHash('sha256').update(await fs.readFile(path.join(dir, 'layer.tar'))).digest('hex')}`;
  const config = { architecture: process.arch === 'x64' ? 'amd64' : process.arch, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffId] }, history: [{ created_by: 'fault test' }] };
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: [name], Layers: ['layer.tar'] }]));
  const out = path.join(base, 'big.tar');
  await run('tar', ['-cf', out, '-C', dir, 'manifest.json', 'config.json', 'layer.tar']);
  await fs.rm(dir, { recursive: true, force: true });
  return out;
}

let before1: { files: string[]; images: string };

test('a deploy whose code does not fit fails saying the store is full; the deployed version keeps working', async () => {
  await deployFunction(gw.url, 'tiny', { handler: '#!/bin/sh\necho tiny-ok\n' }, { runtime: 'exec' });
  const images = await runJiffy(['images', '--format', 'json'], { root });
  assert.equal(images.code, 0, images.stderr);
  before1 = { files: await storeFiles(), images: images.stdout };
  assert.match(images.stdout, /jiffy-fn-tiny/);

  // 10 MiB of code (incompressible) on an 8 MiB file system that already holds the busybox image.
  const data = crypto.randomBytes(10 * 1024 * 1024).toString('base64');
  const err = await deployFunction(gw.url, 'tiny', { handler: '#!/bin/sh\necho big\n', 'data.b64': data }, { runtime: 'exec' }).then(
    () => assert.fail('a deploy bigger than the free space succeeded'),
    (e: Error) => e.message,
  );
  const body = JSON.parse(err.slice(err.indexOf('{'))) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'resource_exhausted', `a full disk is not the caller's bad input: ${err}`);
  assert.match(body.error.message, /no space left|store .*full|disk .*full/i, err);
  assert.match(body.error.message, /free (up )?(some )?space|prune|rmi/i, `the message says what to do: ${err}`);
  // The function still resolves to the version that fit, and it still runs.
  const info = (await (await fetch(`${gw.url}/v1/functions/tiny`)).json()) as { latest: number };
  assert.equal(info.latest, 1);
  const res = await invoke(gw.url, 'tiny', '');
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(await res.text(), 'tiny-ok\n');
});

test('jiffy load of an image bigger than the free space fails saying the store is full', async () => {
  const archive = await bigArchive('toobig:1', 10 * 1024 * 1024);
  const r = await runJiffy(['load', '-q', '-i', archive], { root });
  assert.equal(r.code, 1, `a known failure, not a crash (exit 2): ${r.stderr}`);
  assert.match(r.stderr, /no space left|store .*full|disk .*full/i, r.stderr);
  assert.match(r.stderr, /free (up )?(some )?space|prune|rmi/i, `the message says what to do: ${r.stderr}`);
  assert.doesNotMatch(r.stdout, /Loaded image/);
});

test('jiffy load of an image whose layer fits as a blob but not unpacked fails saying the store is full', async () => {
  const st = await fs.statfs(root);
  const free = st.bavail * st.bsize;
  // The compressed-or-not blob (about 0.7 × free) is stored; unpacking it needs as much again.
  const archive = await bigArchive('halfbig:1', Math.floor(free * 0.7));
  const r = await runJiffy(['load', '-q', '-i', archive], { root });
  assert.equal(r.code, 1, `a known failure, not a crash (exit 2): ${r.stderr}`);
  assert.match(r.stderr, /no space left|store .*full|disk .*full/i, r.stderr);
  assert.doesNotMatch(r.stderr, /not a (usable|valid) tar|corrupt|hostile/i, `the layer is fine, the disk is full: ${r.stderr}`);
  assert.match(r.stderr, /free (up )?(some )?space|prune|rmi/i, `the message says what to do: ${r.stderr}`);
});

test('after the failures the store is as it was: images resolve and boot, nothing half-written', async () => {
  assert.ok(before1, 'the first test recorded the store before the failures');
  assert.deepEqual(await scratchLeft(), [], 'no temp files left holding the space');
  assert.deepEqual(await corruptBlobs(), [], 'every visible blob matches its digest');
  const now = await storeFiles();
  assert.deepEqual(before1.files.filter((f) => !now.includes(f)), [], 'no blob or layer was lost');
  // A failed load may leave blobs it finished before the disk filled (complete and verified, as
  // checked above, but unreferenced, as in containerd until gc): prune must take them back.
  const pruned = await runJiffy(['prune'], { root });
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.deepEqual(await storeFiles(), before1.files, `only unreferenced leftovers were added: ${now.filter((f) => !before1.files.includes(f)).join(', ')}`);
  const images = await runJiffy(['images', '--format', 'json'], { root });
  assert.equal(images.code, 0, images.stderr);
  assert.deepEqual(JSON.parse(images.stdout), JSON.parse(before1.images));
  assert.doesNotMatch(images.stdout, /toobig/);
  // The earlier images still boot: the function image under the CLI, and the function via the worker.
  const boot = await runJiffy(['run', '--rm', 'jiffy-fn-tiny:v1', '/var/task/handler'], { root });
  assert.equal(boot.code, 0, boot.stderr);
  assert.equal(boot.stdout, 'tiny-ok\n');
  const res = await invoke(gw.url, 'tiny', '');
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(await res.text(), 'tiny-ok\n');
});
