import fs from 'node:fs/promises';
import path from 'node:path';
import { defaultRoot, storePaths, type StorePaths } from '../paths.js';
import type { ProgressFn } from '../progress.js';
import { JiffyError, invalid, notFound, precondition } from '../errors.js';
import { ContentStore } from '../content/store.js';
import { isSha256Digest } from '../content/digest.js';
import { LayerStore } from './layers.js';
import { NamesFile, digestOfName, nameKey, normalizeRef, refsOf, type NamesDb } from './names.js';

export { normalizeRef };
import { LeaseFiles, type Lease } from './leases.js';
import { collect, liveResources, resourcesOf } from './gc.js';
import { MediaTypes, hostPlatform, type ContainerConfig, type HistoryEntry, type ImageConfig, type ImageManifest } from './types.js';

/** One layer of an image, with where it is unpacked. */
export interface ImageLayer {
  digest: string;
  mediaType: string;
  size: number;
  diffId: string;
  chainId: string;
  /** Absolute path of the unpacked tree (`layers/<chainid>/diff`). */
  dir: string;
  /** Short path relative to the store root (`l/<hex16>`), for overlay `lowerdir=` with cwd = root. */
  lowerPath: string;
}

/** A local image. `id` is the config digest, as in Docker. Layers are base first. */
export interface Image {
  id: string;
  refs: string[];
  manifestDigest: string;
  manifest: ImageManifest;
  configDigest: string;
  config: ImageConfig;
  layers: ImageLayer[];
  /** When the image was added to this store. */
  added?: string;
}

/**
 * The local image store: content store + unpacked layers + names. Images are OCI manifests whose
 * blobs are all present and whose layers are all unpacked before the image is recorded, so a
 * recorded image is always runnable. Names live in `images.json` (see names.ts).
 */
export class ImageStore {
  readonly content: ContentStore;
  readonly layers: LayerStore;
  readonly names: NamesFile;
  readonly leases: LeaseFiles;

  constructor(readonly paths: StorePaths) {
    this.content = new ContentStore(paths);
    this.layers = new LayerStore(paths, this.content);
    this.names = new NamesFile(paths.images);
    this.leases = new LeaseFiles(path.join(paths.root, 'leases'));
  }

  /** Opens (creating dirs as needed) the store at `root` (default $JIFFY_ROOT or /var/lib/jiffy). */
  static async open(root: string = defaultRoot()): Promise<ImageStore> {
    const paths = storePaths(path.resolve(root));
    for (const d of [paths.blobs, paths.ingest, paths.layers, paths.shortLinks, paths.containers, paths.run]) {
      await fs.mkdir(d, { recursive: true });
    }
    return new ImageStore(paths);
  }

  /**
   * Finds an image by `name`, `name:tag`, `name@sha256:…`, a manifest or config digest, or a unique
   * prefix of the image id. Not found → not_found naming `jiffy images` / `jiffy pull`.
   */
  async resolve(ref: string): Promise<Image> {
    const db = await this.names.read();
    const digest = await this.resolveDigest(db, ref);
    return this.load(digest, db);
  }

  /** All images (tagged and dangling), newest first. */
  async list(): Promise<Image[]> {
    const db = await this.names.read();
    const out: Image[] = [];
    for (const d of Object.keys(db.manifests)) {
      const img = await this.load(d, db).catch(() => null);
      if (img) out.push(img);
    }
    return out.sort((a, b) => (b.config.created ?? b.added ?? '').localeCompare(a.config.created ?? a.added ?? ''));
  }

  /** Points `newRef` at the image `ref` resolves to (moving it off any other image). */
  async tag(ref: string, newRef: string): Promise<void> {
    const key = normalizeRef(newRef);
    if (key.includes('@')) throw invalid(`cannot tag with a digest ("${newRef}"): a digest names content, not a tag; use NAME[:TAG]`);
    await this.names.update(async (db) => {
      const d = await this.resolveDigest(db, ref);
      db.refs[key] = d;
    });
  }

