import type { InvocationOutcome } from '../functions/outcome.js';
import type { InvocationRecord } from '../queue/invocations.js';
import { HttpError } from './errors.js';

/** X-Jiffy-* headers every invocation response carries. */
export function invocationHeaders(o: InvocationOutcome): Record<string, string> {
  return {
    'x-jiffy-invocation-id': o.id,
    'x-jiffy-duration-ms': o.timings.totalMs.toFixed(2),
    'x-jiffy-cold-start': String(o.coldStart),
    'x-jiffy-function-version': String(o.functionVersion),
    'server-timing': `queue;dur=${o.timings.queueWaitMs}, boot;dur=${o.timings.bootMs}, init;dur=${o.timings.initMs}, handler;dur=${o.timings.handlerMs}`,
  };
}

/** Throws the outcome's error as the gateway's HTTP exception (status from its code). */
export function throwIfFailed(o: InvocationOutcome): void {
  if (o.ok) return;
  const err = o.error ?? { code: 'internal', message: 'invocation failed without an error' };
  throw new HttpError(err.code, err.message, { details: err.details, headers: invocationHeaders(o), body: { invocationId: o.id, logs: o.logs } });
}

function utf8OrNull(b: Buffer): string | null {
  const s = b.toString('utf8');
  return Buffer.byteLength(s) === b.length && !s.includes('\uFFFD') ? s : null;
}

/** A result as a plain value: base64 results become parsed JSON or text when they are such. */
export function readableResult(o: InvocationOutcome): { result: unknown; resultEncoding?: 'base64' } {
  if (o.resultEncoding !== 'base64') return { result: o.result ?? null };
  const b = Buffer.from(String(o.result ?? ''), 'base64');
  const text = utf8OrNull(b);
  if (text === null) return { result: o.result, resultEncoding: 'base64' };
  try {
    return { result: JSON.parse(text) };
  } catch {
    return { result: text };
  }
}

/** The response to a sync invoke: JSON for values, the bytes themselves for exec/binary output. */
export function syncResponse(o: InvocationOutcome): Response {
  throwIfFailed(o);
  const headers = invocationHeaders(o);
  if (o.resultEncoding === 'base64') {
    const b = Buffer.from(String(o.result ?? ''), 'base64');
    const text = utf8OrNull(b);
    let type = 'application/octet-stream';
    if (text !== null) type = isJson(text) ? 'application/json' : 'text/plain; charset=utf-8';
    return new Response(b, { status: 200, headers: { ...headers, 'content-type': type } });
  }
  return new Response(JSON.stringify(o.result ?? null), { status: 200, headers: { ...headers, 'content-type': 'application/json' } });
}

function isJson(text: string): boolean {
  try { JSON.parse(text); return true; } catch { return false; }
}

interface HttpResult {
  statusCode?: number;
  headers?: Record<string, string | number | string[]>;
  body?: unknown;
  isBase64Encoded?: boolean;
}

/** The response to a raw-HTTP call: `{statusCode, headers, body}` results become that response. */
export function httpResponse(o: InvocationOutcome): Response {
  throwIfFailed(o);
  const { result } = readableResult(o);
  const headers = new Headers();
  for (const [k, v] of Object.entries(invocationHeaders(o))) headers.set(k, v);
  if (!isHttpResult(result)) {
    if (typeof result === 'string') return textResponse(result, headers);
    headers.set('content-type', 'application/json');
    return new Response(JSON.stringify(result), { status: 200, headers });
  }
  for (const [k, v] of Object.entries(result.headers ?? {})) {
    for (const one of Array.isArray(v) ? v : [v]) headers.append(k, String(one));
  }
  let body: BodyInit | null = null;
  if (typeof result.body === 'string') body = result.isBase64Encoded ? Buffer.from(result.body, 'base64') : result.body;
  else if (result.body !== undefined && result.body !== null) {
    body = JSON.stringify(result.body);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  const status = Number(result.statusCode ?? 200);
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new HttpError('function_error', `function returned an invalid statusCode ${JSON.stringify(result.statusCode)}; use 200-599`, { headers: invocationHeaders(o) });
  }
  return new Response([204, 304].includes(status) ? null : body, { status, headers });
}

function textResponse(text: string, headers: Headers): Response {
  headers.set('content-type', 'text/plain; charset=utf-8');
  return new Response(text, { status: 200, headers });
}

function isHttpResult(r: unknown): r is HttpResult {
  return typeof r === 'object' && r !== null && !Array.isArray(r) && 'statusCode' in r;
}

/** JSON for `GET /v1/invocations/:id`. */
export function recordJson(rec: InvocationRecord): Record<string, unknown> {
  const o = rec.outcome;
  const out: Record<string, unknown> = { id: rec.id, function: rec.function, version: rec.version, mode: rec.mode, status: rec.status, enqueuedAt: rec.enqueuedAt };
  if (!o) return out;
  if (o.ok) Object.assign(out, readableResult(o));
  else out.error = o.error;
  return { ...out, coldStart: o.coldStart, timings: o.timings, logs: o.logs };
}
