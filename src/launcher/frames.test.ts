import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFrame, FrameDecoder, FrameType } from './frames.js';

test('frames round-trip across arbitrary chunk boundaries', () => {
  const frames = [
    encodeFrame(FrameType.request, 1, Buffer.from('{"op":"ping"}')),
    encodeFrame(FrameType.stdin, 0xfffffff0, Buffer.alloc(0)),
    encodeFrame(FrameType.stdout, 7, Buffer.alloc(70_000, 1)),
  ];
  const all = Buffer.concat(frames);
  for (const step of [1, 3, 9, 4096, all.length]) {
    const d = new FrameDecoder();
    const got = [];
    for (let off = 0; off < all.length; off += step) got.push(...d.push(all.subarray(off, off + step)));
    assert.deepEqual(got.map((f) => [f.type, f.handle, f.payload.length]), [
      [FrameType.request, 1, 13],
      [FrameType.stdin, 0xfffffff0, 0],
      [FrameType.stdout, 7, 70_000],
    ]);
    assert.equal(got[0].payload.toString(), '{"op":"ping"}');
  }
});

test('the header is u32 LE length (type + handle + payload), u8 type, u32 LE handle', () => {
  const f = encodeFrame(0x81, 0x01020304, Buffer.from('ab'));
  assert.deepEqual([...f], [7, 0, 0, 0, 0x81, 4, 3, 2, 1, 97, 98]);
});
