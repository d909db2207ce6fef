import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { JiffyError } from '../errors.js';
import { parseFunctionRef, type FunctionVersion } from '../functions/spec.js';
import { checkIdempotencyKey, type Invoker } from '../queue/invocations.js';
import { checkCallbackUrl } from '../retries/callbacks.js';
import { bodyToEvent, httpEvent } from './events.js';
import type { FunctionCache } from './function-cache.js';
import { httpResponse, recordJson, syncResponse } from './responses.js';

async function readBody(c: Context): Promise<Buffer> {
  return Buffer.from(await c.req.arrayBuffer());
}

/**
 * An async invoke: 202 with the invocation id. With an Idempotency-Key the id is derived from the
 * key, so a client retrying a POST whose answer it lost gets the invocation it already created
 * (with `Idempotent-Replayed: true` and that invocation's current status).
 */
async function invokeAsync(c: Context, invoker: Invoker, fn: FunctionVersion, event: ReturnType<typeof bodyToEvent>, callback?: string): Promise<Response> {
  const extra = callback !== undefined ? { callback: checkCallbackUrl(callback) } : {};
  const key = c.req.header('idempotency-key');
  const { id, replayed } = key === undefined
    ? { id: await invoker.enqueue(fn, event, extra), replayed: false }
    : await invoker.enqueueIdempotent(fn, event, checkIdempotencyKey(key), extra);
  const status = replayed ? (await invoker.get(id)).status : 'queued';
  const headers: Record<string, string> = { 'x-jiffy-invocation-id': id };
  if (replayed) headers['idempotent-replayed'] = 'true';
  return c.json({ id, status, url: `/v1/invocations/${id}` }, 202, headers);
}

export function invokeRoutes(d: { cache: FunctionCache; invoker: Invoker; maxBodyBytes: number }): Hono {
  const r = new Hono();
  const limit = bodyLimit({
    maxSize: d.maxBodyBytes,
    onError: () => {
      throw new JiffyError('payload_too_large', `request body is larger than ${d.maxBodyBytes} bytes; send less or raise the gateway's --max-body`);
    },
  });
  r.post('/v1/functions/:ref/invoke', limit, async (c) => {
    const ref = parseFunctionRef(c.req.param('ref'));
    const fn = await d.cache.get(ref.name, ref.version);
    const event = bodyToEvent(await readBody(c), fn.settings.runtime);
    const mode = c.req.query('mode') ?? 'sync';
    const callback = c.req.header('x-jiffy-callback') ?? c.req.query('callback');
    if (callback !== undefined && mode !== 'async') throw new JiffyError('invalid_argument', 'a callback URL needs an async invocation: add ?mode=async', { details: { field: 'callback' } });
    if (mode === 'async') return invokeAsync(c, d.invoker, fn, event, callback);
    if (mode !== 'sync') throw new JiffyError('invalid_argument', `invalid mode ${JSON.stringify(mode)}: use sync (default) or async`, { details: { field: 'mode' } });
    // A sync result is not kept by key, so a retried sync call could not be answered once.
    if (c.req.header('idempotency-key') !== undefined) throw new JiffyError('invalid_argument', 'the Idempotency-Key header is only for async invocations: add ?mode=async and poll GET /v1/invocations/:id', { details: { field: 'Idempotency-Key' } });
    return syncResponse(await d.invoker.call(fn, 'sync', event));
  });
  r.get('/v1/invocations/:id', async (c) => c.json(recordJson(await d.invoker.get(c.req.param('id')))));
  const raw = async (c: Context) => {
    const ref = parseFunctionRef(c.req.param('ref')!);
    const fn = await d.cache.get(ref.name, ref.version);
    const event = httpEvent(c, c.req.param('ref')!, await readBody(c));
    return httpResponse(await d.invoker.call(fn, 'http', event));
  };
  r.all('/fn/:ref', limit, raw);
  r.all('/fn/:ref/*', limit, raw);
  return r;
}
