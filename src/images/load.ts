import fs from 'node:fs';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import tar from 'tar-stream';
import type { ProgressFn } from '../progress.js';
import { JiffyError, hasCode, invalid } from '../errors.js';
import { gzipError, maybeGunzip } from '../archive/gunzip.js';
import { TarTrailer } from '../archive/tar-trailer.js';
import { splitEntryPath } from '../archive/safe-path.js';
import type { Lease } from './leases.js';
import type { Image, ImageStore } from './store.js';
import { parseReference } from './reference.js';
import { MediaTypes, hostPlatform, isIndexType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from './types.js';

/** What one pass over an archive collected: small metadata files in memory, every other file as a blob. */
interface ArchiveFiles {
  meta: Map<string, Buffer>;
  blobs: Map<string, { digest: string; size: number }>;
  links: Map<string, string>;
}

const META_FILES = /^(manifest\.json|index\.json|oci-layout|repositories)$/;
const SMALL = 16 * 1024 * 1024;

/**
 * Loads images from a docker-archive (`docker save`) or OCI image layout tar (autodetected; gzip
 * accepted). Every file is streamed once into the content store — `blobs/sha256/<hex>` entries are
 * verified against their name — and the images are then recorded with their layers unpacked.
 */
export async function loadArchive(store: ImageStore, src: Readable, opts: { onProgress?: ProgressFn } = {}): Promise<Image[]> {
  const files: ArchiveFiles = { meta: new Map(), blobs: new Map(), links: new Map() };
  const leases: Lease[] = [];
  try {
    await readArchive(store, src, files, leases, opts.onProgress);
    if (files.meta.has('manifest.json')) return await loadDocker(store, files, opts.onProgress);
    if (files.meta.has('index.json')) return await loadOci(store, files, opts.onProgress);
    throw invalid('the archive has neither manifest.json (docker-archive) nor index.json (OCI image layout); create it with `jiffy save`, `docker save` or `skopeo copy`');
  } finally {
    for (const l of leases) await l.release();
  }
}

/** Convenience: `loadArchive` from a file path. */
export async function loadArchiveFile(store: ImageStore, file: string, opts: { onProgress?: ProgressFn } = {}): Promise<Image[]> {
  if (!fs.existsSync(file)) throw new JiffyError('not_found', `archive ${file} does not exist`);
  return loadArchive(store, fs.createReadStream(file), opts);
}

async function readArchive(store: ImageStore, src: Readable, files: ArchiveFiles, leases: Lease[], onProgress?: ProgressFn): Promise<void> {
  const extract = tar.extract();
  const plain = await maybeGunzip(src);
  pipeline(plain, new TarTrailer(), (e) => e && extract.destroy(gzipError(e, 'archive'))).pipe(extract as unknown as NodeJS.WritableStream);
  let current = '';
  try {
    for await (const entry of extract) {
      const h = entry.header;
      current = h.name;
      const name = splitEntryPath(h.name).join('/');
      if (h.type === 'symlink' || h.type === 'link') {
        const target = h.type === 'symlink' ? path.posix.join(path.posix.dirname(name), h.linkname ?? '') : h.linkname ?? '';
        files.links.set(name, splitEntryPath(path.posix.normalize(target), h.name).join('/'));
      } else if (h.type === 'file' || h.type === 'contiguous-file') {
        await readFile(store, name, h.size ?? 0, entry as unknown as Readable, files, leases, onProgress);
      }
      entry.resume();
    }
  } catch (e) {
    src.destroy();
    if (e instanceof JiffyError) throw e;
    const msg = (e as Error).message;
    throw invalid(`reading the image archive failed at "${current || '(start)'}": ${/Unexpected end/.test(msg) ? 'the archive is truncated' : msg}`, e);
  }
}

async function readFile(store: ImageStore, name: string, size: number, body: Readable, files: ArchiveFiles, leases: Lease[], onProgress?: ProgressFn): Promise<void> {
  if ((META_FILES.test(name) || /(^|\/)(json|VERSION)$/.test(name)) && size < SMALL) {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    files.meta.set(name, Buffer.concat(chunks));
    return;
  }
  const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
  const expect = m ? { digest: `sha256:${m[1]}`, size } : { size };
  const id = /[a-f0-9]{64}/.exec(name)?.[0].slice(0, 12) ?? name;
  try {
    const r = await store.content.ingest(body, expect, (n) => onProgress?.({ id, action: 'Loading', current: n, total: size }));
    leases.push(await store.leaseDigests([r.digest]));
    files.blobs.set(name, r);
    onProgress?.({ id, action: 'Loaded', current: size, total: size, done: true });
  } catch (e) {
    if (hasCode(e, 'resource_exhausted')) throw e; // the store is full: the archive is fine
    throw new JiffyError('data_loss', `archive entry "${name}": ${(e as Error).message}`, { cause: e });
  }
}

/** Follows symlinks recorded in the archive (docker save links duplicate layers). */
function lookupBlob(files: ArchiveFiles, name: string): { digest: string; size: number } {
  let n = splitEntryPath(name).join('/');
  for (let i = 0; i < 16 && files.links.has(n); i++) n = files.links.get(n)!;
  const b = files.blobs.get(n);
  if (!b) throw invalid(`the archive refers to "${name}" but does not contain it; the archive is incomplete`);
  return b;
}

function metaJSON<T>(files: ArchiveFiles, name: string): T {
  try {
    return JSON.parse(files.meta.get(name)!.toString('utf8')) as T;
  } catch (e) {
    throw invalid(`archive file ${name} is not valid JSON`, e);
  }
}

async function loadDocker(store: ImageStore, files: ArchiveFiles, onProgress?: ProgressFn): Promise<Image[]> {
  const items = metaJSON<Array<{ Config: string; RepoTags?: string[] | null; Layers: string[] }>>(files, 'manifest.json');
  if (!Array.isArray(items)) throw invalid('manifest.json in the archive is not a list of images');
  const out: Image[] = [];
  for (const item of items) {
    const cfg = lookupBlob(files, item.Config);
    const config = await store.content.readJSON<ImageConfig>(cfg.digest);
    const layers: Descriptor[] = [];
    for (const l of item.Layers ?? []) {
      const b = lookupBlob(files, l);
      layers.push({ mediaType: (await isGzipBlob(store, b.digest)) ? MediaTypes.ociLayerGzip : MediaTypes.ociLayer, digest: b.digest, size: b.size });
    }
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: MediaTypes.ociConfig, ...cfg }, layers };
    const refs = (item.RepoTags ?? []).filter((r) => validRef(r));
    out.push(await store.putImage(manifest, config, refs, onProgress));
  }
  return out;
}

