import type { ContentStore } from '../content/store.js';
import { writeLayerBlob as writeArchiveBlob, type LayerEntry } from '../archive/tar-writer.js';
import type { LayerFile } from './copy-sources.js';

/**
 * Writes build files as one deterministic, uncompressed layer blob. Uncompressed because build
 * layers are used locally first (no gzip CPU on every COPY) and because gzip output may differ
 * between zlib versions, which would break "same inputs, same digest" across machines.
 */
export async function writeLayerBlob(content: ContentStore, files: LayerFile[]): Promise<{ digest: string; size: number; diffId: string }> {
  const entries: LayerEntry[] = files.map((f) => ({
    path: f.path,
    type: f.type === 'dir' ? 'directory' : f.type,
    mode: f.mode,
    uid: f.uid,
    gid: f.gid,
    ...(f.linkname !== undefined ? { linkname: f.linkname } : {}),
    ...(f.source !== undefined ? { source: f.source, size: f.size } : {}),
  }));
  const r = await writeArchiveBlob(content, entries, { gzip: false });
  return { digest: r.digest, size: r.size, diffId: r.diffId };
}
