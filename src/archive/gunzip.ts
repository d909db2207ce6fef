import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { JiffyError } from '../errors.js';

/**
 * Passes a plain tar through and gunzips a gzip one, decided by the magic bytes (1f 8b) of the
 * first chunk — media types lie often enough (docker-archive has none) that the bytes decide.
 */
export class AutoGunzip extends Transform {
  private gz: zlib.Gunzip | null | undefined;
  private head = Buffer.alloc(0);

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.gz === undefined) {
      this.head = Buffer.concat([this.head, chunk]);
      if (this.head.length < 2) return cb();
      chunk = this.head;
      this.head = Buffer.alloc(0);
      this.gz = chunk[0] === 0x1f && chunk[1] === 0x8b ? this.startGunzip() : null;
    }
    if (!this.gz) return cb(null, chunk);
    this.gz.write(chunk, () => cb());
  }

  override _flush(cb: TransformCallback): void {
    if (this.gz === undefined) {
      if (this.head.length) this.push(this.head);
      return cb();
    }
    if (!this.gz) return cb();
    this.gz.once('end', () => cb());
    this.gz.end();
  }

  private startGunzip(): zlib.Gunzip {
    const gz = zlib.createGunzip();
    gz.on('data', (d: Buffer) => this.push(d));
    gz.on('error', (e) => this.destroy(new JiffyError('invalid_argument', `layer gzip stream is corrupt or truncated: ${e.message}`, { cause: e })));
    return gz;
  }
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
