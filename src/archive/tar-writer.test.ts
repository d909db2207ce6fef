import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import tar from 'tar-stream';
import { dirToLayerEntries, writeLayerTar, type LayerEntry } from './tar-writer.js';

async function toBuffer(entries: LayerEntry[] | AsyncIterable<LayerEntry>): Promise<{ buf: Buffer; diffId: string; size: number }> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const r = await writeLayerTar(entries, out);
  return { buf: Buffer.concat(chunks), ...r };
}

async function headers(buf: Buffer): Promise<Array<{ name: string; mtime: number; uid: number; type: string }>> {
  const out = [];
  const ex = tar.extract();
  Readable.from([buf]).pipe(ex as unknown as NodeJS.WritableStream);
  for await (const e of ex) {
    out.push({ name: e.header.name, mtime: e.header.mtime.getTime(), uid: e.header.uid, type: e.header.type });
    e.resume();
  }
  return out;
}

test('same input → same bytes → same diff id, whatever the input order and file times', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jiffy-h3-tarw-'));
  try {
    fs.mkdirSync(path.join(dir, 'b/sub'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'b/sub/x'), 'x');
    fs.writeFileSync(path.join(dir, 'a'), 'a');
    fs.linkSync(path.join(dir, 'a'), path.join(dir, 'a-hard'));
    fs.symlinkSync('a', path.join(dir, 'c'));
    fs.writeFileSync(path.join(dir, 'n'.repeat(120)), 'long name');
    const one = await toBuffer(dirToLayerEntries(dir));
    fs.utimesSync(path.join(dir, 'a'), new Date(), new Date(2000, 1, 1));
    fs.chownSync(path.join(dir, 'b/sub/x'), 1000, 1000);
    const two = await toBuffer(dirToLayerEntries(dir));
    assert.equal(one.diffId, two.diffId);
    assert.deepEqual(one.buf, two.buf);
    assert.equal(one.size, one.buf.length);
    const hs = await headers(one.buf);
    assert.deepEqual(hs.map((h) => h.name), ['a', 'a-hard', 'b/', 'b/sub/', 'b/sub/x', 'c', 'n'.repeat(120)]);
    assert.ok(hs.every((h) => h.mtime === 0 && h.uid === 0));
    assert.equal(hs[1].type, 'link');
    const withTimes = await toBuffer(dirToLayerEntries(dir, { preserveMtime: true, preserveOwner: true }));
    assert.notEqual(withTimes.diffId, one.diffId);

    const list: LayerEntry[] = [
      { path: 'z', type: 'file', content: Buffer.from('z') },
      { path: 'y', type: 'directory' },
    ];
    const fwd = await toBuffer(list);
    const rev = await toBuffer([...list].reverse());
    assert.equal(fwd.diffId, rev.diffId);
    process.env.SOURCE_DATE_EPOCH = '1700000000';
    try {
      const epoch = await toBuffer(list);
      assert.notEqual(epoch.diffId, fwd.diffId);
      assert.ok((await headers(epoch.buf)).every((h) => h.mtime === 1700000000 * 1000));
    } finally {
      delete process.env.SOURCE_DATE_EPOCH;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
