import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { JiffyError } from '../errors.js';

/**
 * Returns `src` as plain bytes: gunzipped when its first bytes are the gzip magic (1f 8b), as-is
 * otherwise — media types lie often enough (docker-archive has none) that the bytes decide.
 * Backpressure is kept end to end (the rest of `src` is pulled on demand), so a fast reader and
 * a slow extractor never buffer a whole layer in memory. `onBytes` sees the raw byte count.
 */
export async function maybeGunzip(src: Readable, onBytes?: (total: number) => void): Promise<Readable> {
  const it = (src as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let total = 0;
  let first = await it.next();
  // A 1-byte first chunk cannot show the magic; gather until two bytes or the end.
  let head: Buffer = first.done ? Buffer.alloc(0) : first.value;
  while (!first.done && head.length < 2) {
    first = await it.next();
    if (!first.done) head = Buffer.concat([head, first.value]);
  }
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length) {
      total += head.length;
      onBytes?.(total);
      yield head;
    }
    if (first.done) return;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      total += n.value.length;
      onBytes?.(total);
      yield n.value;
    }
  }
  const raw = Readable.from(rest(), { objectMode: false });
  if (!(head[0] === 0x1f && head[1] === 0x8b)) return raw;
  const gz = zlib.createGunzip();
  pipeline(raw, gz, () => {}); // errors reach the consumer through gz
  return gz;
}

/** zlib's errors (code Z_*) as a clear invalid_argument; other errors unchanged. */
export function gzipError(e: Error, what: string): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return new JiffyError('invalid_argument', `${what} gzip stream is corrupt or truncated: ${e.message}`, { cause: e });
  }
  return e;
}

/**
 * Hashes and counts the bytes that pass (the uncompressed tar, whose sha256 is the diff id) and
 * stops at `maxBytes` — the defence against decompression bombs and huge declared sizes.
 */
export class DigestMeter extends Transform {
  readonly hash = crypto.createHash('sha256');
  bytes = 0;
  constructor(readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      return cb(new JiffyError('payload_too_large', `layer is larger than the ${this.maxBytes}-byte limit when uncompressed (decompression bomb?); refused`));
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}
