import { Readable, Transform } from 'node:stream';
import { JiffyError } from '../errors.js';
import type { RegistryClient } from './client.js';

export interface UploadOptions {
  /** Upload in PATCH chunks of this many bytes instead of one monolithic PUT. */
  chunkSize?: number;
  /** Try a cross-repository mount from this repository (same registry) first. */
  mountFrom?: string;
  onBytes?: (sent: number) => void;
}

/**
 * Uploads one blob (OCI distribution spec, "pushing blobs"): POST to open an upload session, then
 * either one PUT with the whole body and `?digest=` (monolithic), or PATCH chunks with
 * Content-Range followed by a closing PUT. A registry that refuses a monolithic body as too large
 * (413) gets the chunked form. `open` is called again for each attempt, so bodies are streamed,
 * never buffered whole. Returns how the blob got there.
 */
export async function uploadBlob(
  client: RegistryClient,
  digest: string,
  size: number,
  open: () => Promise<Readable>,
  opts: UploadOptions = {},
): Promise<'mounted' | 'uploaded'> {
  if (opts.mountFrom && opts.mountFrom !== client.opts.repository) {
    const q = `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(opts.mountFrom)}`;
    const res = await client.request('POST', `${client.opts.repository}/blobs/uploads/${q}`, { push: true, headers: { 'content-length': '0' } });
    if (res.status === 201) {
      await res.body?.cancel();
      return 'mounted';
    }
    await startedUpload(client, res, digest); // 202: a normal upload session was opened instead
  }
  if (opts.chunkSize) {
    await chunked(client, await openSession(client, digest), digest, size, open, opts.chunkSize, opts.onBytes);
    return 'uploaded';
  }
  const location = await openSession(client, digest);
  const res = await client.request('PUT', withDigest(location, digest), {
    push: true,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: async () => withCounter(await open(), opts.onBytes),
  });
  if (res.status === 413) {
    await res.body?.cancel();
    await chunked(client, await openSession(client, digest), digest, size, open, 8 << 20, opts.onBytes);
    return 'uploaded';
  }
  await client.ensureOk(res, `PUT blob ${digest}`);
  await res.body?.cancel();
  return 'uploaded';
}

async function openSession(client: RegistryClient, digest: string): Promise<string> {
  const res = await client.request('POST', `${client.opts.repository}/blobs/uploads/`, { push: true, headers: { 'content-length': '0' } });
  return startedUpload(client, res, digest);
}

async function startedUpload(client: RegistryClient, res: Response, digest: string): Promise<string> {
  await client.ensureOk(res, `start upload of ${digest}`);
  await res.body?.cancel();
  const loc = res.headers.get('location');
  if (!loc) throw new JiffyError('unavailable', `registry ${client.opts.registry} opened an upload for ${digest} without a Location header`);
  return new URL(loc, client.base).toString();
}

/** PATCH the body in `chunkSize` pieces, following the Location each answer returns, then PUT. */
async function chunked(
  client: RegistryClient,
  location: string,
  digest: string,
  size: number,
  open: () => Promise<Readable>,
  chunkSize: number,
  onBytes?: (n: number) => void,
): Promise<void> {
  let loc = location;
  let offset = 0;
  for await (const chunk of rechunk(await open(), chunkSize)) {
    const end = offset + chunk.length - 1;
    const res = await client.request('PATCH', loc, {
      push: true,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end}`, 'content-length': String(chunk.length) },
      body: () => chunk,
    });
    await client.ensureOk(res, `PATCH blob ${digest} bytes ${offset}-${end}`);
    await res.body?.cancel();
    loc = new URL(res.headers.get('location') ?? loc, client.base).toString();
    offset = end + 1;
    onBytes?.(offset);
  }
  if (offset !== size) throw new JiffyError('data_loss', `blob ${digest} has ${offset} bytes locally, expected ${size}; the local store is corrupt`);
  const res = await client.request('PUT', withDigest(loc, digest), { push: true, headers: { 'content-length': '0' } });
  await client.ensureOk(res, `close upload of ${digest}`);
  await res.body?.cancel();
}

async function* rechunk(src: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const c of src as AsyncIterable<Buffer>) {
    let buf = c;
    while (have + buf.length >= size) {
      const take = size - have;
      parts.push(buf.subarray(0, take));
      yield Buffer.concat(parts);
      buf = buf.subarray(take);
      parts = [];
      have = 0;
    }
    if (buf.length) {
      parts.push(buf);
      have += buf.length;
    }
  }
  if (have) yield Buffer.concat(parts);
}

function withDigest(location: string, digest: string): string {
  const u = new URL(location);
  u.searchParams.set('digest', digest);
  return u.toString();
}

function withCounter(src: Readable, onBytes?: (n: number) => void): Readable {
  if (!onBytes) return src;
  let n = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      onBytes(n);
      cb(null, chunk);
    },
  });
  src.on('error', (e) => t.destroy(e));
  return src.pipe(t);
}
