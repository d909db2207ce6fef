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

/** Incremental decoder: feed stream chunks, get whole frames. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Frame[] = [];
    let off = 0;
    while (this.buf.length - off >= HEADER) {
      const len = this.buf.readUInt32LE(off);
      if (this.buf.length - off < 4 + len) break;
      frames.push({
        type: this.buf.readUInt8(off + 4),
        handle: this.buf.readUInt32LE(off + 5),
        // copy: the payload outlives this chunk (it is pushed into stream buffers)
        payload: Buffer.from(this.buf.subarray(off + HEADER, off + 4 + len)),
      });
      off += 4 + len;
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
    return frames;
  }
}
