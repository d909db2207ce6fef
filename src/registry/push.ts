import { JiffyError } from '../errors.js';
import type { ImageStore } from '../images/store.js';
import { MediaTypes, type Descriptor } from '../images/types.js';
import type { RegistryClient } from './client.js';
import { clientFor, remoteReference, type RemoteOptions } from './pull.js';
import { uploadBlob } from './upload.js';

export interface PushOptions extends RemoteOptions {
  /** Where to push (default: the local reference itself, which must then name a registry). */
  dest?: string;
  /** Upload blobs in PATCH chunks of this size instead of one PUT each. */
  chunkSize?: number;
  /** Try cross-repository blob mounts from this repository on the same registry first. */
  mountFrom?: string;
}

export interface PushResult {
  /** The pushed manifest's digest (identical to the local manifest digest). */
  digest: string;
  /** The remote reference pushed to. */
  ref: string;
  size: number;
  pushed: number;
  skipped: number;
  mounted: number;
}

/**
 * `jiffy push`: uploads each layer blob and the config blob the registry does not already have
 * (HEAD first: "Layer already exists"), then PUTs the manifest's exact local bytes under the tag,
 * so the remote digest equals the local one.
 */
export async function pushImage(store: ImageStore, localRef: string, opts: PushOptions = {}): Promise<PushResult> {
  const image = await store.resolve(localRef);
  const destRef = opts.dest ?? localRef;
  const r = remoteReference(destRef);
  const client = await clientFor(store, r, opts);
  const lease = await store.lease(image.manifestDigest);
  try {
    const counts = { pushed: 0, skipped: 0, mounted: 0 };
    const blobs: Descriptor[] = [...image.manifest.layers, image.manifest.config];
    for (const d of blobs) counts[await pushBlob(store, client, d, opts)]++;
    const bytes = await store.content.readBuffer(image.manifestDigest);
    const mediaType = image.manifest.mediaType ?? MediaTypes.ociManifest;
    const tag = r.tag ?? image.manifestDigest;
    const res = await client.request('PUT', `${r.repository}/manifests/${tag}`, {
      push: true,
      headers: { 'content-type': mediaType },
      body: () => bytes,
    });
    await client.ensureOk(res, `PUT manifest ${tag}`);
    await res.body?.cancel();
    const remote = res.headers.get('docker-content-digest');
    if (remote && remote !== image.manifestDigest) {
      throw new JiffyError('data_loss', `registry ${r.registry} stored manifest ${tag} as ${remote}, not ${image.manifestDigest}; it rewrote the manifest`);
    }
    return { digest: image.manifestDigest, ref: destRef, size: bytes.length, ...counts };
  } finally {
    await lease.release();
  }
}

async function pushBlob(store: ImageStore, client: RegistryClient, d: Descriptor, opts: PushOptions): Promise<'pushed' | 'skipped' | 'mounted'> {
  const id = d.digest.slice(7, 19);
  const progress = opts.onProgress ?? (() => {});
  if (await client.hasBlob(d.digest)) {
    progress({ id, action: 'Layer already exists', done: true });
    return 'skipped';
  }
  progress({ id, action: 'Preparing' });
  const how = await uploadBlob(client, d.digest, d.size, () => store.content.openRead(d.digest), {
    chunkSize: opts.chunkSize,
    mountFrom: opts.mountFrom,
    onBytes: (n) => progress({ id, action: 'Pushing', current: n, total: d.size }),
  });
  progress({ id, action: how === 'mounted' ? `Mounted from ${opts.mountFrom}` : 'Pushed', done: true });
  return how === 'mounted' ? 'mounted' : 'pushed';
}
