import { Transform, type TransformCallback } from 'node:stream';

const BLOCK = 512;
const META_TYPES = new Set(['x', 'g', 'L', 'K']);

/**
 * Some real writers end a layer tar right after the last file's data — no padding to 512 bytes
 * and no two zero blocks (umoci 0.4.7 does; Go's archive/tar reader, and so skopeo and
 * containerd, accept it; GNU tar and tar-stream do not). This pass-through follows the tar
 * record structure and, when the stream ends exactly at an entry boundary or inside the padding
 * after complete data, appends the missing padding and end-of-archive blocks. A stream cut inside
 * a header or inside file data is left alone, so it is still refused as truncated.
 * It sits after the digest meter: the diff id is always of the original bytes.
 */
export class TarTrailer extends Transform {
  private state: 'header' | 'data' | 'pad' = 'header';
  private need = BLOCK;
  private header: Buffer[] = [];
  private pad = 0;
  private zeroBlocks = 0;
  private pax: Buffer[] | null = null;
  private paxSize: number | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(this.need, chunk.length - off);
      const part = chunk.subarray(off, off + take);
      off += take;
      this.need -= take;
      if (this.state === 'header') this.header.push(part);
      else if (this.state === 'data' && this.pax && this.pax.length < 2048) this.pax.push(part);
      if (this.need === 0) this.advance();
    }
    cb(null, chunk);
  }

  private advance(): void {
    if (this.state === 'header') {
      const h = Buffer.concat(this.header);
      this.header = [];
      this.onHeader(h);
    } else if (this.state === 'data') {
      if (this.pax) this.paxSize = paxSizeOf(Buffer.concat(this.pax));
      this.pax = null;
      this.toPadOrHeader();
    } else {
      this.toHeader();
    }
  }

  private onHeader(h: Buffer): void {
    if (h.every((b) => b === 0)) {
      this.zeroBlocks++;
      return this.toHeader();
    }
    this.zeroBlocks = 0;
    const type = String.fromCharCode(h[156] || 0x30);
    const name = h.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    let size = sizeField(h);
    if (META_TYPES.has(type)) {
      if (type === 'x') this.pax = [];
    } else {
      if (this.paxSize !== undefined) size = this.paxSize;
      this.paxSize = undefined;
      if (type === '5' || ((type === '0' || type === '7') && name.endsWith('/'))) size = 0;
    }
    if (size > 0) {
      this.state = 'data';
      this.need = size;
      this.pad = (BLOCK - (size % BLOCK)) % BLOCK;
    } else {
      this.pax = null;
      this.toHeader();
    }
  }

  private toPadOrHeader(): void {
    if (this.pad > 0) {
      this.state = 'pad';
      this.need = this.pad;
    } else this.toHeader();
  }

  private toHeader(): void {
    this.state = 'header';
    this.need = BLOCK;
  }

  override _flush(cb: TransformCallback): void {
    const atBoundary = this.state === 'header' && this.need === BLOCK;
    if (atBoundary && this.zeroBlocks < 2) this.push(Buffer.alloc(BLOCK * 2));
    else if (this.state === 'pad') this.push(Buffer.alloc(this.need + BLOCK * 2));
    cb();
  }
}

/** The size field: octal text, or GNU base-256 when the high bit is set. */
function sizeField(h: Buffer): number {
  if (h[124] & 0x80) {
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + h[i];
    return n;
  }
  const s = h.subarray(124, 136).toString('latin1').replace(/[\0 ]+/g, '');
  return s ? parseInt(s, 8) || 0 : 0;
}

function paxSizeOf(data: Buffer): number | undefined {
  const m = /(?:^|\n)\d+ size=(\d+)\n/.exec(data.toString('utf8'));
  return m ? Number(m[1]) : undefined;
}
