import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import type { StorePaths } from '../paths.js';
import type { ProgressFn } from '../progress.js';
import { JiffyError, notFound } from '../errors.js';
import type { ContentStore } from '../content/store.js';
import { digestHex } from '../content/digest.js';
import { pidAlive, withFileLock } from '../content/lock.js';
import { unpackLayer } from '../archive/unpack.js';

/** What `layers/<chainid>/meta.json` records about an unpacked layer. */
export interface LayerMeta {
  chainId: string;
  diffId: string;
  parentChainId: string | null;
  blobDigest?: string;
  /** Size of the uncompressed layer tar (what docker-archive save writes). */
  tarSize?: number;
  files?: number;
  /** What the unpacker skipped or made safe (device nodes, setuid bits…). */
  warnings?: string[];
}

/**
 * Unpacked layers, Docker overlay2's model: each layer is unpacked once into
 * `layers/<chainid>/diff` (keyed by chain id, so the same diff on a different parent is a
 * different layer) and shared read-only as an overlay lower dir by every image and container
 * that has it. `l/<short>` symlinks keep overlay `lowerdir=` strings short (mount data is
 * limited to one page). A layer becomes visible only by an atomic rename of a fully written
 * temp dir; a per-layer lock file keeps two processes from unpacking the same layer twice.
 */
export class LayerStore {
  constructor(
    readonly paths: StorePaths,
    readonly content: ContentStore,
  ) {}

  /** OCI chain id: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
  chainId(parentChainId: string | null, diffId: string): string {
    digestHex(diffId);
    if (!parentChainId) return diffId;
    return `sha256:${crypto.createHash('sha256').update(`${parentChainId} ${diffId}`).digest('hex')}`;
  }

  /** Chain ids for a list of diff ids, base first. */
  chainIds(diffIds: string[]): string[] {
    const out: string[] = [];
    for (const d of diffIds) out.push(this.chainId(out.length ? out[out.length - 1] : null, d));
    return out;
  }

  private base(chainId: string): string {
    return path.join(this.paths.layers, digestHex(chainId));
  }

  /** The unpacked tree of a layer: `layers/<chainid>/diff`. */
  dir(chainId: string): string {
    return path.join(this.base(chainId), 'diff');
  }

  /** Short path relative to the store root (`l/<16 hex>`), a symlink to `dir(chainId)`. */
  lowerPath(chainId: string): string {
    return `l/${digestHex(chainId).slice(0, 16)}`;
  }

  /** True when the layer is fully unpacked (its meta.json is written last, inside the renamed dir). */
  async has(chainId: string): Promise<boolean> {
    try {
      await fs.access(path.join(this.base(chainId), 'meta.json'));
      return true;
    } catch {
      return false;
    }
  }

