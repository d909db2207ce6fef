import type { ContentStore } from '../content/store.js';
import type { ImageManifest, ImageConfig } from './types.js';
import type { LayerStore } from './layers.js';
import type { NamesDb } from './names.js';
import type { LeaseRecord } from './leases.js';

/** Everything an image keeps alive: its manifest, config and layer blobs, and unpacked layers. */
export interface ImageResources {
  blobs: Set<string>;
  layers: Set<string>;
}

/** Blobs and layers one manifest refers to (missing or unreadable manifests refer to nothing). */
export async function resourcesOf(content: ContentStore, layers: LayerStore, manifestDigest: string, into?: ImageResources): Promise<ImageResources> {
  const res = into ?? { blobs: new Set<string>(), layers: new Set<string>() };
  res.blobs.add(manifestDigest);
  const manifest = await content.readJSON<ImageManifest>(manifestDigest).catch(() => null);
  if (!manifest?.config?.digest) return res;
  res.blobs.add(manifest.config.digest);
  for (const l of manifest.layers ?? []) res.blobs.add(l.digest);
  const config = await content.readJSON<ImageConfig>(manifest.config.digest).catch(() => null);
  for (const c of layers.chainIds(config?.rootfs?.diff_ids ?? [])) res.layers.add(c);
  return res;
}

/** What every named image and every live lease keeps alive. Call under the names lock. */
export async function liveResources(content: ContentStore, layers: LayerStore, db: NamesDb, leases: LeaseRecord[]): Promise<ImageResources> {
  const live: ImageResources = { blobs: new Set(), layers: new Set() };
  for (const d of Object.keys(db.manifests)) await resourcesOf(content, layers, d, live);
  for (const l of leases) {
    for (const d of l.manifests) await resourcesOf(content, layers, d, live);
    for (const b of l.blobs) live.blobs.add(b);
    for (const c of l.layers) live.layers.add(c);
  }
  return live;
}

/**
 * Deletes `candidates` that are not live. Call under the names lock so no image can be
 * recorded meanwhile. Returns what was deleted and the bytes of deleted blobs.
 */
export async function collect(content: ContentStore, layers: LayerStore, candidates: ImageResources, live: ImageResources): Promise<{ blobs: string[]; layers: string[]; bytes: number }> {
  const out = { blobs: [] as string[], layers: [] as string[], bytes: 0 };
  for (const c of candidates.layers) {
    if (live.layers.has(c) || !(await layers.has(c))) continue;
    await layers.remove(c);
    out.layers.push(c);
  }
  for (const b of candidates.blobs) {
    if (live.blobs.has(b) || !(await content.has(b))) continue;
    out.bytes += await content.size(b).catch(() => 0);
    await content.delete(b);
    out.blobs.push(b);
  }
  return out;
}
