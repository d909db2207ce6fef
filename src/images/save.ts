import fs from 'node:fs';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import type { Readable } from 'node:stream';
import tar, { type Pack as TarPack } from 'tar-stream';
import type { ProgressFn } from '../progress.js';
import { invalid } from '../errors.js';
import { fixedMtime } from '../archive/tar-writer.js';
import type { Image, ImageStore } from './store.js';
import { parseReference, formatName } from './reference.js';
import { MediaTypes, type Descriptor, type ImageIndex, type ImageManifest } from './types.js';

export type ArchiveFormat = 'docker' | 'oci';

/**
 * Writes images to `file` as a docker-archive (what `docker save` writes: manifest.json, the config
 * as `<id>.json`, uncompressed `<diffid>/layer.tar`, repositories) or an OCI image layout tar
 * (oci-layout, index.json, blobs/sha256). Written to a temp file, then renamed into place.
 */
export async function saveArchive(store: ImageStore, refs: string[], file: string, opts: { format?: ArchiveFormat; onProgress?: ProgressFn } = {}): Promise<Image[]> {
  if (!refs.length) throw invalid('save needs at least one image');
  const images: Image[] = [];
  for (const r of refs) images.push(await store.resolve(r));
  const named = images.map((img, i) => ({ img, tags: tagsFor(img, refs[i]) }));
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  const out = fs.createWriteStream(tmp, { mode: 0o644 });
  const pack = tar.pack();
  const done = new Promise<void>((resolve, reject) => {
    out.once('close', resolve);
    out.once('error', reject);
    pack.once('error', reject);
  });
  (pack as unknown as NodeJS.ReadableStream).pipe(out);
  try {
    if (opts.format === 'oci') await writeOci(store, pack, named, opts.onProgress);
    else await writeDocker(store, pack, named, opts.onProgress);
    pack.finalize();
    await done;
    await fs.promises.rename(tmp, file);
  } catch (e) {
    pack.destroy();
    out.destroy();
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  return images;
}

/** Tags to record: the one asked for when it was a name, else all of the image's tags. */
function tagsFor(img: Image, asked: string): string[] {
  const tagged = img.refs.filter((r) => !r.includes('@'));
  try {
    const r = parseReference(asked);
    const key = `${formatName(r)}:${r.tag ?? 'latest'}`;
    if (!r.digest && tagged.includes(key)) return [key];
  } catch {
    /* an id: all tags */
  }
  return tagged;
}

function addBuffer(pack: TarPack, name: string, data: Buffer): Promise<void> {
  return new Promise((res, rej) => pack.entry({ name, size: data.length, mode: 0o644, mtime: fixedMtime(), uid: 0, gid: 0 }, data, (e) => (e ? rej(e) : res())));
}

function addStream(pack: TarPack, name: string, size: number, src: Readable): Promise<void> {
  return new Promise((res, rej) => {
    const w = pack.entry({ name, size, mode: 0o644, mtime: fixedMtime(), uid: 0, gid: 0 }, (e) => (e ? rej(e) : res()));
    src.once('error', (e) => {
      w.destroy(e);
      rej(e);
    });
    src.pipe(w as unknown as NodeJS.WritableStream);
  });
}

async function writeDocker(store: ImageStore, pack: TarPack, named: Array<{ img: Image; tags: string[] }>, onProgress?: ProgressFn): Promise<void> {
  const written = new Set<string>();
  const manifest: Array<{ Config: string; RepoTags: string[] | null; Layers: string[] }> = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const { img, tags } of named) {
    const configName = `${img.configDigest.slice(7)}.json`;
    if (!written.has(configName)) await addBuffer(pack, configName, await store.content.readBuffer(img.configDigest));
    written.add(configName);
    const layers: string[] = [];
    for (const l of img.layers) {
      const name = `${l.diffId.slice(7)}/layer.tar`;
      layers.push(name);
      if (written.has(name)) continue;
      written.add(name);
      const id = l.diffId.slice(7, 19);
      onProgress?.({ id, action: 'Saving' });
      const { size, open } = await uncompressedLayer(store, l.digest, l.chainId);
      await addStream(pack, name, size, open());
      onProgress?.({ id, action: 'Saved', current: size, total: size, done: true });
    }
    manifest.push({ Config: configName, RepoTags: tags.length ? tags : null, Layers: layers });
    const top = img.layers.length ? img.layers[img.layers.length - 1].diffId.slice(7) : img.id.slice(7);
    for (const t of tags) {
      const r = parseReference(t);
      (repositories[formatName(r)] ??= {})[r.tag ?? 'latest'] = top;
    }
  }
  await addBuffer(pack, 'manifest.json', Buffer.from(JSON.stringify(manifest)));
  await addBuffer(pack, 'repositories', Buffer.from(JSON.stringify(repositories)));
}

