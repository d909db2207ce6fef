import fs from 'node:fs/promises';
import type { ImageStore, Image } from './store.js';
import { writeLayerBlob, type LayerEntry } from '../archive/tar-writer.js';
import { MediaTypes, hostPlatform, type ImageConfig, type ImageManifest } from './types.js';
import { JiffyError } from '../errors.js';

const APPLETS = ['sh', 'ls', 'cat', 'echo', 'true', 'false', 'env', 'sleep', 'id', 'mkdir', 'rm', 'touch', 'wc', 'head', 'hostname', 'ps', 'mount', 'test', 'printf', 'stat'];

/**
 * Builds a one-layer busybox image from the host's static busybox (Debian busybox-static) and
 * stores it as `ref`: the image tests use before real runtime images exist. `extra` entries are
 * added to the same layer.
 */
export async function buildBusyboxImage(store: ImageStore, ref = 'busybox:latest', extra: LayerEntry[] = []): Promise<Image> {
  const busybox = process.env.JIFFY_BUSYBOX || '/bin/busybox';
  await fs.access(busybox).catch(() => {
    throw new JiffyError('failed_precondition', `${busybox} not found; install it with \`apt-get install busybox-static\``);
  });
  const entries: LayerEntry[] = [
    { path: 'bin', type: 'directory' },
    { path: 'bin/busybox', type: 'file', mode: 0o755, source: busybox },
    ...APPLETS.map((a): LayerEntry => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
    { path: 'etc', type: 'directory' },
    { path: 'etc/passwd', type: 'file', content: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n') },
    { path: 'etc/group', type: 'file', content: Buffer.from('root:x:0:\nnogroup:x:65534:\n') },
    { path: 'tmp', type: 'directory', mode: 0o1777 },
    { path: 'root', type: 'directory', mode: 0o700 },
    ...extra,
  ];
  const blob = await writeLayerBlob(store.content, entries, { gzip: true });
  const created = new Date(0).toISOString();
  const config: ImageConfig = {
    created,
    ...hostPlatform(),
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: [blob.diffId] },
    history: [{ created, created_by: 'jiffy buildBusyboxImage: ADD busybox-static /bin/busybox' }],
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: '', size: 0 },
    layers: [{ mediaType: blob.mediaType, digest: blob.digest, size: blob.size }],
  };
  return store.putImage(manifest, config, [ref]);
}
