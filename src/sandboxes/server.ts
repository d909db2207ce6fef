/**
 * A standalone sandbox API server (`jiffy sandbox serve`): the sandbox routes with the gateway's
 * error mapping, on a TCP port, for hosts that want sandboxes without Redis and the function
 * gateway. `jiffy up` mounts the same routes into its gateway.
 */
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { onError } from '../gateway/errors.js';
import type { SandboxManager } from './manager.js';
import { createSandboxRoutes } from './routes.js';

export interface SandboxServer {
  url: string;
  close(): Promise<void>;
}

/** The sandbox routes as a complete app (onError, 404 in the API's error shape). */
export function sandboxApp(sandboxes: SandboxManager, maxBodyBytes?: number): Hono {
  const app = new Hono();
  app.onError(onError);
  app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route ${c.req.method} ${c.req.path}; see /v1/sandboxes` } }, 404));
  app.route('/', createSandboxRoutes({ sandboxes, maxBodyBytes }));
  return app;
}

/** Serve the sandbox API on `host:port` until close(). */
export async function serveSandboxes(sandboxes: SandboxManager, o: { port: number; host: string; maxBodyBytes?: number }): Promise<SandboxServer> {
  const app = sandboxApp(sandboxes, o.maxBodyBytes);
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: o.port, hostname: o.host }, () => resolve(s));
    s.once('error', reject);
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    }),
  };
}
