import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { ensureRuntimeImage } from '../build/runtime-images.js';
import { JiffyError } from '../errors.js';
import type { ImageStore } from '../images/store.js';
import type { Logger } from '../log.js';
import { connectRedis, waitReady } from '../queue/connection.js';
import type { Keys } from '../queue/keys.js';
import { createGateway, type GatewayOptions } from './app.js';

export interface GatewayServerOptions extends Partial<Pick<GatewayOptions, 'maxBodyBytes' | 'maxCodeBytes' | 'resultTtlS' | 'runtimeImage' | 'auth' | 'metrics' | 'triggers'>> {
  redisUrl: string;
  keys: Keys;
  extraRoutes?: GatewayOptions['extraRoutes'];
  store: ImageStore;
  log: Logger;
  port: number;
  host: string;
}

export interface GatewayServer {
  url: string;
  close(): Promise<void>;
}

/** Runs the gateway app on a TCP port (with its own Redis connections) until `close()`. */
export async function serveGateway(o: GatewayServerOptions): Promise<GatewayServer> {
  const redis = connectRedis(o.redisUrl);
  const subscriber = connectRedis(o.redisUrl);
  await Promise.all([waitReady(redis, o.redisUrl), waitReady(subscriber, o.redisUrl)]);
  const gw = createGateway({ ...o, redis, subscriber, runtimeImage: o.runtimeImage ?? ensureRuntimeImage });
  await gw.start();
  let server: ReturnType<typeof serve>;
  try {
    server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
      const s = serve({ fetch: gw.app.fetch, port: o.port, hostname: o.host }, () => resolve(s));
      s.once('error', reject);
    });
  } catch (e) {
    await gw.close();
    subscriber.disconnect();
    redis.disconnect();
    throw new JiffyError('unavailable', `gateway cannot listen on ${o.host}:${o.port}: ${(e as Error).message}; pick another --port or stop what uses it`, { cause: e });
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive sockets (load generators, curl) must not hold a shutdown open.
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await gw.close();
      subscriber.disconnect();
      redis.disconnect();
    },
  };
}
