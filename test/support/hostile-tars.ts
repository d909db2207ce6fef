import zlib from 'node:zlib';
import crypto from 'node:crypto';
import tar from 'tar-stream';

/**
 * A corpus of hostile and malformed layer tars, generated with tar-stream so every case is
 * exactly what it says. `outside` is an absolute directory next to the unpack destination that
 * must never be written; symlink cases point into it.
 */
export interface HostileCase {
  name: string;
  tar: Buffer;
  /** "refused": unpack must fail with an error whose message contains `match`; "safe": it must succeed, made safe. */
  expect: 'refused' | 'safe';
  match?: RegExp;
  maxBytes?: number;
}

type E = { name: string; type?: string; mode?: number; linkname?: string; size?: number; devmajor?: number; devminor?: number; body?: Buffer | string; pax?: Record<string, string> };

/** Packs entries into a tar; a `size` larger than the body declares more data than is present. */
export async function packTar(entries: E[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c) => void chunks.push(c as Buffer));
  const ended = new Promise<void>((res) => pack.on('end', () => res()));
  for (const e of entries) {
    const isFile = (e.type ?? 'file') === 'file';
    const body = e.body === undefined ? (isFile ? Buffer.alloc(0) : undefined) : Buffer.from(e.body);
    const header = { name: e.name, type: (e.type ?? 'file') as 'file', mode: e.mode ?? 0o644, mtime: new Date(0), uid: 0, gid: 0, linkname: e.linkname, devmajor: e.devmajor, devminor: e.devminor, ...(e.pax ? { pax: e.pax } : {}), size: e.size ?? body?.length ?? 0 };
    await new Promise<void>((res, rej) => {
      if (body) pack.entry(header, body, (err) => (err ? rej(err) : res()));
      else pack.entry({ ...header, size: 0 }, (err) => (err ? rej(err) : res()));
    });
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

/** Tar with a header that declares `declared` bytes but carries only `present`. */
async function declaresMore(name: string, declared: number, present: number): Promise<Buffer> {
  const whole = await packTar([{ name, body: Buffer.alloc(Math.min(present, 512)) }]);
  const header = Buffer.from(whole.subarray(0, 512));
  // Rewrite the size field (octal, 11 digits + NUL) and fix the checksum.
  header.write(declared.toString(8).padStart(11, '0') + '\0', 124, 12, 'ascii');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return Buffer.concat([header, Buffer.alloc(present)]);
}

/** A gzip stream cut in the middle of the compressed data. */
function gzipTruncated(t: Buffer): Buffer {
  const gz = zlib.gzipSync(t);
  return gz.subarray(0, Math.floor(gz.length / 2));
}

export async function hostileTars(outside: string, absTarget: string): Promise<HostileCase[]> {
  const ok = { body: 'pwned\n' };
  const truncatedWhole = await packTar([{ name: 'big.bin', body: Buffer.alloc(100_000, 7) }]);
  return [
    { name: 'dotdot', expect: 'refused', match: /"\.\.\/escape\.txt".*\.\./, tar: await packTar([{ name: '../escape.txt', ...ok }]) },
    { name: 'dotdot-nested', expect: 'refused', match: /a\/\.\.\/\.\.\/escape/, tar: await packTar([{ name: 'a/', type: 'directory', mode: 0o755 }, { name: 'a/../../escape.txt', ...ok }]) },
    { name: 'absolute-path', expect: 'refused', match: /absolute path/, tar: await packTar([{ name: absTarget, ...ok }]) },
    {
      name: 'symlink-escape-absolute',
      expect: 'refused',
      match: /"a\/pwned\.txt".*parent "a" is a symlink/,
      tar: await packTar([{ name: 'a', type: 'symlink', linkname: outside }, { name: 'a/pwned.txt', ...ok }]),
    },
    {
      name: 'symlink-escape-relative',
      expect: 'refused',
      match: /parent "b" is a symlink/,
      tar: await packTar([{ name: 'b', type: 'symlink', linkname: '../outside' }, { name: 'b/pwned.txt', ...ok }]),
    },
    {
      name: 'symlink-escape-deep',
      expect: 'refused',
      match: /parent "x\/y" is a symlink/,
      tar: await packTar([{ name: 'x/', type: 'directory', mode: 0o755 }, { name: 'x/y', type: 'symlink', linkname: '../../outside' }, { name: 'x/y/z/pwned.txt', ...ok }]),
    },
    {
      name: 'symlink-then-file-replaces-link',
      expect: 'safe',
      tar: await packTar([{ name: 'c', type: 'symlink', linkname: `${outside}/secret` }, { name: 'c', ...ok }]),
    },
    { name: 'hardlink-dotdot', expect: 'refused', match: /hardlink to \.\.\/outside\/secret/, tar: await packTar([{ name: 'h', type: 'link', linkname: '../outside/secret' }]) },
    { name: 'hardlink-absolute', expect: 'refused', match: /absolute path/, tar: await packTar([{ name: 'h', type: 'link', linkname: `${outside}/secret` }]) },
    {
      name: 'hardlink-through-symlink',
      expect: 'refused',
      match: /parent "s" is a symlink/,
      tar: await packTar([{ name: 's', type: 'symlink', linkname: outside }, { name: 'h', type: 'link', linkname: 's/secret' }]),
    },
    { name: 'hardlink-missing-target', expect: 'refused', match: /not in this layer/, tar: await packTar([{ name: 'h', type: 'link', linkname: 'nope' }]) },
    {
      name: 'dir-replaced-by-symlink',
      expect: 'safe',
      tar: await packTar([{ name: 'd/', type: 'directory', mode: 0o777 }, { name: 'd', type: 'symlink', linkname: outside }]),
    },
    {
      name: 'device-nodes',
      expect: 'safe',
      tar: await packTar([
        { name: 'dev/', type: 'directory', mode: 0o755 },
        { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
        { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
        { name: 'dev/fake-whiteout', type: 'character-device', devmajor: 0, devminor: 0 },
        { name: 'dev/fifo', type: 'fifo' },
      ]),
    },
    {
      name: 'setuid-setgid',
      expect: 'safe',
      tar: await packTar([
        { name: 'bin/', type: 'directory', mode: 0o2755 },
        { name: 'bin/su', mode: 0o4755, body: '#!/bin/sh\n' },
        { name: 'bin/sg', mode: 0o2711, body: '#!/bin/sh\n' },
        { name: 'tmp/', type: 'directory', mode: 0o1777 },
      ]),
    },
    {
      name: 'overlay-xattrs',
      expect: 'safe',
      tar: await packTar([
        { name: 'redir/', type: 'directory', mode: 0o755, pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.trusted.overlay.redirect': '/etc' } },
        { name: 'ping', mode: 0o755, body: 'x', pax: { 'SCHILY.xattr.security.capability': 'AQAAAgAgAAAAAAAAAAAAAAAAAAA=' } },
      ]),
    },
    { name: 'whiteout-dotdot', expect: 'refused', match: /whiteout with an empty or dot name/, tar: await packTar([{ name: '.wh...' }]) },
    {
      name: 'whiteout-through-symlink',
      expect: 'refused',
      match: /parent "w" is a symlink/,
      tar: await packTar([{ name: 'w', type: 'symlink', linkname: outside }, { name: 'w/.wh.secret' }]),
    },
    {
      name: 'opaque-through-symlink',
      expect: 'refused',
      match: /parent "o" is a symlink/,
      tar: await packTar([{ name: 'o', type: 'symlink', linkname: outside }, { name: 'o/.wh..wh..opq' }]),
    },
    { name: 'huge-declared-size', expect: 'refused', match: /declares 6000000000 bytes/, maxBytes: 1 << 20, tar: await declaresMore('huge.bin', 6_000_000_000, 4096) },
    { name: 'huge-declared-size-unlimited', expect: 'refused', match: /truncated/, tar: await declaresMore('huge.bin', 6_000_000_000, 4096) },
    { name: 'decompression-bomb', expect: 'refused', match: /larger than the 8388608-byte limit/, maxBytes: 8 << 20, tar: zlib.gzipSync(await packTar(Array.from({ length: 32 }, (_, i) => ({ name: `zeros-${i}`, body: Buffer.alloc(1 << 20) })))) },
    { name: 'truncated-data', expect: 'refused', match: /"big\.bin".*truncated/, tar: truncatedWhole.subarray(0, 40_000) },
    { name: 'truncated-gzip', expect: 'refused', match: /truncated|corrupt/, tar: gzipTruncated(await packTar([{ name: 'random.bin', body: crypto.randomBytes(100_000) }])) },
    { name: 'gzip-trailer-missing', expect: 'refused', match: /gzip stream is corrupt or truncated/, tar: zlib.gzipSync(await packTar([{ name: 'a', body: 'hello' }])).subarray(0, -4) },
    { name: 'not-a-tar', expect: 'refused', match: /tar header|truncated/, tar: Buffer.from('this is not a tar archive at all, just text'.repeat(20)) },
  ];
}
