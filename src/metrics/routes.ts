import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hono, type MiddlewareHandler } from 'hono';
import type { Metrics } from './metrics.js';

/** `GET /metrics` in the Prometheus text format, for mounting on the gateway app. */
export function metricsRoutes(m: Metrics): Hono {
  const r = new Hono();
  r.get('/metrics', async (c) => c.body(await m.registry.metrics(), 200, { 'content-type': m.registry.contentType }));
  return r;
}

/**
 * Counts sync invocations the gateway refused at the function's capacity (429) as `throttled`:
 * they never reach a worker, so no worker can count them. Mount before the invoke routes.
 */
export function recordThrottled(m: Metrics): MiddlewareHandler {
  return async function throttled(c, next) {
    await next();
    if (c.res.status !== 429) return;
    const p = c.req.path.split('/');
    const ref = p[1] === 'fn' ? p[2] : p[1] === 'v1' && p[2] === 'functions' && p[4] === 'invoke' ? p[3] : undefined;
    if (ref) m.recordInvocation({ fn: decodeURIComponent(ref).split('@')[0]!, outcome: 'throttled', phases: {}, cold: false });
  };
}

/**
 * A bare /metrics listener for processes without the gateway (`jiffy worker --metrics-port`):
 * a worker's invocation counters live in the worker process, so Prometheus scrapes each worker.
 */
export async function serveMetrics(m: Metrics, port: number, host = '127.0.0.1'): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'not_found', message: 'only GET /metrics is served here' } }));
      return;
    }
    m.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': m.registry.contentType }).end(text),
      (e: Error) => res.writeHead(500).end(`metrics failed: ${e.message}`),
    );
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, resolve); });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`,
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
