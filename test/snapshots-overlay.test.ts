/**
 * Overlay snapshots on real mounts: an image with more than 60 layers mounts (short relative
 * lowerdirs), warm mounts are handed out, refilled, evicted (LRU dispose) and swept without
 * leaking a mount, read-only views are shared and refcounted, and diff sees whiteouts and opaque
 * dirs made by the kernel.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dirToLayerEntries, writeLayerBlob } from '../src/archive/tar-writer.js';
import { ContainerManager } from '../src/containers/manager.js';
import type { Image } from '../src/images/store.js';
import { diffUpper } from '../src/snapshots/diff.js';
import { mountsUnder, overlayOptions } from '../src/snapshots/mount.js';
import { OverlaySnapshotter } from '../src/snapshots/snapshotter.js';
import { WarmPool } from '../src/snapshots/warm-pool.js';
import { collector, fixture, until, type Fixture } from './containers-support.js';

async function addFileLayer(f: Fixture, base: Image, rel: string, content: string, ref?: string): Promise<Image> {
  const dir = path.join(f.root, 'layers', `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await fs.writeFile(path.join(dir, rel), content);
  const blob = await writeLayerBlob(f.store.content, dirToLayerEntries(dir), { gzip: false });
  return f.store.appendLayer(base, { blobDigest: blob.digest, diffId: blob.diffId, size: blob.size, mediaType: blob.mediaType, unpackedDir: dir }, { created_by: `add ${rel}` }, { ref });
}

describe('snapshots: overlay', () => {
  let f: Fixture;
  let tall: Image;
  before(async () => {
    f = await fixture('snap');
    let img = await f.store.resolve('busybox');
    for (let i = 0; i < 62; i++) img = await addFileLayer(f, img, `layers/l${String(i).padStart(2, '0')}`, `${i}\n`, i === 61 ? 'tall:latest' : undefined);
    tall = img;
  });
  after(async () => f.cleanup());

  it('mounts an image with more than 60 layers', async () => {
    assert.ok(tall.layers.length >= 64, `${tall.layers.length} layers`);
    const snaps = new OverlaySnapshotter(f.root);
    const snap = await snaps.prepare({ id: tall.id, lowerPaths: tall.layers.map((l) => l.lowerPath) });
    const opts = overlayOptions(snaps.mounts(snap));
    assert.ok(opts.length < 4096, `option string fits a page (${opts.length} bytes)`);
    assert.equal((await fs.readdir(path.join(snap.merged, 'layers'))).length, 62);
    assert.equal(await fs.readFile(path.join(snap.merged, 'layers', 'l61'), 'utf8'), '61\n');
    await snaps.remove(snap.key);
    assert.deepEqual(await mountsUnder(snap.dir), []);
    const c = collector();
    const r = await f.mgr.run({ image: 'tall:latest', cmd: ['sh', '-c', 'ls /layers | wc -l'], autoRemove: true, onOutput: c.onOutput });
    assert.equal((await r.exit).exitCode, 0);
    assert.equal(c.text().trim(), '62');
  });

  it('diff sees kernel-made whiteouts and opaque dirs', async () => {
    const snaps = new OverlaySnapshotter(f.root);
    const img = await f.store.resolve('busybox');
    const snap = await snaps.prepare({ id: img.id, lowerPaths: img.layers.map((l) => l.lowerPath) });
    await fs.rm(path.join(snap.merged, 'etc'), { recursive: true });
    await fs.mkdir(path.join(snap.merged, 'etc'));
    await fs.writeFile(path.join(snap.merged, 'etc', 'fresh'), 'x');
    await fs.rm(path.join(snap.merged, 'bin', 'ls'));
    const lowers = snap.lower.map((l) => path.resolve(f.root, l));
    const changes = (await diffUpper(snap.upper!, lowers)).map((c) => `${c.kind} ${c.path}`);
    assert.ok(changes.includes('C /etc'), changes.join(', '));
    assert.ok(changes.includes('A /etc/fresh'));
    assert.ok(changes.includes('D /etc/passwd'), 'lower files under an opaque dir are deleted');
    assert.ok(changes.includes('D /bin/ls'));
    assert.ok(changes.includes('C /bin'));
    await snaps.remove(snap.key);
  });

  it('hands out warm mounts, refills, evicts and sweeps without leaks', async () => {
    const before = (await mountsUnder(f.root)).length;
    const mgr = new ContainerManager({ store: f.store, warm: { perImage: 1, maxImages: 1 } });
    const busybox = await f.store.resolve('busybox');
    const parent = { id: busybox.id, lowerPaths: busybox.layers.map((l) => l.lowerPath) };
    await mgr.prewarm('busybox');
    assert.equal(mgr.warm!.ready(busybox.id), 1);
    const spare = (await mountsUnder(f.mgr.records.dir)).map((m) => path.basename(path.dirname(m)));
    const rec = await mgr.create({ image: 'busybox', cmd: ['true'] });
    assert.ok(spare.includes(rec.id), 'the container got the pre-mounted rootfs');
    await until(async () => mgr.warm!.ready(busybox.id) === 1, 'the pool to refill');
    // A second image evicts the first (maxImages 1): its spare is unmounted by dispose.
    const parentTall = { id: tall.id, lowerPaths: tall.layers.map((l) => l.lowerPath) };
    await mgr.warm!.warm(parentTall);
    await until(async () => mgr.warm!.ready(busybox.id) === 0 && (await mountsUnder(f.root)).length === before + 2, 'eviction to unmount');
    await mgr.remove(rec.id);
    await mgr.close();
    assert.equal((await mountsUnder(f.root)).length, before, 'close unmounts every spare');

    // Spares of a process that died are swept by the next manager.
    const dead = new OverlaySnapshotter(f.root);
    const orphan = await dead.prepare(parent);
    await fs.writeFile(path.join(orphan.dir, 'warm'), '999999999');
    assert.equal(await WarmPool.sweep(dead), 1);
    assert.equal((await mountsUnder(f.root)).length, before);
  });

  it('warm() on an already warm image keeps its spare (no mount leaks)', async () => {
    const before = (await mountsUnder(f.root)).length;
    const mgr = new ContainerManager({ store: f.store, warm: { perImage: 1 } });
    const busybox = await f.store.resolve('busybox');
    try {
      for (let i = 0; i < 3; i++) await mgr.prewarm('busybox');
      assert.equal(mgr.warm!.ready(busybox.id), 1);
      assert.equal((await mountsUnder(f.root)).length, before + 1, 'one spare mount, not one per warm() call');
    } finally {
      await mgr.close();
    }
    assert.equal((await mountsUnder(f.root)).length, before, 'close unmounts the spare');
  });

  it('shares one read-only mount between read-only containers (refcounted)', async () => {
    const before = (await mountsUnder(f.root)).length;
    const a = await f.mgr.create({ image: 'busybox', readonlyRoot: true, cmd: ['true'] });
    const b = await f.mgr.create({ image: 'busybox', readonlyRoot: true, cmd: ['true'] });
    assert.equal((await mountsUnder(f.root)).length, before + 1);
    const c = collector();
    const r = await f.mgr.run({ image: 'busybox', readonlyRoot: true, cmd: ['cat', '/etc/passwd'], onOutput: c.onOutput, autoRemove: true });
    assert.equal((await r.exit).exitCode, 0);
    assert.equal((await mountsUnder(f.root)).length, before + 1);
    await f.mgr.remove(a.id);
    assert.equal((await mountsUnder(f.root)).length, before + 1, 'still used by b');
    await f.mgr.remove(b.id);
    assert.equal((await mountsUnder(f.root)).length, before);
  });
});
