import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ImageStore } from '../src/images/store.js';
import { buildBusyboxImage } from '../src/images/scratch-image.js';
import { writeLayerBlob, dirToLayerEntries } from '../src/archive/tar-writer.js';
import { MediaTypes } from '../src/images/types.js';
import { makeOpaque, makeWhiteouts, scanOverlay } from '../src/archive/whiteout.js';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jiffy-h3-store-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function freshStore(name: string): Promise<ImageStore> {
  return ImageStore.open(path.join(tmp, name));
}

/** Runs an ES module snippet in a child node process with `store` opened at `root`; resolves its stdout. */
function child(root: string, body: string): { done: Promise<string>; pid: number; kill: () => void } {
  const code = `import { ImageStore } from '${dist}/src/images/store.js';
const store = await ImageStore.open(${JSON.stringify(root)});
${body}`;
  const p = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const done = new Promise<string>((res, rej) => p.on('exit', (c, sig) => (c === 0 ? res(out) : rej(new Error(`child exited ${c ?? sig}: ${err}`)))));
  return { done, pid: p.pid!, kill: () => p.kill('SIGKILL') };
}

test('put, resolve by every kind of reference, tag, list', async () => {
  const store = await freshStore('basic');
  const img = await buildBusyboxImage(store, 'busybox:1.36');
  assert.equal(img.id, img.configDigest);
  assert.deepEqual(img.refs, ['busybox:1.36']);
  assert.equal(img.layers.length, 1);
  const layer = img.layers[0];
  assert.equal(layer.chainId, layer.diffId, 'chain id of the base layer is its diff id');
  assert.ok(fs.statSync(path.join(layer.dir, 'bin/busybox')).isFile());
  assert.equal(fs.readlinkSync(path.join(layer.dir, 'bin/sh')), 'busybox');
  assert.equal(fs.realpathSync(path.join(store.paths.root, layer.lowerPath)), layer.dir);
  assert.equal(fs.lstatSync(path.join(layer.dir, 'tmp')).mode & 0o7777, 0o1777);

  for (const ref of ['busybox:1.36', img.id, img.id.slice(7, 19), img.id.slice(7, 11), img.manifestDigest, `busybox@${img.manifestDigest}`]) {
    assert.equal((await store.resolve(ref)).id, img.id, ref);
  }
  await assert.rejects(store.resolve('busybox'), (e: Error & { code?: string }) => e.code === 'not_found' && /jiffy images/.test(e.message) && /jiffy pull busybox/.test(e.message));
  await assert.rejects(store.resolve('Bad Name!'), /not found|invalid/);

  await store.tag('busybox:1.36', 'localhost:5000/team/bb:v2');
  await store.tag(img.id.slice(7, 19), 'busybox');
  const again = await store.resolve('busybox:latest');
  assert.deepEqual(again.refs, ['busybox:1.36', 'busybox:latest', 'localhost:5000/team/bb:v2']);
  assert.equal((await store.list()).length, 1);
});

test('appendLayer / appendHistory build on a base; adopt moves an unpacked dir in', async () => {
  const store = await freshStore('append');
  const base = await buildBusyboxImage(store, 'base:1');
  const src = path.join(tmp, 'append-src');
  fs.mkdirSync(path.join(src, 'app'), { recursive: true });
  fs.writeFileSync(path.join(src, 'app/hello.txt'), 'hello\n');
  const blob = await writeLayerBlob(store.content, dirToLayerEntries(src), { gzip: false });
  const unpacked = path.join(store.paths.root, 'adopt-me');
  fs.cpSync(src, unpacked, { recursive: true });
  const child1 = await store.appendLayer(base, { blobDigest: blob.digest, diffId: blob.diffId, size: blob.size, mediaType: blob.mediaType, unpackedDir: unpacked }, { created_by: 'COPY . /', comment: 'add app' }, { ref: 'app:1', author: 'tester' });
  assert.equal(fs.existsSync(unpacked), false, 'adopted dir was moved, not copied');
  assert.equal(child1.layers.length, 2);
  assert.equal(child1.layers[1].chainId, store.layers.chainId(base.layers[0].chainId, blob.diffId));
  assert.equal(fs.readFileSync(path.join(child1.layers[1].dir, 'app/hello.txt'), 'utf8'), 'hello\n');
  assert.equal(child1.config.author, 'tester');
  const withEnv = await store.appendHistory(child1, { created_by: 'ENV A=1' }, { Env: ['A=1'], Cmd: ['/bin/sh', '-c', 'echo $A'] }, 'app:2');
  assert.deepEqual(withEnv.config.config?.Env, ['A=1']);
  assert.deepEqual(withEnv.config.rootfs.diff_ids, child1.config.rootfs.diff_ids);
  assert.deepEqual(withEnv.config.history?.map((h) => [h.created_by, !!h.empty_layer]), [
    ['jiffy buildBusyboxImage: ADD busybox-static /bin/busybox', false],
    ['COPY . /', false],
    ['ENV A=1', true],
  ]);
  assert.equal(withEnv.config.history?.[1].comment, 'add app');
  assert.notEqual(withEnv.id, child1.id);
});

