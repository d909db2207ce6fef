import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { repoRoot } from '../src/paths.js';
import { ImageStore } from '../src/images/store.js';
import { RECIPE_LABEL, buildRuntimeImage, ensureRuntimeImage } from '../src/build/runtime-images.js';
import { findInImage, lowerDirs, storeWithRuntimeImages, tempStore, type TempStore } from './support/runtime-images.js';

const run = promisify(execFile);
let rt: Awaited<ReturnType<typeof storeWithRuntimeImages>>;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  rt = await storeWithRuntimeImages(['busybox', 'node', 'python'], 'rtimg');
  cleanups.push(rt.cleanup);
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Runs argv inside the image's root file system: a private mount namespace, overlay of its layers, chroot. */
async function runInImage(t: TempStore, img: Awaited<ReturnType<typeof ensureRuntimeImage>>, argv: string[]): Promise<string> {
  const mnt = await fs.mkdtemp(path.join(t.root, 'mnt-'));
  const script = 'mount -t overlay overlay -o "lowerdir=$1" "$2" && shift 2 && exec chroot "$@"';
  const { stdout } = await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', lowerDirs(img).join(':'), mnt, mnt, ...argv], {
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' },
  });
  return stdout;
}

test('busybox: applets, users, /tmp, two layers with history', async () => {
  const img = rt.images.busybox;
  assert.ok(img.refs.includes('busybox:latest'));
  assert.equal(img.layers.length, 2);
  const layered = (img.config.history ?? []).filter((h) => !h.empty_layer).map((h) => h.created_by);
  assert.deepEqual(layered, ['COPY base/ / # buildkit', 'COPY busybox/ / # buildkit']);
  assert.ok((img.config.history ?? []).some((h) => h.empty_layer && h.created_by === 'CMD ["sh"]'));
  assert.equal(await fs.readlink((await findInImage(img, 'bin/sh'))!), 'busybox');
  const passwd = await fs.readFile((await findInImage(img, 'etc/passwd'))!, 'utf8');
  assert.match(passwd, /^root:x:0:0:/m);
  assert.match(passwd, /^nobody:x:65534:65534:/m);
  assert.equal((await fs.stat((await findInImage(img, 'tmp'))!)).mode & 0o7777, 0o1777);
  const out = await runInImage(rt, img, ['/bin/sh', '-c', 'echo hi from $(busybox | head -1 | cut -d" " -f1); id -u nobody']);
  assert.match(out, /hi from BusyBox/);
  assert.match(out, /65534/);
});

test('node: tagged node:20 and node:latest, busybox base shared, node runs', async () => {
  const img = rt.images.node;
  assert.deepEqual(img.refs.filter((r) => r.startsWith('node:')).sort(), ['node:20', 'node:latest']);
  assert.deepEqual(img.layers.slice(0, 2).map((l) => l.chainId), rt.images.busybox.layers.map((l) => l.chainId));
  assert.ok(img.layers.length >= 4, 'libs, node binary and shim layers on top of busybox');
  for (const h of img.config.history ?? []) assert.doesNotMatch(h.created_by ?? '', /\/tmp|\/var\/lib|jiffy-runtime/, 'no host paths in history');
  assert.ok(await findInImage(img, 'usr/bin/node'));
  assert.ok(await findInImage(img, 'lib64/ld-linux-x86-64.so.2'));
  assert.equal(img.config.config?.Labels?.[RECIPE_LABEL]?.startsWith('sha256:'), true);
  const out = await runInImage(rt, img, ['/usr/bin/node', '-e', 'console.log(JSON.stringify({v: process.versions.node.split(".")[0], sum: 1 + 1}))']);
  assert.deepEqual(JSON.parse(out), { v: '20', sum: 2 });
});

test('python: trimmed stdlib, extension modules load', async () => {
  const img = rt.images.python;
  assert.deepEqual(img.refs.filter((r) => r.startsWith('python:')).sort(), ['python:3.11', 'python:latest']);
  assert.ok(await findInImage(img, 'usr/lib/python3.11/os.py'));
  assert.equal(await findInImage(img, 'usr/lib/python3.11/test'), undefined, 'test suite trimmed');
  assert.equal(await findInImage(img, 'usr/lib/python3.11/__pycache__'), undefined, 'caches trimmed');
  const out = await runInImage(rt, img, ['/usr/bin/python3', '-c', 'import json, sqlite3, ssl, zlib, ctypes, sys; print(json.dumps([sys.version_info[0], sys.version_info[1], sys.prefix]))']);
  assert.deepEqual(JSON.parse(out), [3, 11, '/usr']);
});

test('reproducible: building twice from scratch gives the same digests as the cached image', async () => {
  const prev = process.env.JIFFY_RUNTIME_CACHE;
  process.env.JIFFY_RUNTIME_CACHE = 'off';
  const a = await tempStore('rtrepro');
  cleanups.push(a.cleanup);
  try {
    const busybox = await buildRuntimeImage(a.store, 'busybox');
    const python = await buildRuntimeImage(a.store, 'python');
    assert.equal(busybox.manifestDigest, rt.images.busybox.manifestDigest);
    assert.equal(python.manifestDigest, rt.images.python.manifestDigest);
    assert.deepEqual(python.config.rootfs.diff_ids, rt.images.python.config.rootfs.diff_ids);
  } finally {
    if (prev === undefined) delete process.env.JIFFY_RUNTIME_CACHE;
    else process.env.JIFFY_RUNTIME_CACHE = prev;
  }
});

test('ensureRuntimeImage is a no-op when up to date and repairs moved tags', async () => {
  const before = await fs.readFile(path.join(rt.root, 'images.json'), 'utf8');
  const again = await ensureRuntimeImage(rt.store, 'node');
  assert.equal(again.manifestDigest, rt.images.node.manifestDigest);
  assert.equal(await fs.readFile(path.join(rt.root, 'images.json'), 'utf8'), before, 'nothing written');
  await rt.store.tag('busybox:latest', 'python:3.11');
  const fixed = await ensureRuntimeImage(rt.store, 'python');
  assert.equal(fixed.manifestDigest, rt.images.python.manifestDigest);
  assert.equal((await rt.store.resolve('python:3.11')).manifestDigest, rt.images.python.manifestDigest);
});

test('two processes ensuring the same image at once agree on one image', async () => {
  const t = await tempStore('rtrace');
  cleanups.push(t.cleanup);
  const mod = path.join(repoRoot(), 'dist', 'src', 'build', 'runtime-images.js');
  const storeMod = path.join(repoRoot(), 'dist', 'src', 'images', 'store.js');
  const script = `const { ensureRuntimeImage } = await import(${JSON.stringify(mod)});
const { ImageStore } = await import(${JSON.stringify(storeMod)});
const img = await ensureRuntimeImage(await ImageStore.open(process.argv[1]), 'busybox');
console.log(img.manifestDigest);`;
  // Cache off: both processes really build, racing on the same store.
  const env = { ...process.env, JIFFY_RUNTIME_CACHE: 'off' };
  const [a, b] = await Promise.all([0, 1].map(() => run(process.execPath, ['--input-type=module', '-e', script, t.root], { env })));
  assert.equal(a.stdout.trim(), rt.images.busybox.manifestDigest);
  assert.equal(b.stdout.trim(), rt.images.busybox.manifestDigest);
  const images = await (await ImageStore.open(t.root)).list();
  assert.equal(images.length, 1);
  assert.deepEqual(await fs.readdir(path.join(t.root, 'ingest')), [], 'no temp files left');
});
