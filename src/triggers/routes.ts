import { Queue } from 'bullmq';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Redis } from 'ioredis';
import { JiffyError } from '../errors.js';
import { FunctionRegistry } from '../functions/registry.js';
import type { Keys } from '../queue/keys.js';
import { createTriggerKeys } from './keys.js';
import { QUEUE_NAME_RE } from './spec.js';
import { readSubscriptions, type Subscriptions } from './subscriptions.js';

export interface QueueRoutesOptions {
  redis: Redis;
  keys: Keys;
  /** Largest job body (413 past it). */
  maxBodyBytes: number;
  /** How long a job's record stays readable after it fanned out (seconds, default 3600). */
  keepS?: number;
}

/**
 * `POST /v1/queues/:queue/jobs` (JSON body = the event; 202 with the job id) and `GET /v1/queues`
 * (every trigger queue and its subscribers). The job goes on the same BullMQ queue an outside
 * producer would use, `new Queue(NAME, { connection, prefix: '<prefix>:triggers' }).add('job', event)`.
 */
export function queueRoutes(o: QueueRoutesOptions): Hono & { close(): Promise<void> } {
  const registry = new FunctionRegistry(o.redis, o.keys);
  const prefix = createTriggerKeys(o.keys.prefix).queuePrefix();
  const queues = new Map<string, Queue>();
  let cached: { at: number; subs: Promise<Subscriptions> } | undefined;
  // Subscriptions change only on deploys; a one-second cache keeps a busy producer off the registry.
  const subs = (fresh = false) => {
    if (fresh || !cached || Date.now() - cached.at > 1000) cached = { at: Date.now(), subs: readSubscriptions(registry) };
    return cached.subs;
  };
  const queue = (name: string) => {
    let q = queues.get(name);
    if (!q) { q = new Queue(name, { connection: o.redis, prefix }); queues.set(name, q); }
    return q;
  };
  const limit = bodyLimit({
    maxSize: o.maxBodyBytes,
    onError: () => { throw new JiffyError('payload_too_large', `queue job body is larger than ${o.maxBodyBytes} bytes; send less or raise the gateway's --max-body`); },
  });
  const r = new Hono();
  r.post('/v1/queues/:queue/jobs', limit, async (c) => {
    const name = c.req.param('queue');
    if (!QUEUE_NAME_RE.test(name)) throw new JiffyError('invalid_argument', `invalid queue name ${JSON.stringify(name)}: use 1-100 of A-Z a-z 0-9 _ . - starting with a letter or digit`, { details: { field: 'queue' } });
    const text = await c.req.text();
    let event: unknown = null;
    try { if (text.length) event = JSON.parse(text); } catch (e) {
      throw new JiffyError('invalid_argument', `queue job body must be JSON (it becomes the event): ${(e as Error).message}`, { details: { field: 'body' } });
    }
    // A miss re-reads at once: a function deployed with --queue a moment ago must not get a 404.
    const fns = (await subs()).queues.get(name) ?? (await subs(true)).queues.get(name) ?? [];
    if (!fns.length) throw new JiffyError('not_found', `no function subscribes to queue ${name}; deploy one with: jiffy deploy NAME DIR --queue ${name}`);
    const keep = o.keepS ?? 3600;
    const job = await queue(name).add('job', event, { attempts: 3, backoff: { type: 'exponential', delay: 500 }, removeOnComplete: { age: keep }, removeOnFail: { age: keep * 24 } });
    return c.json({ queue: name, jobId: job.id, subscribers: fns }, 202);
  });
  r.get('/v1/queues', async (c) => {
    const s = await readSubscriptions(registry);
    return c.json({ prefix, queues: [...s.queues].map(([name, functions]) => ({ name, functions })), schedules: [...s.schedules].map(([fn, pattern]) => ({ function: fn, pattern })) });
  });
  return Object.assign(r, {
    async close() {
      await Promise.all([...queues.values()].map((q) => q.close()));
      queues.clear();
    },
  });
}
