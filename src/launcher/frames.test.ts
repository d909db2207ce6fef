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

test('frames keep their bytes across random chunk boundaries (small, empty and chunk-sized payloads)', () => {
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const sizes = [0, 1, 200, 4095, 4096, 65536, 70_000, 3, 0, 131_072];
  const sent = sizes.map((n, i) => Buffer.from(Array.from({ length: n }, (_, k) => (k * 7 + i) & 0xff)));
  const all = Buffer.concat(sent.map((p, i) => encodeFrame(FrameType.stdout, i + 1, p)));
  for (let round = 0; round < 20; round++) {
    const d = new FrameDecoder();
    const got = [];
    for (let off = 0; off < all.length; ) {
      const step = 1 + rnd(round % 2 ? 70_000 : 300);
      got.push(...d.push(all.subarray(off, off + step)));
      off += step;
    }
    assert.equal(got.length, sent.length);
    got.forEach((f, i) => {
      assert.equal(f.handle, i + 1);
      assert.ok(f.payload.equals(sent[i]), `payload ${i} (${sent[i].length} bytes) corrupted`);
    });
  }
});
