import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import type { Metrics } from './metrics.js';

/** `GET /metrics` in the Prometheus text format, for mounting on the gateway app. */
export function metricsRoutes(m: Metrics): Hono {
  const r = new Hono();
  r.get('/metrics', async (c) => c.body(await m.registry.metrics(), 200, { 'content-type': m.registry.contentType }));
  return r;
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
