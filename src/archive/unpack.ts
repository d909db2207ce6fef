import fs from 'node:fs/promises';
import { constants as C } from 'node:fs';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import tar, { type Header as TarHeaders } from 'tar-stream';
import type { ProgressFn } from '../progress.js';
import { JiffyError, isNoSpace, storeFull } from '../errors.js';
import { DigestMeter, gzipError, maybeGunzip } from './gunzip.js';
import { TarTrailer } from './tar-trailer.js';
import { ParentWalker, hostile, splitEntryPath } from './safe-path.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX, makeOpaque, makeWhiteouts } from './whiteout.js';

export interface UnpackOptions {
  onProgress?: ProgressFn;
  /** Limit on the uncompressed tar size (default $JIFFY_MAX_LAYER_BYTES or 32 GiB). */
  maxBytes?: number;
  /** Called for each entry skipped or changed to make it safe. */
  onWarning?: (msg: string) => void;
}

export interface UnpackResult {
  /** sha256 of the uncompressed tar: the layer's diff id. */
  diffId: string;
  /** Size of the uncompressed tar. */
  bytes: number;
  files: number;
  warnings: string[];
}

type Header = Omit<TarHeaders, 'pax'> & { pax?: Record<string, string> | null };

const DEFAULT_MAX = 32 * 1024 ** 3;

/**
 * Unpacks a layer tar (plain or gzip, by magic) into `dest`, converting OCI whiteouts to overlay
 * form. Hostile input is refused with an error naming the entry, and nothing outside `dest` is
 * ever written: paths with `..` or a leading `/` are refused, every parent is checked with lstat
 * (a symlink parent is refused, never followed), files are opened O_NOFOLLOW|O_EXCL, hardlinks must
 * point inside the layer, ownership and times are set with lchown/lutimes semantics.
 * Made safe with a warning: setuid/setgid bits stripped; device nodes and fifos skipped (the
 * runtime provides /dev; a 0/0 char device in a tar is never taken as a whiteout).
 * The caller owns `dest` and removes it on error.
 */
export async function unpackLayer(src: Readable, dest: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  const max = opts.maxBytes ?? (Number(process.env.JIFFY_MAX_LAYER_BYTES) || DEFAULT_MAX);
  const root = path.resolve(dest);
  await fs.mkdir(root, { recursive: true });
  const u = new Unpacker(root, max, opts);
  const meter = new DigestMeter(max);
  const trailer = new TarTrailer();
  const extract = tar.extract();
  let compressed = 0;
  let streamError: Error | undefined;
  // The extractor's own error (e.g. "Unexpected end of data") says more than the entry stream's.
  extract.on('error', (e: Error) => (streamError ??= e));
  const plain = await maybeGunzip(src, (n) => {
    compressed = n;
    u.progress(n);
  }).catch((e: Error) => {
    throw new JiffyError('invalid_argument', `reading the layer failed: ${e.message}`, { cause: e });
  });
  pipeline(plain, meter, trailer, (e) => {
    if (e) extract.destroy(gzipError(e, 'layer'));
  });
  trailer.pipe(extract as unknown as NodeJS.WritableStream);
  try {
    for await (const entry of extract) {
      u.current = entry.header.name;
      await u.entry(entry.header as Header, entry as unknown as AsyncIterable<Buffer>);
    }
  } catch (e) {
    src.destroy();
    await new Promise((r) => setImmediate(r));
    throw u.explain(e instanceof JiffyError ? e : streamError ?? e);
  }
  await u.finish();
  opts.onProgress?.({ id: '', action: 'Extracting', current: compressed, done: true });
  return { diffId: meter.digest(), bytes: meter.bytes, files: u.files, warnings: u.warnings };
}

