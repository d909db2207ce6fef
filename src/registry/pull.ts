import { JiffyError, invalid } from '../errors.js';
import type { ProgressFn } from '../progress.js';
import type { Image, ImageStore } from '../images/store.js';
import { formatName, parseReference, type Reference } from '../images/reference.js';
import { hostPlatform, isIndexType, isManifestType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from '../images/types.js';
import { RegistryClient } from './client.js';
import { lookupCredentials, type Credentials } from './credentials.js';

/** Options shared by pull and push. */
export interface RemoteOptions {
  /** Credentials; default: JIFFY_REGISTRY_AUTH, then `$JIFFY_ROOT/auth.json` (see `jiffy login`). */
  credentials?: Credentials;
  /** Plain http for a non-loopback registry. */
  insecure?: boolean;
  onProgress?: ProgressFn;
}

export interface PullOptions extends RemoteOptions {
  /** Platform to pick from an index (default: the host's, e.g. linux/amd64). */
  platform?: { os: string; architecture: string; variant?: string };
  /** Layers downloaded at once (default 3). */
  concurrency?: number;
}

export interface PullResult {
  image: Image;
  /** Digest of the manifest the tag pointed at (an index for multi-platform images). */
  digest: string;
  downloaded: number;
  skipped: number;
}

/**
 * `jiffy pull`: fetches a manifest (picking the host platform from an index / manifest list),
 * then the config and each layer blob not already present. Every blob goes through the content
 * store's ingest with its expected digest and size, so corrupt or truncated content is refused
 * and never becomes visible; the image is recorded only when all of it is present and unpacked.
 */
export async function pullImage(store: ImageStore, ref: string, opts: PullOptions = {}): Promise<PullResult> {
  const r = remoteReference(ref);
  const client = await clientFor(store, r, opts);
  const top = await client.getManifest(r.digest ?? r.tag!);
  let manifestBytes = top.bytes;
  let manifestDigest = top.digest;
  if (isIndexType(top.mediaType)) {
    const chosen = pickPlatform(JSON.parse(top.bytes.toString('utf8')) as ImageIndex, opts.platform ?? hostPlatform(), ref);
    const m = await client.getManifest(chosen.digest);
    manifestBytes = m.bytes;
    manifestDigest = m.digest;
  } else if (!isManifestType(top.mediaType)) {
    throw new JiffyError('failed_precondition', `${ref} has media type ${top.mediaType}, which is not an image manifest or index Jiffy can pull`);
  }
  const manifest = parseManifest(manifestBytes, ref);
  const blobs = [manifest.config, ...manifest.layers];
  const lease = await store.leaseDigests([manifestDigest, ...blobs.map((b) => b.digest)]);
  try {
    const progress = opts.onProgress ?? (() => {});
    await fetchBlob(store, client, manifest.config, () => {});
    const config = await store.content.readJSON<ImageConfig>(manifest.config.digest);
    if (config.rootfs?.diff_ids?.length !== manifest.layers.length) {
      throw new JiffyError('data_loss', `${ref}: the config lists ${config.rootfs?.diff_ids?.length ?? 0} diff_ids but the manifest has ${manifest.layers.length} layers; the image on the registry is broken`);
    }
    const counts = await fetchLayers(store, client, manifest, config, progress, opts.concurrency ?? 3);
    await store.content.putBuffer(manifestBytes);
    // Layers are unpacked by now; registerManifest only checks them and records the name.
    const image = await store.registerManifest(manifestDigest, [localName(r, top.digest)]);
    return { image, digest: top.digest, ...counts };
  } finally {
    await lease.release();
  }
}

/** A reference that names a registry; bare local names are refused with a hint. */
export function remoteReference(ref: string): Reference & { registry: string } {
  const r = parseReference(ref);
  if (!r.registry) {
    throw invalid(`"${ref}" names no registry; use HOST[:PORT]/NAME[:TAG], e.g. 127.0.0.1:5000/${r.repository}:${r.tag ?? 'latest'} (Jiffy does not assume Docker Hub)`);
  }
  return r as Reference & { registry: string };
}

/** A client with credentials from options, env or the auth file. */
export async function clientFor(store: ImageStore, r: Reference & { registry: string }, opts: RemoteOptions): Promise<RegistryClient> {
  const credentials = opts.credentials ?? (await lookupCredentials(store.paths.root, r.registry));
  return new RegistryClient({ registry: r.registry, repository: r.repository, credentials, insecure: opts.insecure });
}

/** The name a pulled image gets locally: the reference as given (`host/repo:tag` or `host/repo@digest`). */
function localName(r: Reference, digest: string): string {
  return r.tag ? `${formatName(r)}:${r.tag}` : `${formatName(r)}@${r.digest ?? digest}`;
}

function pickPlatform(index: ImageIndex, want: { os: string; architecture: string; variant?: string }, ref: string): Descriptor {
  const ok = (index.manifests ?? []).filter(
    (d) => isManifestType(d.mediaType) && d.platform?.os === want.os && d.platform?.architecture === want.architecture && (!want.variant || d.platform?.variant === want.variant),
  );
  if (ok.length === 0) {
    const have = (index.manifests ?? []).map((d) => `${d.platform?.os ?? '?'}/${d.platform?.architecture ?? '?'}`).join(', ');
    throw new JiffyError('not_found', `${ref} has no image for ${want.os}/${want.architecture} (it has: ${have || 'none'})`);
  }
  return ok[0];
}

function parseManifest(bytes: Buffer, ref: string): ImageManifest {
  const m = JSON.parse(bytes.toString('utf8')) as ImageManifest;
  if (m.schemaVersion !== 2 || !m.config?.digest || !Array.isArray(m.layers)) {
    throw new JiffyError('data_loss', `${ref}: the manifest is not a schema 2 image manifest with a config and layers`);
  }
  for (const d of [m.config, ...m.layers]) {
    if (!/^sha256:[a-f0-9]{64}$/.test(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0) {
      throw new JiffyError('data_loss', `${ref}: the manifest has a bad descriptor (${d.digest}, ${d.size} bytes)`);
    }
    if ((d as { urls?: string[] }).urls?.length) {
      throw new JiffyError('failed_precondition', `${ref}: layer ${d.digest} is a foreign layer (fetched from ${(d as { urls?: string[] }).urls![0]}); Jiffy does not fetch foreign layers`);
    }
  }
  return m;
}

/** Streams one blob into the content store, verified against its descriptor. */
async function fetchBlob(store: ImageStore, client: RegistryClient, d: Descriptor, onBytes: (n: number) => void): Promise<boolean> {
  if (await store.content.has(d.digest)) return false;
  const body = await client.getBlob(d.digest);
  await store.content.ingest(body, { digest: d.digest, size: d.size }, onBytes);
  return true;
}

/**
 * Downloads missing layers, `concurrency` at a time, and unpacks them in chain order as they
 * land, so unpacking overlaps the remaining downloads. Waits for everything in flight before
 * reporting the first failure.
 */
async function fetchLayers(
  store: ImageStore,
  client: RegistryClient,
  manifest: ImageManifest,
  config: ImageConfig,
  progress: ProgressFn,
  concurrency: number,
): Promise<{ downloaded: number; skipped: number }> {
  let downloaded = 0;
  let skipped = 0;
  const queue = [...new Map(manifest.layers.map((l) => [l.digest, l])).values()];
  const landed = new Map(queue.map((l) => [l.digest, deferred()]));
  const short = (d: Descriptor) => d.digest.slice(7, 19); // the id LayerStore reports unpacking under
  for (const l of queue) progress({ id: short(l), action: 'Waiting' });
  const worker = async (): Promise<void> => {
    for (let l = queue.shift(); l; l = queue.shift()) {
      const d = l;
      try {
        const got = await fetchBlob(store, client, d, (n) => progress({ id: short(d), action: 'Downloading', current: n, total: d.size }));
        if (got) downloaded++;
        else skipped++;
        if (got) progress({ id: short(d), action: 'Download complete' });
        landed.get(d.digest)!.resolve();
      } catch (e) {
        queue.length = 0; // stop the other workers after their current blob
        for (const x of landed.values()) x.reject(e);
        throw e;
      }
    }
  };
  const unpack = async (): Promise<void> => {
    let parent: string | null = null;
    for (let i = 0; i < manifest.layers.length; i++) {
      const l = manifest.layers[i];
      await landed.get(l.digest)!.promise;
      const r: { chainId: string } = await store.layers.ensure({ blobDigest: l.digest, diffId: config.rootfs.diff_ids[i], parentChainId: parent, mediaType: l.mediaType, onProgress: progress }).catch((e: unknown) => {
        queue.length = 0;
        throw e;
      });
      parent = r.chainId;
    }
  };
  const workers = Array.from({ length: Math.max(1, concurrency) }, worker);
  const results = await Promise.allSettled([...workers, unpack()]);
  const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
  return { downloaded, skipped };
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // observed by the unpack loop, or not at all when a download failed first
  return { promise, resolve, reject };
}