test('rmi: untag vs delete, force for multi-name ids, shared layers kept, leases block, prune reclaims', async () => {
  const store = await freshStore('rmi');
  const a = await buildBusyboxImage(store, 'a:1');
  await store.tag('a:1', 'a:2');
  await assert.rejects(store.remove(a.id), (e: Error & { code?: string }) => e.code === 'failed_precondition' && /rmi -f/.test(e.message));
  assert.deepEqual(await store.remove('a:2'), { untagged: ['a:2'], deleted: [] });
  // A second image sharing the base layer.
  const b = await store.appendHistory(a, { created_by: 'LABEL x=y' }, { Labels: { x: 'y' } }, 'b:1');
  const lease = await store.lease('a:1');
  await assert.rejects(store.remove('a:1'), /in use by/);
  const r = await store.remove('a:1', { force: true });
  assert.deepEqual(r.untagged, ['a:1']);
  assert.deepEqual(r.deleted, [a.id], 'the shared layer stays');
  assert.ok(await store.layers.has(b.layers[0].chainId));
  await store.remove('b:1');
  assert.ok(await store.layers.has(b.layers[0].chainId), 'leased layer survives rmi');
  assert.ok(await store.content.has(a.layers[0].digest), 'leased blob survives rmi');
  assert.deepEqual((await store.prune()).layers, 0);
  await lease.release();
  const junk = await store.content.putBuffer(Buffer.from('unreferenced'));
  const p = await store.prune();
  assert.equal(p.layers, 1);
  assert.ok(p.blobs >= 3 && p.bytes > 1_000_000, JSON.stringify(p));
  assert.equal(await store.content.has(junk.digest), false);
  assert.deepEqual(await store.content.list(), []);
  assert.deepEqual(await store.layers.list(), []);
  assert.deepEqual(fs.readdirSync(store.paths.shortLinks), []);
});

test('concurrent ensure of the same layer from two processes: one unpack, both succeed', async () => {
  const root = path.join(tmp, 'concurrent');
  const store = await ImageStore.open(root);
  const entries = Array.from({ length: 400 }, (_, i) => ({ path: `d${i % 20}/f${i}`, type: 'file' as const, content: crypto.randomBytes(8192) }));
  const blob = await writeLayerBlob(store.content, entries, { gzip: true });
  const body = `const events = [];
const r = await store.layers.ensure({ blobDigest: '${blob.digest}', diffId: '${blob.diffId}', parentChainId: null, mediaType: '${MediaTypes.ociLayerGzip}', onProgress: (e) => e.done && events.push(e.action) });
console.log(JSON.stringify({ dir: r.dir, events }));`;
  const outs = await Promise.all([child(root, body).done, child(root, body).done]);
  const res = outs.map((o) => JSON.parse(o.trim()) as { dir: string; events: string[] });
  assert.equal(res[0].dir, res[1].dir);
  const finals = res.map((r) => r.events[r.events.length - 1]).sort();
  assert.deepEqual(finals, ['Already exists', 'Extracted'], 'exactly one process unpacked the layer');
  assert.equal(fs.readdirSync(path.join(res[0].dir, 'd7')).length, 20);
  assert.deepEqual(fs.readdirSync(store.paths.layers).filter((n) => n.startsWith('.')), [], 'no temp dir or lock left');
});

test('concurrent name updates from two processes lose nothing', async () => {
  const root = path.join(tmp, 'names');
  const store = await ImageStore.open(root);
  await buildBusyboxImage(store, 'base:1');
  const body = (p: string) => `for (let i = 0; i < 15; i++) await store.tag('base:1', '${p}' + i + ':t');`;
  await Promise.all([child(root, body('x')).done, child(root, body('y')).done]);
  const refs = (await store.resolve('base:1')).refs;
  assert.equal(refs.length, 31, refs.join(' '));
});