  /**
   * Like `docker rmi`: removing a name untags it; the image itself is deleted when its last name
   * goes (or when removed by id). An id with several names, or an image a lease (container)
   * holds, needs `force`; with force, leased layers stay until the lease is released.
   */
  async remove(ref: string, opts: { force?: boolean } = {}): Promise<{ untagged: string[]; deleted: string[] }> {
    const leases = await this.leases.list();
    return this.names.update(async (db) => {
      const d = await this.resolveDigest(db, ref);
      const refs = refsOf(db, d);
      const byName = nameKey(ref, db) !== null;
      const holders = leases.filter((l) => l.manifests.includes(d));
      const untagged: string[] = [];
      if (byName) {
        const key = nameKey(ref, db)!;
        if (refs.length === 1 && holders.length && !opts.force) throw this.inUse(ref, holders.map((h) => h.id));
        delete db.refs[key];
        untagged.push(key);
        if (refs.length > 1) return { untagged, deleted: [] };
      } else {
        if (refs.length > 1 && !opts.force) {
          throw precondition(`image ${ref} is referenced by several names (${refs.join(', ')}); remove them by name or use rmi -f`);
        }
        if (holders.length && !opts.force) throw this.inUse(ref, holders.map((h) => h.id));
        for (const r of refs) delete db.refs[r];
        untagged.push(...refs);
      }
      return { untagged, deleted: await this.deleteImage(db, d, leases) };
    });
  }

  /** Reclaims blobs and layers that no image and no live lease refers to; cleans crash leftovers. */
  async prune(): Promise<{ blobs: number; layers: number; bytes: number }> {
    const leases = await this.leases.list();
    await this.content.cleanIngest();
    await this.layers.cleanTemp();
    return this.names.locked(async (db) => {
      const live = await liveResources(this.content, this.layers, db, leases);
      const all = { blobs: new Set(await this.content.list()), layers: new Set(await this.layers.list()) };
      const r = await collect(this.content, this.layers, all, live);
      return { blobs: r.blobs.length, layers: r.layers.length, bytes: r.bytes };
    });
  }

  /**
   * Stores an image: writes the config blob (unless `manifest.config.digest` is already in the
   * store, e.g. pulled bytes) and the manifest blob, unpacks every layer (their blobs must already
   * be in the content store), then records it under `refs`.
   */
  async putImage(manifest: ImageManifest, config: ImageConfig, refs: string[] = [], onProgress?: ProgressFn): Promise<Image> {
    if (config.rootfs?.diff_ids?.length !== manifest.layers.length) {
      throw invalid(`image config lists ${config.rootfs?.diff_ids?.length ?? 0} diff_ids but the manifest has ${manifest.layers.length} layers`);
    }
    let configDesc = manifest.config;
    if (!configDesc?.digest || !(await this.content.has(configDesc.digest))) {
      const put = await this.content.putBuffer(Buffer.from(JSON.stringify(config)));
      configDesc = { mediaType: configDesc?.mediaType ?? MediaTypes.ociConfig, digest: put.digest, size: put.size };
    }
    const m: ImageManifest = {
      schemaVersion: 2,
      mediaType: manifest.mediaType ?? MediaTypes.ociManifest,
      config: configDesc,
      layers: manifest.layers,
      ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
    };
    const { digest } = await this.content.putBuffer(Buffer.from(JSON.stringify(m)));
    return this.registerManifest(digest, refs, onProgress);
  }

  /**
   * Records an image whose manifest and config blobs (exact bytes, e.g. as pulled) and layer
   * blobs are already in the content store; unpacks missing layers first.
   */
  async registerManifest(manifestDigest: string, refs: string[] = [], onProgress?: ProgressFn): Promise<Image> {
    const keys = refs.map(normalizeRef);
    const { manifest, config } = await this.readImage(manifestDigest);
    const res = await resourcesOf(this.content, this.layers, manifestDigest);
    // The lease, then a pass through the lock, guarantee no gc that missed the lease is still running.
    const lease = await this.leases.write({ manifests: [], blobs: [...res.blobs], layers: [...res.layers] });
    try {
      await this.names.locked(async () => undefined);
      await this.ensureLayers(manifest, config, onProgress);
      await this.names.update(async (db) => {
        db.manifests[manifestDigest] ??= { added: new Date().toISOString() };
        for (const k of keys) db.refs[k] = manifestDigest;
      });
    } finally {
      await lease.release();
    }
    return this.resolve(manifestDigest);
  }

