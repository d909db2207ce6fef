/**
 * The sandbox HTTP API as a Hono sub-app; the gateway mounts it with `app.route('/', …)` and its
 * onError maps JiffyError codes to statuses. Routes:
 *   POST   /v1/sandboxes                  create (or fork: `from` + `count`) → {sandboxes:[…]}
 *   GET    /v1/sandboxes                  list;  GET /v1/sandboxes/:id  one
 *   DELETE /v1/sandboxes/:id              remove
 *   POST   /v1/sandboxes/:id/exec         run a command → NDJSON stream: {"stream":"stdout","data":"<base64>"}…
 *                                         then {"exit":{"code","signal","timedOut","truncated"}}
 *   PUT    /v1/sandboxes/:id/files/<path> raw body → file;  GET … → the file's bytes
 *   POST   /v1/sandboxes/:id/snapshot     → {ref, id}
 * In a file URL, `/` inside a path component may be sent as %2F; the decoded path is checked
 * by the file layer (no `..` above the root, symlinks in scope).
 */
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { Hono, type Context } from 'hono';
import { JiffyError } from '../errors.js';
import type { SandboxManager } from './manager.js';
import { createBody, execBody, parse, snapshotBody, toCreateOptions, toExecOptions } from './schema.js';
import type { SandboxExecution } from './types.js';

export interface SandboxRoutesOptions {
  sandboxes: SandboxManager;
  /** Largest uploaded file (default 256 MiB) and, /64, largest JSON body → 413 past it. */
  maxBodyBytes?: number;
}

/** The sandbox routes (see the header). */
export function createSandboxRoutes(o: SandboxRoutesOptions): Hono {
  const sm = o.sandboxes;
  const maxFile = o.maxBodyBytes ?? 256 * 1024 * 1024;
  const maxJson = Math.max(64 * 1024, Math.floor(maxFile / 64));
  const r = new Hono();
  r.post('/v1/sandboxes', async (c) => {
    const body = parse(createBody, await jsonBody(c, maxJson), 'sandbox create request');
    return c.json({ sandboxes: await sm.create(toCreateOptions(body)) }, 201);
  });
  r.get('/v1/sandboxes', async (c) => c.json({ sandboxes: await sm.list() }));
  r.get('/v1/sandboxes/:id', async (c) => c.json(await sm.get(c.req.param('id'))));
  r.delete('/v1/sandboxes/:id', async (c) => {
    await sm.remove(c.req.param('id'));
    return c.json({ removed: c.req.param('id') });
  });
  r.post('/v1/sandboxes/:id/exec', async (c) => {
    const body = parse(execBody, await jsonBody(c, maxJson), 'exec request');
    const x = await sm.exec(c.req.param('id'), toExecOptions(body));
    return new Response(ndjson(x), { headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' } });
  });
  r.post('/v1/sandboxes/:id/snapshot', async (c) => {
    const body = parse(snapshotBody, await jsonBody(c, maxJson), 'snapshot request');
    return c.json(await sm.snapshot(c.req.param('id'), body), 201);
  });
  r.put('/v1/sandboxes/:id/files/*', async (c) => {
    const file = filePath(c);
    const len = Number(c.req.header('content-length') ?? NaN);
    if (len > maxFile) throw tooLarge(maxFile);
    const mode = parseMode(c.req.query('mode'));
    const raw = c.req.raw.body ? Readable.fromWeb(c.req.raw.body as WebReadableStream<Uint8Array>) : Readable.from([]);
    const bytes = await sm.writeFile(c.req.param('id'), file, limited(raw, maxFile), mode);
    return c.json({ path: file, bytes }, 201);
  });
  r.get('/v1/sandboxes/:id/files/*', async (c) => {
    const s = await sm.readFile(c.req.param('id'), filePath(c));
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (s.size !== undefined) headers['content-length'] = String(s.size);
    return new Response(Readable.toWeb(s) as unknown as ReadableStream, { headers });
  });
  return r;
}

async function jsonBody(c: Context, max: number): Promise<unknown> {
  const text = await c.req.text();
  if (Buffer.byteLength(text) > max) throw tooLarge(max);
  if (!text.trim()) return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new JiffyError('invalid_argument', `request body is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

const tooLarge = (max: number) => new JiffyError('payload_too_large', `request body is larger than ${max} bytes; send less or raise maxBodyBytes`);

/** The sandbox path after `/files`, percent-decoded per component. */
function filePath(c: Context): string {
  const url = new URL(c.req.url);
  const marker = `/v1/sandboxes/${c.req.param('id')}/files`;
  const rest = url.pathname.slice(url.pathname.indexOf(marker) + marker.length);
  let decoded: string;
  try {
    decoded = rest.split('/').map(decodeURIComponent).join('/');
  } catch (e) {
    throw new JiffyError('invalid_argument', `file path ${rest} is not valid percent-encoding`, { cause: e });
  }
  if (!decoded || decoded === '/') throw new JiffyError('invalid_argument', 'no file path: use /v1/sandboxes/:id/files/<absolute path in the sandbox>');
  return decoded;
}

function parseMode(m: string | undefined): number | undefined {
  if (m === undefined) return undefined;
  if (!/^[0-7]{3,4}$/.test(m)) throw new JiffyError('invalid_argument', `mode ${JSON.stringify(m)} is not an octal file mode such as 0644`);
  return Number.parseInt(m, 8);
}

/** The body, failing with payload_too_large past `max` (chunked uploads have no length); pulled lazily. */
function limited(src: Readable, max: number): Readable {
  async function* gen() {
    let n = 0;
    for await (const chunk of src) {
      n += (chunk as Buffer).length;
      if (n > max) throw tooLarge(max);
      yield chunk as Buffer;
    }
  }
  return Readable.from(gen(), { objectMode: false });
}

/** The exec's output as NDJSON lines, then one exit line; cancelling the response kills the command. */
function ndjson(x: SandboxExecution): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    start(ctl) {
      const line = (v: unknown) => ctl.enqueue(enc.encode(`${JSON.stringify(v)}\n`));
      const ended = [x.stdout, x.stderr].map((s, i) => {
        const stream = i === 0 ? 'stdout' : 'stderr';
        s.on('data', (c: Buffer) => line({ stream, data: c.toString('base64') }));
        return new Promise((res) => s.once('end', res));
      });
      Promise.all([x.done, ...ended]).then(
        ([r]) => {
          const res = r as Awaited<SandboxExecution['done']>;
          line({ exit: { code: res.exitCode, signal: res.signal, timedOut: res.timedOut, truncated: res.truncated } });
          ctl.close();
        },
        (e: Error) => {
          line({ error: { code: (e as JiffyError).code ?? 'internal', message: e.message } });
          ctl.close();
        },
      );
    },
    cancel() {
      x.kill();
    },
  });
}