/** docker-archive layers are plain tars: gunzip on the way out, size from the layer's meta (or counted). */
async function uncompressedLayer(store: ImageStore, digest: string, chainId: string): Promise<{ size: number; open: () => Readable }> {
  const blob = store.content.path(digest);
  const head = Buffer.alloc(2);
  const fd = await fs.promises.open(blob, 'r');
  await fd.read(head, 0, 2, 0).finally(() => fd.close());
  if (!(head[0] === 0x1f && head[1] === 0x8b)) return { size: await store.content.size(digest), open: () => fs.createReadStream(blob) };
  const open = () => fs.createReadStream(blob).pipe(zlib.createGunzip());
  let size = (await store.layers.meta(chainId).catch(() => null))?.tarSize;
  if (size === undefined) {
    size = 0;
    for await (const c of open()) size += (c as Buffer).length;
  }
  return { size, open };
}

async function writeOci(store: ImageStore, pack: TarPack, named: Array<{ img: Image; tags: string[] }>, onProgress?: ProgressFn): Promise<void> {
  const written = new Set<string>();
  const addBlob = async (digest: string, data?: Buffer) => {
    if (written.has(digest)) return;
    written.add(digest);
    const name = `blobs/sha256/${digest.slice(7)}`;
    if (data) return addBuffer(pack, name, data);
    const id = digest.slice(7, 19);
    const size = await store.content.size(digest);
    onProgress?.({ id, action: 'Saving', total: size });
    await addStream(pack, name, size, await store.content.openRead(digest));
    onProgress?.({ id, action: 'Saved', current: size, total: size, done: true });
  };
  const manifests: Descriptor[] = [];
  for (const { img, tags } of named) {
    for (const l of img.layers) await addBlob(l.digest);
    await addBlob(img.configDigest);
    const desc = await ociManifest(store, img);
    await addBlob(desc.digest, desc.data);
    const base = { mediaType: MediaTypes.ociManifest, digest: desc.digest, size: desc.data.length };
    if (!tags.length) manifests.push(base);
    for (const t of tags) {
      const r = parseReference(t);
      manifests.push({ ...base, annotations: { 'io.containerd.image.name': t, 'org.opencontainers.image.ref.name': r.tag ?? 'latest' } });
    }
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests };
  await addBuffer(pack, 'oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  await addBuffer(pack, 'index.json', Buffer.from(JSON.stringify(index)));
}

/** The image's manifest bytes, rewritten with OCI media types when it was a Docker schema-2 manifest. */
async function ociManifest(store: ImageStore, img: Image): Promise<{ digest: string; data: Buffer }> {
  if (img.manifest.mediaType !== MediaTypes.dockerManifest) {
    const data = await store.content.readBuffer(img.manifestDigest);
    return { digest: img.manifestDigest, data };
  }
  const toOci: Record<string, string> = {
    [MediaTypes.dockerLayerGzip]: MediaTypes.ociLayerGzip,
    [MediaTypes.dockerLayer]: MediaTypes.ociLayer,
    [MediaTypes.dockerForeignLayerGzip]: MediaTypes.ociLayerGzip,
  };
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { ...img.manifest.config, mediaType: MediaTypes.ociConfig },
    layers: img.manifest.layers.map((l) => ({ ...l, mediaType: toOci[l.mediaType] ?? l.mediaType })),
  };
  const data = Buffer.from(JSON.stringify(m));
  return { digest: `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`, data };
}

