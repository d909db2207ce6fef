import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { Hono } from 'hono';
import { JiffyError } from '../errors.js';
import type { Deployer } from '../functions/deploy.js';
import type { FunctionRegistry } from '../functions/registry.js';
import { checkName, parseSettings, type FunctionVersion } from '../functions/spec.js';
import type { Invoker } from '../queue/invocations.js';
import type { FunctionCache } from './function-cache.js';

/** Query parameter → settings field for `PUT /v1/functions/:name` (same words as the CLI flags). */
const QUERY_FIELDS: Record<string, string> = {
  runtime: 'runtime',
  handler: 'handler',
  memory: 'memoryMb',
  cpus: 'cpus',
  timeout: 'timeoutS',
  concurrency: 'concurrency',
  'min-warm': 'minWarm',
  'max-instances': 'maxInstances',
  'idle-timeout': 'idleTimeoutS',
  network: 'network',
  queue: 'queues',
  schedule: 'schedule',
  attempts: 'attempts',
  backoff: 'backoff',
};

/**
 * Settings of a deploy: query params (`?runtime=node&memory=128&env=K=V&env=K2=V2`) and/or a JSON
 * header `X-Jiffy-Settings: {"runtime":"node","memoryMb":128,...}` (field names as in spec.ts);
 * the header wins where both set a field.
 */
export function settingsFromRequest(url: URL, header: string | undefined): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  const env: Record<string, string> = {};
  for (const [k, v] of url.searchParams) {
    if (k === 'env') {
      const eq = v.indexOf('=');
      if (eq <= 0) throw new JiffyError('invalid_argument', `invalid function setting "env": expected K=V, got ${JSON.stringify(v)}`, { details: { field: 'env' } });
      env[v.slice(0, eq)] = v.slice(eq + 1);
      continue;
    }
    const field = QUERY_FIELDS[k];
    if (!field) throw new JiffyError('invalid_argument', `unknown deploy parameter "${k}"; known: ${[...Object.keys(QUERY_FIELDS), 'env'].join(', ')}`, { details: { field: k } });
    raw[field] = v;
  }
  if (Object.keys(env).length) raw.env = env;
  if (header) {
    let parsed: unknown;
    try { parsed = JSON.parse(header); } catch (e) {
      throw new JiffyError('invalid_argument', `X-Jiffy-Settings is not valid JSON: ${(e as Error).message}`, { details: { field: 'X-Jiffy-Settings' } });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new JiffyError('invalid_argument', 'X-Jiffy-Settings must be a JSON object', { details: { field: 'X-Jiffy-Settings' } });
    Object.assign(raw, parsed);
  }
  return raw;
}

/** Public JSON form of a version. */
export function versionJson(fn: FunctionVersion): Record<string, unknown> {
  return { name: fn.name, version: fn.version, ...fn.settings, image: fn.image, codeDiffId: fn.codeDiffId, createdAt: fn.createdAt };
}

const TAR_TYPES = ['application/x-tar', 'application/tar', 'application/gzip', 'application/x-gzip', 'application/octet-stream'];

export function functionRoutes(d: { registry: FunctionRegistry; deployer: Deployer; cache: FunctionCache; invoker: Invoker; maxCodeBytes: number }): Hono {
  const r = new Hono();
  r.put('/v1/functions/:name', async (c) => {
    const name = checkName(c.req.param('name'));
    const settings = parseSettings(settingsFromRequest(new URL(c.req.url), c.req.header('x-jiffy-settings')));
    const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim();
    if (!TAR_TYPES.includes(type)) throw new JiffyError('invalid_argument', `deploy body must be a tar of the code (Content-Type: application/x-tar), got ${JSON.stringify(type || 'none')}`, { details: { field: 'body' } });
    const body = c.req.raw.body;
    if (!body) throw new JiffyError('invalid_argument', 'deploy body is empty: send the code as a tar', { details: { field: 'body' } });
    const res = await d.deployer.deploy(name, settings, Readable.fromWeb(body as unknown as WebReadableStream));
    d.cache.invalidate(name);
    return c.json({ ...versionJson(res.fn), preparedOn: res.preparedOn, ...(res.warning ? { warning: res.warning } : {}) }, 201);
  });
  r.get('/v1/functions', async (c) => c.json({ functions: (await d.registry.list()).map(versionJson) }));
  r.get('/v1/functions/:name', async (c) => {
    const name = checkName(c.req.param('name'));
    const versions = await d.registry.versions(name);
    const latest = await d.registry.get(name);
    return c.json({ name, latest: latest.version, versions: versions.map(versionJson), backlog: await d.invoker.backlog(name) });
  });
  r.delete('/v1/functions/:name', async (c) => {
    const name = checkName(c.req.param('name'));
    const gone = await d.deployer.remove(name);
    d.cache.forget(name);
    return c.json({ removed: name, versions: gone.map((v) => v.version) });
  });
  return r;
}
