import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { PassThrough, type Writable } from 'node:stream';
import tar, { type Header as TarHeaders, type Pack as TarPack } from 'tar-stream';
import type { ContentStore } from '../content/store.js';
import { MediaTypes } from '../images/types.js';
import { DigestMeter } from './gunzip.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX, isOverlayWhiteout, scanOverlay } from './whiteout.js';

/** One entry of a layer tar. `path` is relative to the layer root, `/`-separated, no leading `/`. */
export interface LayerEntry {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  mode?: number;
  uid?: number;
  gid?: number;
  /** Default: the writer's fixed mtime ($SOURCE_DATE_EPOCH or 0) — layers are reproducible. */
  mtime?: Date;
  /** Symlink target, or for `link` the archive path of the first name of the file. */
  linkname?: string;
  /** File content: a host path to read, or bytes. */
  source?: string;
  content?: Buffer;
  size?: number;
}

/** The fixed mtime layer tars use: $SOURCE_DATE_EPOCH (seconds) or the epoch. */
export function fixedMtime(): Date {
  const s = Number(process.env.SOURCE_DATE_EPOCH);
  return new Date(Number.isFinite(s) && s > 0 ? s * 1000 : 0);
}

/**
 * Writes a deterministic layer tar to `out`: entries sorted by path, fixed mtime unless an entry
 * sets one, uid/gid 0 unless given, no user/group names, PAX headers for long names (tar-stream).
 * Same input → same bytes → same diff id.
 */
export async function writeLayerTar(entries: LayerEntry[] | AsyncIterable<LayerEntry>, out: Writable): Promise<{ diffId: string; size: number }> {
  const list: LayerEntry[] = [];
  for await (const e of entries) list.push(e);
  list.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const pack = tar.pack();
  const meter = new DigestMeter(Number.MAX_SAFE_INTEGER);
  const done = new Promise<void>((resolve, reject) => {
    out.once('finish', resolve);
    out.once('error', reject);
    meter.once('error', reject);
    pack.once('error', reject);
  });
  (pack as unknown as NodeJS.ReadableStream).pipe(meter).pipe(out);
  const mtime = fixedMtime();
  for (const e of list) await addEntry(pack, e, mtime);
  pack.finalize();
  await done;
  return { diffId: meter.digest(), size: meter.bytes };
}

async function addEntry(pack: TarPack, e: LayerEntry, mtime: Date): Promise<void> {
  const name = e.type === 'directory' ? `${e.path.replace(/\/+$/, '')}/` : e.path;
  const header: Partial<TarHeaders> & { name: string } = {
    name,
    type: e.type,
    mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    uname: '',
    gname: '',
    size: 0,
    devmajor: 0,
    devminor: 0,
    mtime: e.mtime ?? mtime,
    ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
  };
  if (e.type !== 'file') {
    await new Promise<void>((res, rej) => pack.entry({ ...header, size: 0 }, (err) => (err ? rej(err) : res())));
    return;
  }
  if (e.content || e.source === undefined) {
    const buf = e.content ?? Buffer.alloc(0);
    await new Promise<void>((res, rej) => pack.entry({ ...header, size: buf.length }, buf, (err) => (err ? rej(err) : res())));
    return;
  }
  const size = e.size ?? (await fs.lstat(e.source)).size;
  await new Promise<void>((res, rej) => {
    const w = pack.entry({ ...header, size }, (err) => (err ? rej(new Error(`adding ${e.path} to the layer: ${err.message}`)) : res()));
    const rs = createReadStream(e.source!);
    rs.once('error', (err) => {
      w.destroy(err);
      rej(err);
    });
    rs.pipe(w as unknown as NodeJS.WritableStream);
  });
}

export interface DirWalkOptions {
  /** Keep file mtimes (default: the fixed mtime). */
  preserveMtime?: boolean;
  /** Keep uid/gid (default: 0/0). */
  preserveOwner?: boolean;
  /** Treat `dir` as an overlay upper dir: char 0/0 → `.wh.NAME`, opaque dirs → `.wh..wh..opq`. */
  overlay?: boolean;
  /** Prefix every path (e.g. a COPY destination `app/`). */
  prefix?: string;
}

/**
 * Walks `dir` (never following symlinks) and yields its entries in sorted order. Hardlinked files
 * become `link` entries to their first path; sockets and device nodes are skipped (other than
 * overlay whiteouts in `overlay` mode).
 */
export async function* dirToLayerEntries(dir: string, opts: DirWalkOptions = {}): AsyncIterable<LayerEntry> {
  const opaque = new Set(opts.overlay ? (await scanOverlay(dir)).opaque : []);
  const seen = new Map<string, string>();
  const prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
  const join = (rel: string) => [prefix, rel].filter(Boolean).join('/');
  async function* walk(rel: string): AsyncIterable<LayerEntry> {
    const names = (await fs.readdir(path.join(dir, rel))).sort();
    if (opaque.has(rel || '.')) yield { path: join(rel ? `${rel}/${OPAQUE_MARKER}` : OPAQUE_MARKER), type: 'file', mode: 0o644, content: Buffer.alloc(0) };
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const st = await fs.lstat(path.join(dir, r));
      const meta = {
        mode: st.mode & 0o7777,
        ...(opts.preserveOwner ? { uid: st.uid, gid: st.gid } : {}),
        ...(opts.preserveMtime ? { mtime: st.mtime } : {}),
      };
      if (st.isDirectory()) {
        yield { path: join(r), type: 'directory', ...meta };
        yield* walk(r);
      } else if (st.isSymbolicLink()) {
        yield { path: join(r), type: 'symlink', linkname: await fs.readlink(path.join(dir, r)), ...meta };
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seen.get(key) : undefined;
        if (first) yield { path: join(r), type: 'link', linkname: first, ...meta };
        else {
          if (st.nlink > 1) seen.set(key, join(r));
          yield { path: join(r), type: 'file', source: path.join(dir, r), size: st.size, ...meta };
        }
      } else if (opts.overlay && isOverlayWhiteout(st)) {
        yield { path: join(rel ? `${rel}/${WHITEOUT_PREFIX}${n}` : `${WHITEOUT_PREFIX}${n}`), type: 'file', mode: 0o644, content: Buffer.alloc(0) };
      }
    }
  }
  yield* walk('');
}

/**
 * Writes a layer tar straight into the content store (gzip by default, as registries expect).
 * Returns the blob's descriptor fields and the diff id (sha256 of the uncompressed tar).
 */
export async function writeLayerBlob(
  content: ContentStore,
  entries: LayerEntry[] | AsyncIterable<LayerEntry>,
  opts: { gzip?: boolean } = {},
): Promise<{ digest: string; size: number; diffId: string; mediaType: string }> {
  const gzip = opts.gzip ?? true;
  const pass = new PassThrough();
  const sink = gzip ? zlib.createGzip({ level: 6 }) : pass;
  if (gzip) sink.pipe(pass);
  const stored = content.ingest(pass);
  const written = writeLayerTar(entries, sink).catch((e: unknown) => {
    pass.destroy(e as Error); // makes the ingest fail and remove its temp file
    throw e;
  });
  const [w, s] = await Promise.all([written, stored]);
  return { digest: s.digest, size: s.size, diffId: w.diffId, mediaType: gzip ? MediaTypes.ociLayerGzip : MediaTypes.ociLayer };
}