  /**
   * A new image = `base` + one layer + one history entry (build's RUN/COPY, commit). The layer
   * blob must be in the content store; with `unpackedDir` that tree is adopted as the layer.
   */
  async appendLayer(
    base: Image | null,
    layer: { blobDigest: string; diffId: string; size: number; mediaType: string; unpackedDir?: string },
    history: HistoryEntry,
    opts: { configPatch?: Partial<ContainerConfig>; ref?: string; author?: string } = {},
  ): Promise<Image> {
    const config = this.nextConfig(base, { ...history, empty_layer: undefined }, opts);
    const parentChainId = base?.layers.length ? base.layers[base.layers.length - 1].chainId : null;
    config.rootfs.diff_ids.push(layer.diffId);
    if (layer.unpackedDir) {
      const chainId = this.layers.chainId(parentChainId, layer.diffId);
      await this.layers.adopt({ chainId, diffId: layer.diffId, parentChainId, fromDir: layer.unpackedDir, blobDigest: layer.blobDigest });
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: '', size: 0 },
      layers: [...(base?.manifest.layers ?? []), { mediaType: layer.mediaType, digest: layer.blobDigest, size: layer.size }],
    };
    return this.putImage(manifest, config, opts.ref ? [opts.ref] : []);
  }

  /** A new image = `base` + a history entry with `empty_layer: true` (ENV, CMD, LABEL…). */
  async appendHistory(base: Image | null, history: HistoryEntry, configPatch?: Partial<ContainerConfig>, ref?: string): Promise<Image> {
    const config = this.nextConfig(base, { ...history, empty_layer: true }, { configPatch });
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: '', size: 0 },
      layers: [...(base?.manifest.layers ?? [])],
    };
    return this.putImage(manifest, config, ref ? [ref] : []);
  }

  /**
   * Keeps an image (by ref) or a blob (by digest) from gc until released. With `id` (e.g. a
   * container id) the lease persists across processes until `releaseLease(id)`; without, it
   * ends with this process.
   */
  async lease(refOrDigest: string, opts: { id?: string } = {}): Promise<Lease> {
    if (isSha256Digest(refOrDigest) && (await this.content.has(refOrDigest))) {
      const db = await this.names.read();
      const isImage = await this.resolveDigest(db, refOrDigest).then(() => true, () => false);
      if (!isImage) return this.leases.write({ manifests: [], blobs: [refOrDigest], layers: [] }, opts);
    }
    const img = await this.resolve(refOrDigest);
    return this.leases.write(
      { manifests: [img.manifestDigest], blobs: [img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)], layers: img.layers.map((l) => l.chainId) },
      opts,
    );
  }

  /** Keeps arbitrary blobs from gc (e.g. a pull in progress). */
  async leaseDigests(blobs: string[], layers: string[] = [], opts: { id?: string } = {}): Promise<Lease> {
    return this.leases.write({ manifests: [], blobs, layers }, opts);
  }

  /** Ends a lease taken with an explicit id (e.g. when its container is removed). */
  async releaseLease(id: string): Promise<void> {
    await this.leases.release(id);
  }

  private nextConfig(base: Image | null, history: HistoryEntry, opts: { configPatch?: Partial<ContainerConfig>; author?: string }): ImageConfig {
    const created = history.created ?? new Date().toISOString();
    const prev: ImageConfig = base
      ? structuredClone(base.config)
      : { ...hostPlatform(), rootfs: { type: 'layers', diff_ids: [] }, config: {} };
    const author = opts.author ?? history.author;
    const entry: HistoryEntry = { created, ...history, ...(author ? { author } : {}) };
    if (!entry.empty_layer) delete entry.empty_layer;
    return {
      ...prev,
      created,
      ...(author ? { author } : {}),
      config: { ...(prev.config ?? {}), ...(opts.configPatch ?? {}) },
      rootfs: { type: 'layers', diff_ids: [...prev.rootfs.diff_ids] },
      history: [...(prev.history ?? []), entry],
    };
  }

  private async ensureLayers(manifest: ImageManifest, config: ImageConfig, onProgress?: ProgressFn): Promise<void> {
    let parent: string | null = null;
    for (let i = 0; i < manifest.layers.length; i++) {
      const l = manifest.layers[i];
      const r = await this.layers.ensure({ blobDigest: l.digest, diffId: config.rootfs.diff_ids[i], parentChainId: parent, mediaType: l.mediaType, onProgress });
      parent = r.chainId;
    }
  }

  private async readImage(manifestDigest: string): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
    const manifest = await this.content.readJSON<ImageManifest>(manifestDigest);
    if (manifest.schemaVersion !== 2 || !manifest.config?.digest || !Array.isArray(manifest.layers)) {
      throw invalid(`blob ${manifestDigest} is not an image manifest (schemaVersion 2 with config and layers)`);
    }
    const config = await this.content.readJSON<ImageConfig>(manifest.config.digest);
    if (config.rootfs?.diff_ids?.length !== manifest.layers.length) {
      throw invalid(`image ${manifestDigest}: config has ${config.rootfs?.diff_ids?.length ?? 0} diff_ids but the manifest has ${manifest.layers.length} layers`);
    }
    return { manifest, config };
  }

  private async load(manifestDigest: string, db: NamesDb): Promise<Image> {
    const { manifest, config } = await this.readImage(manifestDigest);
    const chainIds = this.layers.chainIds(config.rootfs.diff_ids);
    const layers: ImageLayer[] = manifest.layers.map((l, i) => ({
      digest: l.digest,
      mediaType: l.mediaType,
      size: l.size,
      diffId: config.rootfs.diff_ids[i],
      chainId: chainIds[i],
      dir: this.layers.dir(chainIds[i]),
      lowerPath: this.layers.lowerPath(chainIds[i]),
    }));
    return {
      id: manifest.config.digest,
      refs: refsOf(db, manifestDigest),
      manifestDigest,
      manifest,
      configDigest: manifest.config.digest,
      config,
      layers,
      added: db.manifests[manifestDigest]?.added,
    };
  }

  private async resolveDigest(db: NamesDb, ref: string): Promise<string> {
    const key = nameKey(ref, db);
    if (key) return db.refs[key];
    const byDigest = digestOfName(ref, db);
    if (byDigest) return byDigest;
    if (isSha256Digest(ref)) {
      if (db.manifests[ref]) return ref;
      const byId = await this.byIdPrefix(db, ref.slice(7));
      if (byId.length) return byId[0];
    }
    const m = /^(?:sha256:)?([a-f0-9]{1,64})$/.exec(ref);
    if (m) {
      const hits = await this.byIdPrefix(db, m[1]);
      const ids = new Set<string>();
      for (const d of hits) ids.add((await this.content.readJSON<ImageManifest>(d)).config.digest);
      if (ids.size > 1) throw invalid(`image id prefix "${ref}" is ambiguous (${ids.size} images); give more digits`);
      if (hits.length) return hits[0];
    }
    throw notFound(`image "${ref}" not found locally; list local images with \`jiffy images\`, or fetch it with \`jiffy pull ${ref}\` or \`jiffy load -i FILE\``);
  }

  /** Manifests whose config digest (image id) or manifest digest starts with `hex`, newest first. */
  private async byIdPrefix(db: NamesDb, hex: string): Promise<string[]> {
    const hits: Array<[string, string]> = [];
    for (const [d, rec] of Object.entries(db.manifests)) {
      const m = await this.content.readJSON<ImageManifest>(d).catch(() => null);
      if (m?.config?.digest?.slice(7).startsWith(hex) || d.slice(7).startsWith(hex)) hits.push([d, rec.added]);
    }
    return hits.sort((a, b) => b[1].localeCompare(a[1])).map((h) => h[0]);
  }

  private async deleteImage(db: NamesDb, manifestDigest: string, leases: Awaited<ReturnType<LeaseFiles['list']>>): Promise<string[]> {
    const { manifest } = await this.readImage(manifestDigest).catch(() => ({ manifest: null }));
    delete db.manifests[manifestDigest];
    for (const [k, v] of Object.entries(db.refs)) if (v === manifestDigest) delete db.refs[k];
    const candidates = await resourcesOf(this.content, this.layers, manifestDigest);
    const live = await liveResources(this.content, this.layers, db, leases);
    const r = await collect(this.content, this.layers, candidates, live);
    const id = manifest?.config.digest ?? manifestDigest;
    return [id, ...r.layers.filter((l) => l !== id)];
  }

  private inUse(ref: string, holders: string[]): JiffyError {
    return precondition(`image ${ref} is in use by ${holders.join(', ')}; stop and remove those containers first, or use rmi -f (its layers stay until they are gone)`);
  }
}
