import type { Context } from 'hono';
import type { InvocationJob } from '../functions/outcome.js';
import type { Runtime } from '../functions/spec.js';

type Event = Pick<InvocationJob, 'event' | 'eventEncoding'>;

/**
 * The event a sync/async invoke hands the function: exec gets the body bytes untouched (on stdin);
 * node/python get parsed JSON when the body is JSON, else its text, else base64 bytes
 * (a Buffer / bytes object in the handler).
 */
export function bodyToEvent(body: Buffer, runtime: Runtime): Event {
  if (runtime === 'exec') return { event: body.toString('base64'), eventEncoding: 'base64' };
  if (body.length === 0) return { event: null };
  const text = body.toString('utf8');
  try {
    return { event: JSON.parse(text) };
  } catch {
    if (Buffer.byteLength(text) === body.length && !text.includes('\uFFFD')) return { event: text };
    return { event: body.toString('base64'), eventEncoding: 'base64' };
  }
}

/** The raw-HTTP event: `{method, path, query, headers, body (base64), isBase64Encoded}`. */
export function httpEvent(c: Context, name: string, body: Buffer): Event {
  const url = new URL(c.req.url);
  const prefix = `/fn/${name}`;
  const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) || '/' : url.pathname;
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) if (!(k in query)) query[k] = v;
  const headers: Record<string, string> = {};
  c.req.raw.headers.forEach((v, k) => { headers[k] = v; });
  const event = { method: c.req.method, path, rawQuery: url.search.slice(1), query, headers, body: body.toString('base64'), isBase64Encoded: true };
  return { event };
}