test('crash safety: a writer killed mid-ingest leaves nothing visible; leftovers are cleaned; stale locks are broken', async () => {
  const root = path.join(tmp, 'crash');
  const store = await ImageStore.open(root);
  const c = child(root, `import { Readable } from 'node:stream';
let n = 0;
const src = new Readable({ read() { setTimeout(() => this.push(Buffer.alloc(65536, n++ & 255)), 5); } });
await store.content.ingest(src);`);
  // Wait until the temp file has data, then kill -9 the writer.
  for (let i = 0; i < 2000; i++) {
    const names = fs.readdirSync(store.paths.ingest);
    if (names.length && fs.statSync(path.join(store.paths.ingest, names[0])).size > 100_000) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  c.kill();
  await assert.rejects(c.done);
  assert.equal(fs.readdirSync(store.paths.ingest).length, 1, 'the partial temp file is in ingest/');
  assert.deepEqual(await store.content.list(), [], 'no blob became visible');
  // A layer temp dir of a dead process, and a stale lock of a dead pid.
  const deadPid = 2 ** 22 + 12345; // above pid_max's default range: never a live process
  fs.mkdirSync(path.join(store.paths.layers, `.tmp-${deadPid}-abcdef/diff`), { recursive: true });
  assert.deepEqual(await store.layers.list(), []);
  fs.writeFileSync(`${store.paths.images}.lock`, `${deadPid}\n`);
  await buildBusyboxImage(store, 'after-crash:1');
  const old = new Date(Date.now() - 2 * 3600_000);
  for (const n of fs.readdirSync(store.paths.ingest)) fs.utimesSync(path.join(store.paths.ingest, n), old, old);
  await store.prune();
  assert.deepEqual(fs.readdirSync(store.paths.ingest), []);
  assert.deepEqual(fs.readdirSync(store.paths.layers).filter((n) => n.startsWith('.')), []);
  assert.ok(await store.resolve('after-crash:1'));
});

test('unpacked layers mount as overlay lower dirs: whiteouts hide files, opaque dirs hide lower contents', async () => {
  const store = await freshStore('overlay');
  const base = await buildBusyboxImage(store, 'ov:base', [
    { path: 'opt/keep', type: 'directory' },
    { path: 'opt/keep/a', type: 'file', content: Buffer.from('a') },
  ]);
  const blob = await writeLayerBlob(store.content, [
    { path: 'etc/.wh.group', type: 'file' },
    { path: 'opt/keep/.wh..wh..opq', type: 'file' },
    { path: 'opt/keep/b', type: 'file', content: Buffer.from('b') },
  ]);
  const img = await store.appendLayer(base, { blobDigest: blob.digest, diffId: blob.diffId, size: blob.size, mediaType: blob.mediaType }, { created_by: 'RUN rm /etc/group' }, { ref: 'ov:top' });
  const merged = path.join(store.paths.root, 'merged');
  fs.mkdirSync(merged);
  const lower = img.layers.map((l) => l.lowerPath).reverse().join(':');
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lower}`, merged], { cwd: store.paths.root });
  try {
    assert.equal(fs.existsSync(path.join(merged, 'etc/group')), false, 'whiteout hides /etc/group');
    assert.ok(fs.existsSync(path.join(merged, 'etc/passwd')));
    assert.deepEqual(fs.readdirSync(path.join(merged, 'opt/keep')), ['b'], 'opaque dir hides the lower a');
    assert.ok(fs.statSync(path.join(merged, 'bin/busybox')).isFile());
  } finally {
    execFileSync('umount', [merged]);
  }
});

test('an overlay upper dir round-trips through a layer tar (commit path): whiteouts and opaque dirs survive', async () => {
  const store = await freshStore('upper');
  const upper = path.join(store.paths.root, 'upper');
  fs.mkdirSync(path.join(upper, 'etc'), { recursive: true });
  fs.mkdirSync(path.join(upper, 'var/cache'), { recursive: true });
  fs.writeFileSync(path.join(upper, 'var/cache/new'), 'new');
  await makeWhiteouts([path.join(upper, 'etc/removed')]);
  await makeOpaque([path.join(upper, 'var/cache')]);
  const entries: string[] = [];
  for await (const e of dirToLayerEntries(upper, { overlay: true })) entries.push(e.path);
  assert.deepEqual(entries, ['etc', 'etc/.wh.removed', 'var', 'var/cache', 'var/cache/.wh..wh..opq', 'var/cache/new']);
  const blob = await writeLayerBlob(store.content, dirToLayerEntries(upper, { overlay: true }));
  const r = await store.layers.ensure({ blobDigest: blob.digest, diffId: blob.diffId, parentChainId: null, mediaType: blob.mediaType });
  assert.deepEqual(await scanOverlay(r.dir), await scanOverlay(upper));
  assert.deepEqual(await scanOverlay(r.dir), { whiteouts: ['etc/removed'], opaque: ['var/cache'] });
});
