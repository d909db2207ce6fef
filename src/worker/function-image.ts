import fs from 'node:fs/promises';
import { JiffyError } from '../errors.js';
import type { Image, ImageStore } from '../images/store.js';
import type { FunctionVersion } from '../functions/spec.js';

/** What a spawner needs of a function version's image, resolved once per version. */
export interface FunctionImage {
  /** Overlay lowerdir entries, top layer first, relative to the store root. */
  lower: string[];
  /** The image config's Env. */
  env: string[];
}

/**
 * Resolves a deployed version's image and checks its layers are unpacked on this host. The
 * error says what to do when the image is gone (a store wiped, or a host that never pulled it).
 */
export async function functionImage(store: ImageStore, fn: FunctionVersion): Promise<FunctionImage> {
  let img: Image;
  try {
    img = await store.resolve(fn.image.id);
  } catch (e) {
    throw new JiffyError('unavailable', `image ${fn.image.ref} of ${fn.name}@${fn.version} is not in the store at ${store.paths.root}; redeploy the function (or pull its image on this host)`, { cause: e });
  }
  for (const l of img.layers) await fs.access(l.dir);
  return { lower: img.layers.map((l) => l.lowerPath).reverse(), env: img.config.config?.Env ?? [] };
}

/** `functionImage` resolved once per function version (a version's image never changes). */
export class FunctionImages {
  private readonly cache = new Map<string, FunctionImage>();
  constructor(private readonly store: ImageStore) {}

  async get(fn: FunctionVersion): Promise<FunctionImage> {
    const key = `${fn.name}@${fn.version}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const p = await functionImage(this.store, fn);
    this.cache.set(key, p);
    return p;
  }
}
