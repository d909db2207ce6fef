import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ImageStore, type Image } from '../src/images/store.js';
import { buildBusyboxImage } from '../src/images/scratch-image.js';
import { writeLayerBlob } from '../src/archive/tar-writer.js';
import { saveArchive } from '../src/images/save.js';
import { loadArchiveFile } from '../src/images/load.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let tmp: string;

function need(tool: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
  } catch {
    assert.fail(`${tool} is required for the image interop tests: apt-get install ${tool} (or run scripts/setup.sh)`);
  }
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr ?? ''}${err.stdout ?? ''}`);
  }
}

before(() => {
  need('skopeo');
  need('umoci');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jiffy-h3-interop-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** busybox + a layer that adds /app/hello.txt and whites out /etc/group. */
async function twoLayerImage(store: ImageStore): Promise<Image> {
  const base = await buildBusyboxImage(store, 'interop/base:1');
  const blob = await writeLayerBlob(store.content, [
    { path: 'app', type: 'directory' },
    { path: 'app/hello.txt', type: 'file', content: Buffer.from('hello from jiffy\n') },
    { path: 'etc/.wh.group', type: 'file' },
  ]);
  return store.appendLayer(base, { blobDigest: blob.digest, diffId: blob.diffId, size: blob.size, mediaType: blob.mediaType }, { created_by: 'COPY app /app' }, { ref: 'interop/app:v1' });
}

test('jiffy save (docker and oci) is read by skopeo and unpacked by umoci', async () => {
  const store = await ImageStore.open(path.join(tmp, 'store-a'));
  const img = await twoLayerImage(store);
  const dockerTar = path.join(tmp, 'app-docker.tar');
  const ociTar = path.join(tmp, 'app-oci.tar');
  await saveArchive(store, ['interop/app:v1'], dockerTar, { format: 'docker' });
  await saveArchive(store, ['interop/app:v1'], ociTar, { format: 'oci' });

  const d = JSON.parse(run('skopeo', ['inspect', `docker-archive:${dockerTar}`])) as { Layers: string[]; Architecture: string };
  assert.deepEqual(d.Layers, img.config.rootfs.diff_ids, 'docker-archive layers are the uncompressed diff ids');
  const o = JSON.parse(run('skopeo', ['inspect', `oci-archive:${ociTar}:v1`])) as { Digest: string; Layers: string[] };
  assert.equal(o.Digest, img.manifestDigest, 'OCI save keeps the manifest digest');
  assert.deepEqual(o.Layers, img.layers.map((l) => l.digest));
  // docker load accepts a gzipped archive; so does jiffy.
  const gz = path.join(tmp, 'app-docker.tar.gz');
  fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(dockerTar)));
  const reloaded = await loadArchiveFile(await ImageStore.open(path.join(tmp, 'store-a2')), gz);
  assert.deepEqual(reloaded.map((i) => [i.id, i.refs]), [[img.id, ['interop/app:v1']]]);
  // skopeo copy reads every blob and verifies digests.
  run('skopeo', ['copy', '--quiet', `docker-archive:${dockerTar}`, `oci:${path.join(tmp, 'copied')}:x`]);

  const layout = path.join(tmp, 'layout-a');
  fs.mkdirSync(layout);
  run('tar', ['-xf', ociTar, '-C', layout]);
  const bundle = path.join(tmp, 'bundle-a');
  run('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
  const rootfs = path.join(bundle, 'rootfs');
  assert.equal(fs.readFileSync(path.join(rootfs, 'app/hello.txt'), 'utf8'), 'hello from jiffy\n');
  assert.deepEqual(fs.readFileSync(path.join(rootfs, 'bin/busybox')), fs.readFileSync('/bin/busybox'));
  assert.equal(fs.readlinkSync(path.join(rootfs, 'bin/sh')), 'busybox');
  assert.ok(fs.existsSync(path.join(rootfs, 'etc/passwd')));
  assert.equal(fs.existsSync(path.join(rootfs, 'etc/group')), false, 'the whiteout removed /etc/group');
});

test('images written by umoci + skopeo (docker-archive and oci-archive) load into jiffy with correct files', async () => {
  const layout = path.join(tmp, 'layout-b');
  const src = path.join(tmp, 'src-b');
  fs.mkdirSync(path.join(src, 'data'), { recursive: true });
  fs.writeFileSync(path.join(src, 'data/greeting'), 'hi from umoci\n');
  fs.writeFileSync(path.join(src, 'data/tool'), '#!/bin/sh\necho tool\n', { mode: 0o750 });
  fs.symlinkSync('greeting', path.join(src, 'data/link'));
  fs.writeFileSync(path.join(tmp, 'gone.txt'), 'soon gone\n');
  run('umoci', ['init', '--layout', layout]);
  run('umoci', ['new', '--image', `${layout}:t`]);
  run('umoci', ['insert', '--image', `${layout}:t`, '/bin/busybox', '/bin/busybox']);
  run('umoci', ['insert', '--image', `${layout}:t`, path.join(src, 'data'), '/opt/data']);
  run('umoci', ['insert', '--image', `${layout}:t`, path.join(tmp, 'gone.txt'), '/opt/gone.txt']);
  run('umoci', ['insert', '--image', `${layout}:t`, '--whiteout', '/opt/gone.txt']);
  run('umoci', ['config', '--image', `${layout}:t`, '--config.cmd', '/bin/busybox', '--config.env', 'FROM=umoci']);
  const dockerTar = path.join(tmp, 'umoci-docker.tar');
  const ociTar = path.join(tmp, 'umoci-oci.tar');
  run('skopeo', ['copy', '--quiet', `oci:${layout}:t`, `docker-archive:${dockerTar}:made/by-umoci:d1`]);
  run('skopeo', ['copy', '--quiet', `oci:${layout}:t`, `oci-archive:${ociTar}:made/by-umoci:o1`]);

  const store = await ImageStore.open(path.join(tmp, 'store-b'));
  const fromDocker = await loadArchiveFile(store, dockerTar);
  const fromOci = await loadArchiveFile(store, ociTar);
  assert.deepEqual(fromDocker.map((i) => i.refs), [['made/by-umoci:d1']]);
  assert.deepEqual(fromOci.map((i) => i.refs), [['made/by-umoci:o1']]);
  assert.equal(fromDocker[0].id, fromOci[0].id, 'same config → same image id from both formats');
  for (const img of [await store.resolve('made/by-umoci:d1'), await store.resolve('made/by-umoci:o1')]) {
    assert.deepEqual(img.config.config?.Cmd, ['/bin/busybox']);
    assert.ok(img.config.config?.Env?.includes('FROM=umoci'));
    const file = (rel: string) => img.layers.map((l) => path.join(l.dir, rel)).filter((p) => fs.existsSync(p) || isLink(p));
    assert.equal(fs.readFileSync(file('opt/data/greeting')[0], 'utf8'), 'hi from umoci\n');
    assert.equal(fs.statSync(file('opt/data/tool')[0]).mode & 0o777, 0o750);
    assert.equal(fs.readlinkSync(file('opt/data/link')[0]), 'greeting');
    assert.deepEqual(fs.readFileSync(file('bin/busybox')[0]), fs.readFileSync('/bin/busybox'));
    const top = img.layers[img.layers.length - 1];
    const wo = fs.lstatSync(path.join(top.dir, 'opt/gone.txt'));
    assert.ok(wo.isCharacterDevice() && wo.rdev === 0, 'umoci whiteout became an overlay whiteout');
  }
});

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

test('CLI: jiffy save / load / images / history / rmi round trip', async () => {
  const root = path.join(tmp, 'cli');
  const store = await ImageStore.open(root);
  const img = await twoLayerImage(store);
  const jiffy = (...args: string[]) => run(process.execPath, [path.join(repo, 'dist/src/cli/main.js'), ...args], { JIFFY_ROOT: root });
  const out = path.join(tmp, 'cli.tar');
  jiffy('save', '-o', out, '--format', 'oci', 'interop/app:v1');
  assert.match(jiffy('rmi', 'interop/app:v1'), new RegExp(`Untagged: interop/app:v1\\nDeleted: ${img.id}`));
  assert.match(jiffy('load', '-i', out), /Loaded image: interop\/app:v1/);
  const rows = JSON.parse(jiffy('images', '--format', 'json')) as Array<{ repository: string; tag: string; id: string }>;
  assert.ok(rows.some((r) => r.repository === 'interop/app' && r.tag === 'v1' && r.id === img.id));
  const table = jiffy('images');
  assert.match(table.split('\n')[0], /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
  const hist = jiffy('history', 'interop/app:v1').split('\n');
  assert.match(hist[0], /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
  assert.match(hist[1], new RegExp(`^${img.id.slice(7, 19)}\\s.*COPY app /app`));
  assert.match(hist[2], /^<missing>\s.*buildBusyboxImage/);
  const inspect = JSON.parse(jiffy('inspect', 'interop/app:v1')) as Array<{ Id: string; RootFS: { Layers: string[] } }>;
  assert.equal(inspect[0].Id, img.id);
  assert.throws(() => jiffy('rmi', 'no/such:image'), /not found locally/);
});
