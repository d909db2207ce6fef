import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ImageStore, type Image } from '../../src/images/store.js';
import { ensureRuntimeImage, type RuntimeName } from '../../src/build/runtime-images.js';

/** A fresh store under its own temp JIFFY_ROOT; `cleanup` removes it. */
export interface TempStore {
  root: string;
  store: ImageStore;
  cleanup(): Promise<void>;
}

/** Opens an empty store in a new temp dir (mkdtemp under the OS temp dir). */
export async function tempStore(label = 'store'): Promise<TempStore> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), `jiffy-test-${label}-`));
  const store = await ImageStore.open(root);
  return { root, store, cleanup: () => fs.rm(root, { recursive: true, force: true }) };
}

/**
 * A temp store holding the given runtime images (busybox, node, python), built from this
 * machine's files. The first call on a machine builds them into the shared runtime cache
 * (a few seconds); later calls link them in (well under a second).
 */
export async function storeWithRuntimeImages(names: RuntimeName[], label = 'rt'): Promise<TempStore & { images: Record<string, Image> }> {
  const t = await tempStore(label);
  const images: Record<string, Image> = {};
  try {
    for (const n of names) images[n] = await ensureRuntimeImage(t.store, n);
  } catch (e) {
    await t.cleanup();
    throw e;
  }
  return { ...t, images };
}

/** The unpacked layer dirs of an image, top first (what an overlay lowerdir lists). */
export function lowerDirs(img: Image): string[] {
  return img.layers.map((l) => l.dir).reverse();
}

/** Finds `rel` (e.g. `usr/bin/node`) in an image's layers the way overlay would: top layer first. */
export async function findInImage(img: Image, rel: string): Promise<string | undefined> {
  for (const dir of lowerDirs(img)) {
    const p = path.join(dir, rel);
    if (await fs.lstat(p).then(() => true, () => false)) return p;
  }
  return undefined;
}