/** One unpack's state: the parent walker, deferred directory metadata and whiteouts. */
class Unpacker {
  current = '';
  files = 0;
  warnings: string[] = [];
  private walker: ParentWalker;
  private dirs: Array<{ comps: string[]; h: Header }> = [];
  private whiteouts: string[] = [];
  private opaque: string[] = [];
  private lastReport = 0;
  private readonly isRoot = process.getuid?.() === 0;

  constructor(
    readonly root: string,
    readonly maxBytes: number,
    readonly opts: UnpackOptions,
  ) {
    this.walker = new ParentWalker(root);
  }

  progress(n: number): void {
    if (n - this.lastReport < 1 << 20) return;
    this.lastReport = n;
    this.opts.onProgress?.({ id: '', action: 'Extracting', current: n });
  }

  warn(msg: string): void {
    if (this.warnings.length < 100) this.warnings.push(msg);
    this.opts.onWarning?.(msg);
  }

  /** Turns stream errors into messages that name the entry being read. */
  explain(e: unknown): Error {
    if (e instanceof JiffyError) return e;
    if (isNoSpace(e)) return storeFull(this.root, `unpacking layer entry "${this.current}"`, e);
    const msg = (e as Error)?.message ?? String(e);
    if (/Unexpected end of data/i.test(msg)) return hostile(this.current || '(start)', 'the tar is truncated');
    if (/Invalid tar header/i.test(msg)) return hostile(this.current || '(start)', `bad tar header after this entry (${msg})`);
    return new JiffyError('invalid_argument', `unpacking layer failed at entry "${this.current}": ${msg}`, { cause: e });
  }

  async entry(h: Header, body: AsyncIterable<Buffer>): Promise<void> {
    if (h.size && h.size > this.maxBytes) throw hostile(h.name, `declares ${h.size} bytes, over the ${this.maxBytes}-byte limit`);
    const comps = splitEntryPath(h.name);
    const base = comps[comps.length - 1] ?? '';
    if (base === OPAQUE_MARKER) {
      const dir = await this.walker.ensure([...comps.slice(0, -1), 'x'], h.name);
      this.opaque.push(path.dirname(dir));
    } else if (base.startsWith(WHITEOUT_PREFIX)) {
      const name = base.slice(WHITEOUT_PREFIX.length);
      if (!name || name === '.' || name === '..') throw hostile(h.name, 'whiteout with an empty or dot name');
      this.whiteouts.push(await this.walker.ensure([...comps.slice(0, -1), name], h.name));
    } else if (comps.length === 0) {
      if (h.type !== 'directory') throw hostile(h.name, 'a non-directory entry for the layer root');
    } else {
      await this.create(h, comps, body);
    }
    await drain(body);
  }

  private async create(h: Header, comps: string[], body: AsyncIterable<Buffer>): Promise<void> {
    const target = await this.walker.ensure(comps, h.name);
    switch (h.type) {
      case 'file':
      case 'contiguous-file':
        await this.clear(target, false);
        await this.writeFile(target, h, body);
        break;
      case 'directory':
        if (!(await this.clear(target, true))) await fs.mkdir(target, { mode: 0o700 });
        this.dirs.push({ comps, h });
        break;
      case 'symlink':
        await this.clear(target, false);
        await fs.symlink(h.linkname ?? '', target);
        await this.owner(target, h);
        await fs.lutimes(target, h.mtime ?? new Date(0), h.mtime ?? new Date(0));
        break;
      case 'link':
        await this.hardlink(target, h);
        break;
      default:
        this.warn(`skipped ${h.type} "${h.name}": device nodes and fifos are not created from image layers (the runtime provides /dev)`);
        return;
    }
    this.files++;
    this.xattrWarning(h);
  }

  /** Clears the way for a new entry; keeps (returns true) an existing real dir when a dir is wanted. */
  private async clear(target: string, wantDir: boolean): Promise<boolean> {
    const st = await fs.lstat(target).catch(() => null);
    if (!st) return false;
    if (st.isDirectory()) {
      if (wantDir) return true;
      await fs.rm(target, { recursive: true, force: true });
      this.walker.forget();
      return false;
    }
    await fs.unlink(target);
    return false;
  }

