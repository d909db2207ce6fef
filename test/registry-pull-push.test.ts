import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { hasCode } from '../src/errors.js';
import type { Image, ImageStore } from '../src/images/store.js';
import { MediaTypes } from '../src/images/types.js';
import { buildImage } from '../src/build/builder.js';
import { pullImage } from '../src/registry/pull.js';
import { pushImage } from '../src/registry/push.js';
import { RegistryClient } from '../src/registry/client.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { findInImage, storeWithRuntimeImages, tempStore } from './support/runtime-images.js';

const run = promisify(execFile);
let reg: TestRegistry;
let src: Awaited<ReturnType<typeof storeWithRuntimeImages>>;
let app: Image;
const cleanups: Array<() => Promise<void>> = [];

/** A small two-file image on busybox, with content unique to this run. */
async function buildApp(store: ImageStore, tag: string): Promise<Image> {
  const ctx = await fs.mkdtemp(path.join(src.root, 'ctx-'));
  await fs.writeFile(path.join(ctx, 'hello.txt'), `hello ${crypto.randomUUID()}\n`);
  await fs.writeFile(path.join(ctx, 'big.bin'), crypto.randomBytes(300_000));
  const dockerfile = 'FROM busybox:latest\nCOPY hello.txt big.bin /app/\nCMD ["cat", "/app/hello.txt"]\n';
  return (await buildImage(store, { contextDir: ctx, dockerfile, tags: [tag] })).image;
}

async function fresh(label: string) {
  const t = await tempStore(label);
  cleanups.push(t.cleanup);
  return t;
}

before(async () => {
  reg = await startRegistry();
  cleanups.push(reg.stop);
  src = await storeWithRuntimeImages(['busybox'], 'regsrc');
  cleanups.push(src.cleanup);
  app = await buildApp(src.store, `${reg.host}/test/app:1`);
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('push then pull round-trips manifest, config and layer digests; a second pull skips every layer', async () => {
  const pushed = await pushImage(src.store, `${reg.host}/test/app:1`);
  assert.equal(pushed.digest, app.manifestDigest);
  assert.equal(pushed.pushed, app.layers.length + 1);
  const again = await pushImage(src.store, `${reg.host}/test/app:1`);
  assert.equal(again.skipped, app.layers.length + 1, 'second push finds every blob on the registry');

  const dst = await fresh('regdst');
  const events: string[] = [];
  const p1 = await pullImage(dst.store, `${reg.host}/test/app:1`, { onProgress: (e) => events.push(`${e.id} ${e.action}`) });
  assert.equal(p1.image.manifestDigest, app.manifestDigest);
  assert.equal(p1.image.configDigest, app.configDigest);
  assert.deepEqual(p1.image.layers.map((l) => l.chainId), app.layers.map((l) => l.chainId));
  assert.equal(p1.downloaded, app.layers.length);
  assert.ok(events.some((e) => e.endsWith('Downloading')));
  const hello = await findInImage(p1.image, 'app/hello.txt');
  assert.equal(await fs.readFile(hello!, 'utf8'), await fs.readFile((await findInImage(app, 'app/hello.txt'))!, 'utf8'));

  const p2 = await pullImage(dst.store, `${reg.host}/test/app:1`);
  assert.equal(p2.downloaded, 0);
  assert.equal(p2.skipped, app.layers.length);
  assert.equal(p2.image.manifestDigest, app.manifestDigest);
});

test('chunked upload and cross-repository mount give the same digest', async () => {
  const chunked = await pushImage(src.store, `${reg.host}/test/app:1`, { dest: `${reg.host}/test/chunked:1`, chunkSize: 64 * 1024 });
  assert.equal(chunked.digest, app.manifestDigest);
  assert.equal(chunked.pushed, app.layers.length + 1);
  const mounted = await pushImage(src.store, `${reg.host}/test/app:1`, { dest: `${reg.host}/test/mounted:1`, mountFrom: 'test/chunked' });
  assert.equal(mounted.mounted, app.layers.length + 1);
  const dst = await fresh('regchunk');
  const p = await pullImage(dst.store, `${reg.host}/test/mounted:1`);
  assert.equal(p.image.manifestDigest, app.manifestDigest);
});

test('an OCI index is resolved to the linux/amd64 manifest', async () => {
  await pushImage(src.store, `${reg.host}/test/app:1`, { dest: `${reg.host}/test/multi:x` });
  const desc = { mediaType: MediaTypes.ociManifest, digest: app.manifestDigest, size: (await src.store.content.readBuffer(app.manifestDigest)).length };
  const index = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: [
      { ...desc, platform: { architecture: 'arm64', os: 'linux' } },
      { ...desc, platform: { architecture: 'amd64', os: 'linux' } },
    ],
  };
  const client = new RegistryClient({ registry: reg.host, repository: 'test/multi' });
  const body = Buffer.from(JSON.stringify(index));
  const res = await client.request('PUT', 'test/multi/manifests/multi', { push: true, headers: { 'content-type': MediaTypes.ociIndex }, body: () => body });
  await client.ensureOk(res, 'PUT index');
  const dst = await fresh('regindex');
  const p = await pullImage(dst.store, `${reg.host}/test/multi:multi`);
  assert.equal(p.digest, `sha256:${crypto.createHash('sha256').update(body).digest('hex')}`);
  assert.equal(p.image.manifestDigest, app.manifestDigest);
  await assert.rejects(pullImage(dst.store, `${reg.host}/test/multi:multi`, { platform: { os: 'linux', architecture: 's390x' } }), (e) => hasCode(e, 'not_found'));
});

test('bad references and missing images fail with clear errors', async () => {
  const dst = await fresh('regerr');
  await assert.rejects(pullImage(dst.store, 'busybox:latest'), (e) => hasCode(e, 'invalid_argument') && /names no registry/.test((e as Error).message));
  await assert.rejects(pullImage(dst.store, `${reg.host}/test/nope:1`), (e) => hasCode(e, 'not_found'));
  await assert.rejects(pushImage(src.store, 'no-such-image:1', { dest: `${reg.host}/x:1` }), (e) => hasCode(e, 'not_found'));
});

test('skopeo interop: jiffy push → skopeo inspect, skopeo copy docker-archive → jiffy pull', async () => {
  await pushImage(src.store, `${reg.host}/test/app:1`, { dest: `${reg.host}/interop/jiffy:1` });
  const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/interop/jiffy:1`]);
  const info = JSON.parse(stdout) as { Digest: string; Layers: string[] };
  assert.equal(info.Digest, app.manifestDigest);
  assert.deepEqual(info.Layers, app.layers.map((l) => l.digest));

  const { saveArchive } = await import('../src/images/save.js');
  const archive = path.join(src.root, 'app.tar');
  await saveArchive(src.store, [`${reg.host}/test/app:1`], archive, { format: 'docker' });
  await run('skopeo', ['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${reg.host}/interop/skopeo:2`]);
  const dst = await fresh('regskopeo');
  const p = await pullImage(dst.store, `${reg.host}/interop/skopeo:2`);
  assert.deepEqual(p.image.config.rootfs.diff_ids, app.config.rootfs.diff_ids, 'same layer contents whatever skopeo compressed');
  assert.ok(await findInImage(p.image, 'app/big.bin'));
});
