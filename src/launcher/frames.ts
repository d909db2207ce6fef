/**
 * The fork-server's wire format (documented in full at the top of native/src/serve.c):
 * every frame is u32 LE length of what follows, u8 type, u32 LE handle, payload.
 */

export const FrameType = {
  request: 0x01,
  stdin: 0x02,
  pauseOut: 0x03,
  resumeOut: 0x04,
  reply: 0x81,
  stdout: 0x82,
  stderr: 0x83,
  exit: 0x84,
  stdinAck: 0x85,
} as const;

export interface Frame {
  type: number;
  handle: number;
  payload: Buffer;
}

const HEADER = 9;

/** Encode one frame. */
export function encodeFrame(type: number, handle: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt32LE(payload.length + 5, 0);
  out.writeUInt8(type, 4);
  out.writeUInt32LE(handle >>> 0, 5);
  payload.copy(out, HEADER);
  return out;
}

/** Payloads at least this big share the chunk's memory instead of being copied. */
const SHARE_AT = 4096;

/**
 * Incremental decoder: feed stream chunks, get whole frames. A chunk that holds whole frames is
 * parsed in place; bytes of an unfinished frame are kept as a list of chunks and joined once, when
 * the frame is complete (not on every chunk, which for a frame spread over many small reads
 * would copy it over and over). Big payloads are views into the chunk (stream chunks are never
 * reused by Node); small ones are copied so they do not pin a whole 64 KiB chunk.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private size = 0;
  /** Bytes needed before parsing is worth trying again. */
  private need = HEADER;

  push(chunk: Buffer): Frame[] {
    if (this.size === 0) return this.parse(chunk);
    this.pending.push(chunk);
    this.size += chunk.length;
    if (this.size < this.need) return [];
    const joined = Buffer.concat(this.pending, this.size);
    this.pending = [];
    this.size = 0;
    return this.parse(joined);
  }

  private parse(buf: Buffer): Frame[] {
    const frames: Frame[] = [];
    let off = 0;
    while (buf.length - off >= HEADER) {
      const len = buf.readUInt32LE(off);
      if (buf.length - off < 4 + len) break;
      const body = buf.subarray(off + HEADER, off + 4 + len);
      frames.push({
        type: buf.readUInt8(off + 4),
        handle: buf.readUInt32LE(off + 5),
        payload: body.length >= SHARE_AT ? body : Buffer.from(body),
      });
      off += 4 + len;
    }
    this.need = HEADER;
    if (off < buf.length) {
      const tail = buf.subarray(off);
      this.pending = [tail];
      this.size = tail.length;
      if (tail.length >= 4) this.need = 4 + tail.readUInt32LE(0);
    }
    return frames;
  }
}
