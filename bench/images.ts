/**
 * Image benchmarks, side by side in one run (`npm run bench:images [-- --json] [--reps N] [--image node|python|busybox]`):
 *
 *   unpack   a multi-layer runtime image: Jiffy's LayerStore (registerManifest) vs `umoci unpack`
 *            of the same image as an OCI layout
 *   mount    the image's rootfs: a cold overlay mount (snapshot prepare) vs taking one from the warm pool
 *   pull     from a local docker-registry: `jiffy pull` (download, verify, unpack) vs
 *            `skopeo copy docker://… oci:` (download only) and skopeo + umoci unpack
 *
 * Each row is p50/p99 over --reps repetitions, from a clean state each time (fresh store / dirs).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { intFlag, percentiles, printResults, timeIt, wantsJson, type Percentiles } from './lib/stats.js';
import { ImageStore, type Image } from '../src/images/store.js';
import { ensureRuntimeImage, RUNTIME_NAMES, type RuntimeName } from '../src/build/runtime-images.js';
import { pullImage } from '../src/registry/pull.js';
import { pushImage } from '../src/registry/push.js';
import { OverlaySnapshotter } from '../src/snapshots/snapshotter.js';
import { WarmPool } from '../src/snapshots/warm-pool.js';
import { startRegistry } from '../test/support/registry.js';

const run = promisify(execFile);

function imageFlag(): RuntimeName {
  const i = process.argv.indexOf('--image');
  const v = (i >= 0 ? process.argv[i + 1] : 'python') as RuntimeName;
  if (!RUNTIME_NAMES.includes(v)) throw new Error(`--image must be one of ${RUNTIME_NAMES.join(', ')}`);
  return v;
}

/** Writes `img` as an OCI image layout (blobs hard-linked) with one tag, for umoci. */
async function writeOciLayout(store: ImageStore, img: Image, dir: string, tag: string): Promise<void> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  await fs.mkdir(blobs, { recursive: true });
  for (const d of [img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)]) {
    await fs.link(store.content.path(d), path.join(blobs, d.slice(7))).catch(async () => fs.copyFile(store.content.path(d), path.join(blobs, d.slice(7))));
  }
  const size = (await fs.stat(store.content.path(img.manifestDigest))).size;
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fs.writeFile(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: img.manifest.mediaType, digest: img.manifestDigest, size, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }));
}

/** A store with only `img`'s blobs linked in (nothing unpacked, nothing named). */
async function storeWithBlobs(src: ImageStore, img: Image, root: string): Promise<ImageStore> {
  const store = await ImageStore.open(root);
  for (const d of [img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)]) await fs.link(src.content.path(d), store.content.path(d));
  return store;
}

async function repeat(reps: number, fn: (i: number) => Promise<number>): Promise<Percentiles> {
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) samples.push(await fn(i));
  return percentiles(samples);
}

async function benchUnpack(work: string, src: ImageStore, img: Image, reps: number): Promise<Record<string, Percentiles>> {
  const layout = path.join(work, 'layout');
  await writeOciLayout(src, img, layout, 'bench');
  const jiffy = await repeat(reps, async (i) => {
    const store = await storeWithBlobs(src, img, path.join(work, `unpack-${i}`));
    const { ms } = await timeIt(() => store.registerManifest(img.manifestDigest));
    await fs.rm(store.paths.root, { recursive: true, force: true });
    return ms;
  });
  const umoci = await repeat(reps, async (i) => {
    const bundle = path.join(work, `umoci-${i}`);
    const { ms } = await timeIt(() => run('umoci', ['unpack', '--image', `${layout}:bench`, bundle]));
    await fs.rm(bundle, { recursive: true, force: true });
    return ms;
  });
  return { [`unpack ${img.layers.length} layers: jiffy`]: jiffy, [`unpack ${img.layers.length} layers: umoci unpack`]: umoci };
}

async function benchMount(src: ImageStore, img: Image, reps: number): Promise<Record<string, Percentiles>> {
  const snaps = new OverlaySnapshotter(src.paths.root);
  const parent = { id: img.id, lowerPaths: img.layers.map((l) => l.lowerPath) };
  const cold = await repeat(reps, async () => {
    const { ms, result } = await timeIt(() => snaps.prepare(parent));
    await snaps.remove(result.key);
    return ms;
  });
  const pool = new WarmPool(snaps, { perImage: 1 });
  try {
    // The first take finds nothing ready and starts the refill; each timed take starts the next.
    if (pool.take(parent)) throw new Error('warm pool unexpectedly had a snapshot before warming');
    const warm = await repeat(reps, async () => {
      while (pool.ready(img.id) < 1) await new Promise((r) => setTimeout(r, 5));
      const { ms, result } = await timeIt(() => pool.take(parent));
      if (!result) throw new Error('warm pool had no snapshot ready');
      await snaps.remove(result.key);
      return ms;
    });
    return { 'rootfs mount: cold overlay mount': cold, 'rootfs mount: warm pool take': warm };
  } finally {
    await pool.close();
  }
}

async function benchPull(work: string, src: ImageStore, img: Image, reps: number): Promise<Record<string, Percentiles>> {
  const reg = await startRegistry();
  try {
    const ref = `${reg.host}/bench/${img.refs[0].split(':')[0]}:1`;
    await pushImage(src, img.manifestDigest, { dest: ref });
    const jiffy = await repeat(reps, async (i) => {
      const store = await ImageStore.open(path.join(work, `pull-${i}`));
      const { ms } = await timeIt(() => pullImage(store, ref));
      await fs.rm(store.paths.root, { recursive: true, force: true });
      return ms;
    });
    const skopeoOnly: number[] = [];
    const skopeoUmoci = await repeat(reps, async (i) => {
      const dir = path.join(work, `skopeo-${i}`);
      const { ms: copy } = await timeIt(() => run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}:bench`]));
      skopeoOnly.push(copy);
      const { ms: unpack } = await timeIt(() => run('umoci', ['unpack', '--image', `${dir}:bench`, `${dir}-bundle`]));
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(`${dir}-bundle`, { recursive: true, force: true });
      return copy + unpack;
    });
    return {
      'pull: jiffy pull (download+verify+unpack)': jiffy,
      'pull: skopeo copy → oci: (download only)': percentiles(skopeoOnly),
      'pull: skopeo copy + umoci unpack': skopeoUmoci,
    };
  } finally {
    await reg.stop();
  }
}

async function main(): Promise<void> {
  const reps = intFlag('reps', 5);
  const name = imageFlag();
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-bench-images-'));
  try {
    const src = await ImageStore.open(path.join(work, 'src'));
    const img = await ensureRuntimeImage(src, name);
    const size = img.layers.reduce((a, l) => a + l.size, 0);
    const results = {
      ...(await benchUnpack(work, src, img, reps)),
      ...(await benchMount(src, img, reps)),
      ...(await benchPull(work, src, img, reps)),
    };
    printResults(results, {
      json: wantsJson(),
      title: `Images: ${img.refs[0]} (${img.layers.length} layers, ${(size / 1e6).toFixed(1)} MB uncompressed), ${reps} reps each`,
      notes: ['Each sample starts from a clean state (a fresh store or directory). The warm pool is src/snapshots/warm-pool.ts.'],
    });
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

await main();
