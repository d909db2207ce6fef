import { Hono } from 'hono';
import type { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import type { Logger } from '../log.js';
import { buildFunctionImage, type RuntimeImageFn } from '../functions/build.js';
import { Deployer } from '../functions/deploy.js';
import { FunctionRegistry } from '../functions/registry.js';
import type { ImageStore } from '../images/store.js';
import type { ControlMessage } from '../queue/control.js';
import { Invoker } from '../queue/invocations.js';
import type { Keys } from '../queue/keys.js';
import { createAuth } from '../auth/middleware.js';
import type { Metrics } from '../metrics/metrics.js';
import { bullQueueDepths } from '../metrics/queue-depths.js';
import { metricsRoutes, recordThrottled } from '../metrics/routes.js';
import { DeadLetters } from '../retries/dead-letters.js';
import { createRetryKeys } from '../retries/keys.js';
import { deadLetterRoutes } from '../retries/routes.js';
import { queueRoutes } from '../triggers/routes.js';
import { TriggerService } from '../triggers/service.js';
import { onError } from './errors.js';
import { FunctionCache } from './function-cache.js';
import { functionRoutes } from './routes-functions.js';
import { invokeRoutes } from './routes-invoke.js';

export interface GatewayOptions {
  /** Redis for commands. */
  redis: Redis;
  /** A second Redis connection the gateway owns for subscriptions (reply + control channels). */
  subscriber: Redis;
  keys: Keys;
  store: ImageStore;
  /** Resolves or builds a runtime image (src/build/runtime-images.ts ensureRuntimeImage). */
  runtimeImage: RuntimeImageFn;
  log: Logger;
  /** Largest invocation body (default 6 MiB) → 413 past it. */
  maxBodyBytes?: number;
  /** Largest deployed code, unpacked (default 256 MiB). */
  maxCodeBytes?: number;
  /** Seconds results stay readable (default 3600). */
  resultTtlS?: number;
  /** More routes served by this gateway after its own (e.g. the sandbox API from src/sandboxes). */
  extraRoutes?: Hono[];
  gatewayId?: string;
  /** Require API keys (src/auth; default off — the CLI turns it on beyond loopback). */
  auth?: boolean;
  /** Serve /metrics from this registry and count throttled calls (src/metrics). */
  metrics?: Metrics;
  /** Run queue and cron triggers in this process (default true). */
  triggers?: boolean;
}

/** A gateway app plus what must be started and closed around it. */
export interface Gateway {
  app: Hono;
  /** Subscribes reply and control channels; await before serving. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The HTTP gateway: a Hono app over Redis and the image store. Holds no invocation state a
 * restart would lose (jobs and results live in Redis). Routes: /v1/functions (deploy, list, info,
 * remove), /v1/functions/:name/invoke (sync, ?mode=async), /v1/invocations/:id, /fn/:name/* (raw HTTP).
 */
export function createGateway(o: GatewayOptions): Gateway {
  const registry = new FunctionRegistry(o.redis, o.keys);
  const cache = new FunctionCache(registry);
  const invoker = new Invoker({ redis: o.redis, subscriber: o.subscriber, keys: o.keys, gatewayId: o.gatewayId ?? nanoid(10), resultTtlS: o.resultTtlS });
  const maxCode = o.maxCodeBytes ?? 256 * 1024 * 1024;
  const deployer = new Deployer({ redis: o.redis, keys: o.keys, log: o.log, build: (fn, code) => buildFunctionImage(o.store, o.runtimeImage, fn, code, maxCode) });
  const app = new Hono();
  app.onError(onError);
  app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route ${c.req.method} ${c.req.path}; see /v1/functions` } }, 404));
  app.use('*', createAuth({ redis: o.redis, prefix: o.keys.prefix, required: o.auth ?? false }));
  const depths = bullQueueDepths({ connection: o.redis, prefix: o.keys.bullPrefix(), names: async () => (await registry.list()).map((f) => o.keys.queueName(f.name)) });
  if (o.metrics) {
    o.metrics.watchQueues(depths);
    app.use('*', recordThrottled(o.metrics));
    app.route('/', metricsRoutes(o.metrics));
  }
  app.get('/healthz', async (c) => c.json({ ok: true, workers: (await deployer.liveWorkers()).length }));
  app.route('/', functionRoutes({ registry, deployer, cache, invoker, maxCodeBytes: maxCode }));
  app.route('/', invokeRoutes({ cache, invoker, maxBodyBytes: o.maxBodyBytes ?? 6 * 1024 * 1024 }));
  const queues = queueRoutes({ redis: o.redis, keys: o.keys, maxBodyBytes: o.maxBodyBytes ?? 6 * 1024 * 1024 });
  app.route('/', queues);
  const deadLetters = new DeadLetters(o.redis, createRetryKeys(o.keys.prefix));
  const replay = async (l: { function: string; event: unknown; eventEncoding?: 'base64'; callback?: string }) => invoker.enqueue(await cache.get(l.function), { event: l.event, eventEncoding: l.eventEncoding }, { callback: l.callback });
  app.route('/', deadLetterRoutes({ deadLetters, replay }));
  const triggers = new TriggerService({ redis: o.redis, keys: o.keys, log: o.log, enqueue: (fn, ev, dedupeId) => invoker.enqueue(fn, ev, { dedupeId }), onRemove: (name) => deadLetters.purge(name) });
  for (const r of o.extraRoutes ?? []) app.route('/', r);
  const onControl = (ch: string, msg: string) => {
    if (ch !== o.keys.controlChannel()) return;
    const m = JSON.parse(msg) as ControlMessage;
    if (m.type === 'published') cache.invalidate(m.name);
    if (m.type === 'remove') cache.forget(m.name);
  };
  return {
    app,
    async start() {
      o.subscriber.on('message', onControl);
      await o.subscriber.subscribe(o.keys.controlChannel());
      await invoker.start();
      if (o.triggers !== false) await triggers.start();
    },
    async close() {
      o.subscriber.off('message', onControl);
      await triggers.close();
      await queues.close();
      await depths.close();
      await invoker.close();
    },
  };
}
