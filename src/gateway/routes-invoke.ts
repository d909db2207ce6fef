import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { JiffyError } from '../errors.js';
import { parseFunctionRef } from '../functions/spec.js';
import type { Invoker } from '../queue/invocations.js';
import { checkCallbackUrl } from '../retries/callbacks.js';
import { bodyToEvent, httpEvent } from './events.js';
import type { FunctionCache } from './function-cache.js';
import { httpResponse, recordJson, syncResponse } from './responses.js';

async function readBody(c: Context): Promise<Buffer> {
  return Buffer.from(await c.req.arrayBuffer());
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
    if (mode === 'async') {
      const id = await d.invoker.enqueue(fn, event, callback !== undefined ? { callback: checkCallbackUrl(callback) } : {});
      return c.json({ id, status: 'queued', url: `/v1/invocations/${id}` }, 202, { 'x-jiffy-invocation-id': id });
    }
    if (mode !== 'sync') throw new JiffyError('invalid_argument', `invalid mode ${JSON.stringify(mode)}: use sync (default) or async`, { details: { field: 'mode' } });
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