  private async writeFile(target: string, h: Header, body: AsyncIterable<Buffer>): Promise<void> {
    const fh = await fs.open(target, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    try {
      let n = 0;
      for await (const chunk of body) {
        n += chunk.length;
        await fh.write(chunk);
      }
      if (n !== (h.size ?? 0)) throw hostile(h.name, `has ${n} bytes of data, header says ${h.size}`);
      if (this.isRoot) await fh.chown(h.uid ?? 0, h.gid ?? 0);
      await fh.chmod(this.safeMode(h));
      await fh.utimes(h.mtime ?? new Date(0), h.mtime ?? new Date(0));
    } finally {
      await fh.close();
    }
  }

  private async hardlink(target: string, h: Header): Promise<void> {
    if (!h.linkname) throw hostile(h.name, 'hardlink without a target');
    const linkComps = splitEntryPath(h.linkname, `${h.name} (hardlink to ${h.linkname})`);
    if (linkComps.length === 0) throw hostile(h.name, 'hardlink to the layer root');
    const from = await this.walker.ensure(linkComps, `${h.name} (hardlink to ${h.linkname})`, false);
    const st = await fs.lstat(from).catch(() => null);
    if (!st) throw hostile(h.name, `hardlink target "${h.linkname}" is not in this layer (earlier in the tar)`);
    if (st.isDirectory()) throw hostile(h.name, `hardlink to directory "${h.linkname}"`);
    if (from === target) return;
    await this.clear(target, false);
    // link(2) does not follow a symlink source on Linux, so the link stays inside the layer.
    await fs.link(from, target);
  }

  private safeMode(h: Header): number {
    const mode = (h.mode ?? 0o644) & 0o7777;
    if (mode & 0o6000) {
      this.warn(`made safe: stripped setuid/setgid bits from "${h.name}" (mode ${mode.toString(8)} -> ${(mode & ~0o6000).toString(8)})`);
    }
    return mode & ~0o6000;
  }

  private async owner(target: string, h: Header): Promise<void> {
    if (this.isRoot) await fs.lchown(target, h.uid ?? 0, h.gid ?? 0);
  }

  private xattrWarning(h: Header): void {
    const keys = Object.keys(h.pax ?? {}).filter((k) => k.startsWith('SCHILY.xattr.'));
    // Deliberately not applied: trusted.overlay.* from a tar could redirect overlayfs lookups,
    // and security.capability grants privilege the way the setuid bits we strip do.
    if (keys.length) this.warn(`made safe: xattrs not applied to "${h.name}": ${keys.map((k) => k.slice(13)).join(', ')}`);
  }

  /** Directory metadata last (children change a dir's mtime), then the overlay whiteouts. */
  async finish(): Promise<void> {
    for (const { comps, h } of this.dirs.reverse()) {
      // A later entry may have replaced the dir or a parent with a symlink: never chmod through it.
      if (!(await this.walker.isRealDir(comps))) continue;
      const p = path.join(this.root, ...comps);
      const fh = await fs.open(p, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
      try {
        if (this.isRoot) await fh.chown(h.uid ?? 0, h.gid ?? 0);
        await fh.chmod(this.safeMode(h));
        await fh.utimes(h.mtime ?? new Date(0), h.mtime ?? new Date(0));
      } finally {
        await fh.close();
      }
    }
    for (const dir of this.opaque) {
      if (!(await this.walker.isRealDir(path.relative(this.root, dir).split('/').filter(Boolean)))) {
        throw hostile(path.relative(this.root, dir) + '/' + OPAQUE_MARKER, 'its directory was replaced by a non-directory');
      }
    }
    await makeWhiteouts(this.whiteouts);
    await makeOpaque(this.opaque);
  }
}

async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of body) void _;
}
