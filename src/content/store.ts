import fs from 'node:fs/promises';
import { createReadStream, type ReadStream } from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import type { StorePaths } from '../paths.js';
import { JiffyError, isNoSpace, notFound, storeFull } from '../errors.js';
import { digestHex } from './digest.js';

/**
 * The content store (containerd's model): blobs addressed by their sha256 digest under
 * `blobs/sha256/<hex>`. A blob is streamed into `ingest/`, hashed on the way, checked against
 * the expected digest and size, fsynced, and only then renamed into place — so a blob that is
 * visible is always complete and correct, and a crash leaves at most a temp file in `ingest/`.
 * Writers of the same blob in several processes race harmlessly: rename is atomic and the
 * content is identical.
 */
export class ContentStore {
  constructor(readonly paths: StorePaths) {}

  /** File path of a blob (whether or not it exists). */
  path(digest: string): string {
    return path.join(this.paths.blobs, digestHex(digest));
  }

  /** True when the blob is present (and therefore complete and verified). */
  async has(digest: string): Promise<boolean> {
    try {
      await fs.access(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  /** Size in bytes; not_found when absent. */
  async size(digest: string): Promise<number> {
    try {
      return (await fs.stat(this.path(digest))).size;
    } catch (e) {
      throw this.missing(digest, e);
    }
  }

  /** The whole blob in memory (manifests, configs); not_found when absent. */
  async readBuffer(digest: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.path(digest));
    } catch (e) {
      throw this.missing(digest, e);
    }
  }

  /** A JSON blob parsed; data_loss when it is not JSON. */
  async readJSON<T>(digest: string): Promise<T> {
    const buf = await this.readBuffer(digest);
    try {
      return JSON.parse(buf.toString('utf8')) as T;
    } catch (e) {
      throw new JiffyError('data_loss', `blob ${digest} is not valid JSON; remove the image and pull or load it again`, { cause: e });
    }
  }

  /** A read stream of a blob. */
  async openRead(digest: string): Promise<ReadStream> {
    if (!(await this.has(digest))) throw this.missing(digest);
    return createReadStream(this.path(digest));
  }

  /** Stores a small blob held in memory. */
  async putBuffer(data: Buffer): Promise<{ digest: string; size: number }> {
    return this.ingest(Readable.from([data]));
  }

  /**
   * Streams `src` into the store. With `expect`, a wrong digest or size is refused
   * (invalid_argument / data_loss) and nothing becomes visible.
   */
  async ingest(
    src: Readable,
    expect?: { digest?: string; size?: number },
    onProgress?: (bytes: number) => void,
  ): Promise<{ digest: string; size: number }> {
    if (expect?.digest && (await this.has(expect.digest))) {
      // Drain rather than destroy: `src` may be one entry of a larger stream (an archive).
      for await (const _ of src) void _;
      return { digest: expect.digest, size: await this.size(expect.digest) };
    }
    await fs.mkdir(this.paths.ingest, { recursive: true });
    await fs.mkdir(this.paths.blobs, { recursive: true });
    const tmp = path.join(this.paths.ingest, `${process.pid}-${crypto.randomBytes(8).toString('hex')}`);
    try {
      const { digest, size } = await this.writeTemp(src, tmp, expect, onProgress);
      await fs.rename(tmp, this.path(digest));
      await fsyncDir(this.paths.blobs);
      return { digest, size };
    } catch (e) {
      if (isNoSpace(e)) throw storeFull(this.paths.root, `storing blob ${expect?.digest ?? ''}`.trim(), e);
      throw e;
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  private async writeTemp(
    src: Readable,
    tmp: string,
    expect: { digest?: string; size?: number } | undefined,
    onProgress?: (bytes: number) => void,
  ): Promise<{ digest: string; size: number }> {
    const hash = crypto.createHash('sha256');
    let size = 0;
    const limit = expect?.size;
    const fh = await fs.open(tmp, 'wx', 0o644);
    try {
      for await (const chunk of src as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (limit !== undefined && size > limit) {
          src.destroy();
          throw new JiffyError('data_loss', `blob ${expect?.digest ?? ''} is larger than its declared ${limit} bytes; the source is corrupt or hostile`);
        }
        hash.update(chunk);
        await fh.write(chunk);
        onProgress?.(size);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    const digest = `sha256:${hash.digest('hex')}`;
    if (limit !== undefined && size !== limit) {
      throw new JiffyError('data_loss', `blob ${expect?.digest ?? digest} is ${size} bytes, expected ${limit}; the download was truncated or the source is corrupt — retry`);
    }
    if (expect?.digest && expect.digest !== digest) {
      throw new JiffyError('data_loss', `digest mismatch: expected ${expect.digest}, got ${digest}; the source is corrupt or was tampered with — nothing was stored`);
    }
    return { digest, size };
  }

  /** Removes a blob (gc decides what is unreferenced; see images/gc.ts). */
  async delete(digest: string): Promise<void> {
    await fs.rm(this.path(digest), { force: true });
  }

  /** All blob digests in the store. */
  async list(): Promise<string[]> {
    const names = await fs.readdir(this.paths.blobs).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /** Removes ingest temp files left by crashed writers (older than `olderThanMs`). */
  async cleanIngest(olderThanMs = 60 * 60 * 1000): Promise<number> {
    const names = await fs.readdir(this.paths.ingest).catch(() => [] as string[]);
    let n = 0;
    for (const name of names) {
      const p = path.join(this.paths.ingest, name);
      const st = await fs.stat(p).catch(() => null);
      if (st && Date.now() - st.mtimeMs > olderThanMs) {
        await fs.rm(p, { force: true, recursive: true });
        n++;
      }
    }
    return n;
  }

  private missing(digest: string, cause?: unknown): JiffyError {
    return notFound(`blob ${digest} is not in the content store (${this.paths.blobs}); pull or load the image again`, cause);
  }
}

/** fsync a directory so a rename in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