async function loadOci(store: ImageStore, files: ArchiveFiles, onProgress?: ProgressFn): Promise<Image[]> {
  const index = metaJSON<ImageIndex>(files, 'index.json');
  if (!Array.isArray(index.manifests)) throw invalid('index.json in the archive has no manifests list');
  const out: Image[] = [];
  for (const desc of index.manifests) {
    const digest = await pickManifest(store, desc);
    const a = desc.annotations ?? {};
    const names = [a['io.containerd.image.name'], a['org.opencontainers.image.ref.name']].filter((r): r is string => !!r && validRef(r) && /[:/]/.test(r));
    out.push(await store.registerManifest(digest, names.slice(0, 1), onProgress));
  }
  return out;
}

/** For an index (multi-platform), the manifest for this host's platform. */
async function pickManifest(store: ImageStore, desc: Descriptor, depth = 0): Promise<string> {
  if (!isIndexType(desc.mediaType) || depth > 4) return desc.digest;
  const idx = await store.content.readJSON<ImageIndex>(desc.digest);
  const want = hostPlatform();
  const hit = idx.manifests.find((m) => m.platform?.architecture === want.architecture && m.platform?.os === want.os) ?? (idx.manifests.length === 1 ? idx.manifests[0] : undefined);
  if (!hit) throw new JiffyError('not_found', `the archive's image index ${desc.digest} has no manifest for ${want.os}/${want.architecture}`);
  return pickManifest(store, hit, depth + 1);
}

async function isGzipBlob(store: ImageStore, digest: string): Promise<boolean> {
  const fh = await fs.promises.open(store.content.path(digest), 'r');
  try {
    const buf = Buffer.alloc(2);
    await fh.read(buf, 0, 2, 0);
    return buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

function validRef(r: string): boolean {
  try {
    parseReference(r);
    return true;
  } catch {
    return false;
  }
}