  /** What was recorded when the layer was unpacked or adopted. */
  async meta(chainId: string): Promise<LayerMeta> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.base(chainId), 'meta.json'), 'utf8')) as LayerMeta;
    } catch (e) {
      throw notFound(`layer ${chainId} is not unpacked in ${this.paths.layers}; pull or load its image again`, e);
    }
  }

  /** Chain ids of all unpacked layers. */
  async list(): Promise<string[]> {
    const names = await fs.readdir(this.paths.layers).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /**
   * Makes sure the layer is unpacked, unpacking blob `blobDigest` (gzip or plain tar) if needed.
   * The blob's uncompressed digest must equal `diffId`. Idempotent; concurrent callers (in any
   * process) wait for one unpack.
   */
  async ensure(opts: {
    blobDigest: string;
    diffId: string;
    parentChainId: string | null;
    mediaType: string;
    onProgress?: ProgressFn;
  }): Promise<{ chainId: string; dir: string }> {
    const chainId = this.chainId(opts.parentChainId, opts.diffId);
    const id = opts.blobDigest.slice(7, 19);
    let unpacked = false;
    if (!(await this.has(chainId))) {
      await this.withLayerLock(chainId, async () => {
        if (await this.has(chainId)) return; // another process unpacked it while we waited
        await this.install(chainId, (diff) => this.unpackBlob(chainId, diff, opts, id));
        unpacked = true;
      });
    }
    opts.onProgress?.({ id, action: unpacked ? 'Extracted' : 'Already exists', done: true });
    await this.ensureShortLink(chainId);
    return { chainId, dir: this.dir(chainId) };
  }

  private async unpackBlob(
    chainId: string,
    diff: string,
    opts: { blobDigest: string; diffId: string; parentChainId: string | null; onProgress?: ProgressFn },
    id: string,
  ): Promise<LayerMeta> {
    const size = await this.content.size(opts.blobDigest);
    const src = await this.content.openRead(opts.blobDigest);
    const res = await unpackLayer(src, diff, { onProgress: (ev) => opts.onProgress?.({ ...ev, id, total: size }) });
    if (res.diffId !== opts.diffId) {
      throw new JiffyError('data_loss', `layer ${opts.blobDigest} unpacks to diff id ${res.diffId} but the image config says ${opts.diffId}; the image is corrupt — remove it and pull or load it again`);
    }
    const { diffId, parentChainId, blobDigest } = opts;
    return { chainId, diffId, parentChainId, blobDigest, tarSize: res.bytes, files: res.files, ...(res.warnings.length ? { warnings: res.warnings } : {}) };
  }

  /**
   * Moves an already-unpacked tree (e.g. a copy of a container's upper dir at commit, already in
   * overlay form) into the store as layer `chainId`, so it is never unpacked again. `fromDir`
   * must be on the same filesystem as the store; it is consumed (or removed if the layer exists).
   */
  async adopt(opts: { chainId: string; diffId: string; parentChainId: string | null; fromDir: string; blobDigest?: string; tarSize?: number }): Promise<void> {
    if (this.chainId(opts.parentChainId, opts.diffId) !== opts.chainId) {
      throw new JiffyError('invalid_argument', `adopt: chain id ${opts.chainId} does not match parent ${opts.parentChainId} + diff ${opts.diffId}`);
    }
    await this.withLayerLock(opts.chainId, async () => {
      if (await this.has(opts.chainId)) return;
      await this.install(opts.chainId, async (diff) => {
        await fs.rmdir(diff);
        await fs.rename(opts.fromDir, diff);
        const { chainId, diffId, parentChainId, blobDigest, tarSize } = opts;
        return { chainId, diffId, parentChainId, blobDigest, tarSize };
      });
    });
    await fs.rm(opts.fromDir, { recursive: true, force: true });
    await this.ensureShortLink(opts.chainId);
  }

  /** Deletes an unpacked layer (the caller checks that nothing uses it). */
  async remove(chainId: string): Promise<void> {
    const trash = path.join(this.paths.layers, `.trash-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
    await fs.rm(path.join(this.paths.root, this.lowerPath(chainId)), { force: true });
    try {
      await fs.rename(this.base(chainId), trash);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    await fs.rm(trash, { recursive: true, force: true });
  }

  /** Removes temp and trash dirs left by crashed processes (never those of a live process). */
  async cleanTemp(): Promise<void> {
    const names = await fs.readdir(this.paths.layers).catch(() => [] as string[]);
    for (const n of names) {
      const m = /^\.(?:tmp|trash)-(?:(\d+)-)?/.exec(n);
      if (!m) continue;
      const pid = m[1] ? Number(m[1]) : 0;
      if (pid && (pid === process.pid || pidAlive(pid))) continue;
      await fs.rm(path.join(this.paths.layers, n), { recursive: true, force: true });
    }
  }

  /** Fills a temp dir via `fill`, writes meta.json, then renames it into place atomically. */
  private async install(chainId: string, fill: (diffDir: string) => Promise<LayerMeta>): Promise<void> {
    const tmp = path.join(this.paths.layers, `.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
    const diff = path.join(tmp, 'diff');
    await fs.mkdir(diff, { recursive: true });
    try {
      const meta = await fill(diff);
      await fs.writeFile(path.join(tmp, 'meta.json'), JSON.stringify(meta) + '\n');
      await fs.rename(tmp, this.base(chainId));
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  private async ensureShortLink(chainId: string): Promise<void> {
    const link = path.join(this.paths.root, this.lowerPath(chainId));
    const target = path.join('..', 'layers', digestHex(chainId), 'diff');
    const cur = await fs.readlink(link).catch(() => null);
    if (cur === target) return;
    await fs.mkdir(this.paths.shortLinks, { recursive: true });
    const tmp = `${link}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
    await fs.symlink(target, tmp);
    await fs.rename(tmp, link);
  }

  private async withLayerLock<T>(chainId: string, fn: () => Promise<T>): Promise<T> {
    await fs.mkdir(this.paths.layers, { recursive: true });
    return withFileLock(path.join(this.paths.layers, `.lock-${digestHex(chainId)}`), fn, 30 * 60_000);
  }
}

