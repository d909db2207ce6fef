import path from 'node:path';
import { ImageStore } from '../images/store.js';
import { createSandboxService } from '../sandboxes/service.js';
import type { Logger } from '../log.js';
import { createMetrics } from '../metrics/metrics.js';
import { createKeys } from '../queue/keys.js';
import { startRedisServer, type RedisServerHandle } from '../queue/redis-server.js';
import { createSpawner } from '../worker/spawners.js';
import { FunctionWorker } from '../worker/worker.js';
import { serveGateway, type GatewayServer, type GatewayServerOptions } from './server.js';

export interface AllInOneOptions {
  root: string;
  log: Logger;
  port: number;
  host: string;
  /** Use this Redis; unset = start a private redis-server (data under <root>/redis, AOF on). */
  redisUrl?: string;
  /** Key prefix in Redis (default "jiffy"). */
  prefix?: string;
  gateway?: Partial<GatewayServerOptions>;
  /** Serve the sandbox API (/v1/sandboxes) from this process too (default true). */
  sandboxes?: boolean;
}

export interface AllInOne {
  url: string;
  redisUrl: string;
  worker: FunctionWorker;
  gateway: GatewayServer;
  close(): Promise<void>;
}

/**
 * `jiffy up`: Redis (reused or private), one worker with its launcher, the sandbox service and the
 * gateway (functions and sandboxes API), in one
 * process. `close()` stops them in the order that leaves nothing behind: gateway (no new work),
 * worker (running invocations finish, instances stop, containers and their dirs go), Redis.
 */
export async function startAllInOne(o: AllInOneOptions): Promise<AllInOne> {
  const store = await ImageStore.open(o.root);
  const keys = createKeys(o.prefix ?? 'jiffy');
  let redis: RedisServerHandle | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const c of cleanups.reverse()) await c().catch((e) => o.log.error({ err: e }, 'shutdown step failed'));
  };
  try {
    if (!o.redisUrl) {
      redis = await startRedisServer({ dir: path.join(o.root, 'redis'), preferPort: 6380, persistent: true });
      cleanups.push(() => redis!.stop());
    }
    const redisUrl = o.redisUrl ?? redis!.url;
    const spawner = await createSpawner(store, o.log);
    cleanups.push(() => spawner.close());
    // One process: the worker's invocation counters and the gateway's /metrics share a registry.
    const metrics = o.gateway?.metrics ?? createMetrics();
    const worker = await FunctionWorker.start({ redisUrl, keys, spawner, log: o.log, metrics });
    cleanups.push(() => worker.close());
    // Sandboxes live in this process (their own fork server); closed after the gateway stops taking requests.
    const sandboxes = o.sandboxes === false ? undefined : await createSandboxService({ store, log: o.log });
    if (sandboxes) cleanups.push(() => sandboxes.close());
    const gateway = await serveGateway({ ...o.gateway, metrics, redisUrl, keys, store, log: o.log, port: o.port, host: o.host, extraRoutes: sandboxes ? [sandboxes.routes] : [] });
    cleanups.push(() => gateway.close());
    return { url: gateway.url, redisUrl, worker, gateway, close };
  } catch (e) {
    await close();
    throw e;
  }
}
