import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { unpackLayer } from '../src/archive/unpack.js';
import { scanOverlay } from '../src/archive/whiteout.js';
import { ImageStore } from '../src/images/store.js';
import { MediaTypes } from '../src/images/types.js';
import { loadArchiveFile } from '../src/images/load.js';
import { hostileTars, packTar, type HostileCase } from './support/hostile-tars.js';

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jiffy-h3-hostile-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Everything under `dir` as "relpath mode size content-hash-ish", to prove nothing changed. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = path.join(rel, n);
      const st = fs.lstatSync(path.join(dir, r));
      out.push(`${r} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(r);
      else if (st.isFile()) out.push(fs.readFileSync(path.join(dir, r), 'utf8'));
    }
  };
  walk('');
  return out;
}

/** A fresh sandbox: base/{dest, outside/secret}; the marker dir `outside` must never change. */
function sandbox(name: string) {
  const base = path.join(tmp, name);
  fs.mkdirSync(path.join(base, 'dest'), { recursive: true });
  fs.mkdirSync(path.join(base, 'outside'), { mode: 0o755 });
  fs.chmodSync(path.join(base, 'outside'), 0o755);
  fs.writeFileSync(path.join(base, 'outside', 'secret'), 'secret\n', { mode: 0o600 });
  return { base, dest: path.join(base, 'dest'), outside: path.join(base, 'outside'), abs: path.join(base, 'abs-escape.txt') };
}

test('hostile layer corpus: each case refused or made safe, nothing written outside the destination', async () => {
  const paths = sandbox('corpus');
  const cases = await hostileTars(paths.outside, paths.abs);
  assert.ok(cases.length >= 20);
  for (const c of cases) {
    // A fresh dest and marker dir for every case, at the same paths the corpus points at.
    fs.rmSync(paths.base, { recursive: true, force: true });
    const sb = sandbox('corpus');
    const before = snapshot(sb.outside);
    const warnings: string[] = [];
    const run = () => unpackLayer(Readable.from([c.tar]), sb.dest, { maxBytes: c.maxBytes, onWarning: (w) => warnings.push(w) });
    if (c.expect === 'refused') {
      await assert.rejects(run(), (e: Error & { code?: string }) => {
        assert.match(e.message, c.match!, `case ${c.name}: ${e.message}`);
        assert.ok(['invalid_argument', 'payload_too_large'].includes(e.code ?? ''), `case ${c.name}: code ${e.code}`);
        return true;
      });
    } else {
      await run();
      await checkSafe(c, sb, warnings);
    }
    assert.deepEqual(snapshot(sb.outside), before, `case ${c.name}: the marker dir changed`);
    assert.deepEqual(fs.readdirSync(sb.base).sort(), ['dest', 'outside'], `case ${c.name}: something was written next to dest`);
    assert.equal(fs.existsSync(sb.abs), false, `case ${c.name}: absolute path escaped`);
  }
});

async function checkSafe(c: HostileCase, sb: ReturnType<typeof sandbox>, warnings: string[]): Promise<void> {
  const st = (p: string) => fs.lstatSync(path.join(sb.dest, p));
  switch (c.name) {
    case 'symlink-then-file-replaces-link':
      assert.ok(st('c').isFile());
      assert.equal(fs.readFileSync(path.join(sb.dest, 'c'), 'utf8'), 'pwned\n');
      break;
    case 'dir-replaced-by-symlink':
      assert.ok(st('d').isSymbolicLink());
      assert.equal(fs.statSync(sb.outside).mode & 0o7777, 0o755, 'dir metadata must not be applied through the symlink');
      break;
    case 'device-nodes':
      assert.deepEqual(fs.readdirSync(path.join(sb.dest, 'dev')), [], 'no device node or fifo is created');
      assert.equal(warnings.filter((w) => /^skipped (character-device|block-device|fifo)/.test(w)).length, 4, warnings.join('\n'));
      break;
    case 'setuid-setgid':
      assert.equal(st('bin/su').mode & 0o7777, 0o755);
      assert.equal(st('bin/sg').mode & 0o7777, 0o711);
      assert.equal(st('bin').mode & 0o7777, 0o755);
      assert.equal(st('tmp').mode & 0o7777, 0o1777, 'sticky bit is kept');
      assert.equal(warnings.filter((w) => w.startsWith('made safe')).length, 3, warnings.join('\n'));
      break;
    case 'overlay-xattrs':
      assert.equal(fs.lstatSync(path.join(sb.dest, 'redir')).isDirectory(), true);
      assert.deepEqual(await scanOverlay(sb.dest), { whiteouts: [], opaque: [] }, 'no overlay xattr taken from the tar');
      assert.equal(warnings.filter((w) => /made safe: xattrs not applied/.test(w)).length, 2, warnings.join('\n'));
      break;
    default:
      assert.fail(`no safety check for case ${c.name}`);
  }
}

test('a normal layer: metadata, hardlinks, long names, whiteouts and opaque dirs in overlay form', async () => {
  const sb = sandbox('normal');
  const long = `${'d'.repeat(120)}/${'f'.repeat(150)}`;
  const tarBuf = await packTar([
    { name: 'etc/', type: 'directory', mode: 0o750 },
    { name: 'etc/conf', mode: 0o640, body: 'x=1\n' },
    { name: 'etc/conf-link', type: 'link', linkname: 'etc/conf' },
    { name: 'etc/sym', type: 'symlink', linkname: '/etc/conf' },
    { name: long, body: 'long\n' },
    { name: 'gone/.wh.old-file' },
    { name: 'fresh/.wh..wh..opq' },
    { name: 'fresh/new', body: 'n\n' },
  ]);
  const res = await unpackLayer(Readable.from([tarBuf]), sb.dest);
  assert.match(res.diffId, /^sha256:[a-f0-9]{64}$/);
  assert.equal(res.bytes, tarBuf.length);
  const st = fs.lstatSync(path.join(sb.dest, 'etc/conf'));
  assert.equal(st.mode & 0o777, 0o640);
  assert.equal(st.mtime.getTime(), 0);
  assert.equal(fs.lstatSync(path.join(sb.dest, 'etc')).mode & 0o777, 0o750);
  assert.equal(fs.lstatSync(path.join(sb.dest, 'etc/conf-link')).ino, st.ino, 'hardlink shares the inode');
  assert.equal(fs.readlinkSync(path.join(sb.dest, 'etc/sym')), '/etc/conf');
  assert.equal(fs.readFileSync(path.join(sb.dest, long), 'utf8'), 'long\n');
  const wo = fs.lstatSync(path.join(sb.dest, 'gone/old-file'));
  assert.ok(wo.isCharacterDevice() && wo.rdev === 0, 'whiteout is a 0/0 char device');
  assert.equal(fs.existsSync(path.join(sb.dest, 'gone/.wh.old-file')), false);
  assert.deepEqual(await scanOverlay(sb.dest), { whiteouts: ['gone/old-file'], opaque: ['fresh'] });
});

test('ownership is preserved (we run as root)', async () => {
  assert.equal(process.getuid?.(), 0, 'these tests need root: run them with sudo');
  const sb = sandbox('owner');
  const pack = await packTar([{ name: 'f', body: 'x' }, { name: 'l', type: 'symlink', linkname: 'f' }]);
  // Patch uid/gid of both headers to 1234/4321 (octal fields at 108 and 116) and fix checksums.
  for (const off of [0, 1024]) {
    const h = pack.subarray(off, off + 512);
    if (h[0] === 0) continue;
    h.write('0002322\0', 108, 8, 'ascii');
    h.write('0010341\0', 116, 8, 'ascii');
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  }
  await unpackLayer(Readable.from([pack]), sb.dest);
  const f = fs.lstatSync(path.join(sb.dest, 'f'));
  assert.deepEqual([f.uid, f.gid], [1234, 4321]);
});

test('through the image store: wrong digest, wrong diff id and a hostile layer leave nothing visible', async () => {
  const store = await ImageStore.open(path.join(tmp, 'store'));
  const good = await packTar([{ name: 'ok', body: 'ok\n' }]);
  await assert.rejects(
    store.content.ingest(Readable.from([good]), { digest: `sha256:${'0'.repeat(64)}`, size: good.length }),
    (e: Error & { code?: string }) => e.code === 'data_loss' && /digest mismatch/.test(e.message),
  );
  await assert.rejects(store.content.ingest(Readable.from([good]), { size: good.length - 1 }), /larger than its declared/);
  assert.deepEqual(await store.content.list(), []);
  assert.deepEqual(fs.readdirSync(store.paths.ingest), []);

  const bad = (await hostileTars(path.join(tmp, 'nowhere'), path.join(tmp, 'abs'))).find((c) => c.name === 'symlink-escape-absolute')!;
  const blob = await store.content.putBuffer(bad.tar);
  const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' as const, diff_ids: [blob.digest] } };
  const manifest = { schemaVersion: 2 as const, config: { mediaType: MediaTypes.ociConfig, digest: '', size: 0 }, layers: [{ mediaType: MediaTypes.ociLayer, ...blob }] };
  await assert.rejects(store.putImage(manifest, config, ['evil:1']), /parent "a" is a symlink/);
  const okBlob = await store.content.putBuffer(good);
  const wrongDiff = { ...config, rootfs: { type: 'layers' as const, diff_ids: [`sha256:${'1'.repeat(64)}`] } };
  await assert.rejects(store.putImage({ ...manifest, layers: [{ mediaType: MediaTypes.ociLayer, ...okBlob }] }, wrongDiff, ['bad:1']), /unpacks to diff id/);
  assert.deepEqual(fs.readdirSync(store.paths.layers), [], 'no layer, temp dir or lock left behind');
  assert.deepEqual(await store.list(), []);
  await assert.rejects(store.resolve('evil:1'), /not found/);

  // An OCI layout archive whose blob does not match its name, and one that escapes with "..".
  const liar = `sha256:${'2'.repeat(64)}`;
  const lying = await packTar([{ name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}' }, { name: `blobs/sha256/${liar.slice(7)}`, body: 'not what the name says' }]);
  fs.writeFileSync(path.join(tmp, 'lying.tar'), lying);
  await assert.rejects(loadArchiveFile(store, path.join(tmp, 'lying.tar')), (e: Error & { code?: string }) => e.code === 'data_loss' && /blobs\/sha256\/2{64}.*digest mismatch/.test(e.message));
  fs.writeFileSync(path.join(tmp, 'escape.tar'), await packTar([{ name: '../manifest.json', body: '[]' }]));
  await assert.rejects(loadArchiveFile(store, path.join(tmp, 'escape.tar')), /"\.\.\/manifest\.json" refused/);
  fs.writeFileSync(path.join(tmp, 'empty.tar'), await packTar([{ name: 'README', body: 'hi' }]));
  await assert.rejects(loadArchiveFile(store, path.join(tmp, 'empty.tar')), /neither manifest\.json \(docker-archive\) nor index\.json/);
  assert.equal(await store.content.has(liar), false);
});
