import { PassThrough } from 'node:stream';
import { dirToLayerEntries, writeLayerTar } from '../archive/tar-writer.js';
import { JiffyError, type ErrorCode } from '../errors.js';
import type { FunctionSettings } from './spec.js';

/** Gateway URL: explicit, else $JIFFY_URL, else the `jiffy up` default. */
export function gatewayUrl(explicit?: string): string {
  return (explicit || process.env.JIFFY_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
}

/** A deterministic tar of `dir` (what `jiffy deploy` uploads). */
export async function tarDir(dir: string): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  await writeLayerTar(dirToLayerEntries(dir, { preserveMtime: false }), out);
  return Buffer.concat(chunks);
}

/** Query string for `PUT /v1/functions/:name` from settings (CLI flag names). */
export function deployQuery(s: Partial<Omit<FunctionSettings, 'runtime'>> & { runtime: string }): string {
  const q = new URLSearchParams();
  const put = (k: string, v: unknown) => { if (v !== undefined) q.append(k, String(v)); };
  put('runtime', s.runtime);
  put('handler', s.handler);
  put('memory', s.memoryMb);
  put('cpus', s.cpus);
  put('timeout', s.timeoutS);
  put('concurrency', s.concurrency);
  put('min-warm', s.minWarm);
  put('max-instances', s.maxInstances);
  put('idle-timeout', s.idleTimeoutS);
  put('network', s.network);
  put('queue', s.queues?.length ? s.queues.join(',') : undefined);
  put('schedule', s.schedule);
  put('attempts', s.attempts);
  put('backoff', s.backoff && `${s.backoff.type}:${s.backoff.delayMs}`);
  for (const [k, v] of Object.entries(s.env ?? {})) q.append('env', `${k}=${v}`);
  return q.toString();
}

/** Adds `Authorization: Bearer $JIFFY_TOKEN` when it is set (gateways with auth on; see `jiffy keys`). */
function withToken(init: RequestInit): RequestInit {
  const token = process.env.JIFFY_TOKEN;
  if (!token) return init;
  const headers = new Headers(init.headers);
  if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
  return { ...init, headers };
}

/** Calls the gateway; non-2xx answers become JiffyError with the gateway's code and message. */
export async function gatewayFetch(base: string, path: string, init: RequestInit = {}): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(base + path, withToken(init));
  } catch (e) {
    throw new JiffyError('unavailable', `cannot reach the Jiffy gateway at ${base}: ${(e as Error).message}; start it with \`jiffy up\` or set --url / JIFFY_URL`, { cause: e });
  }
  if (res.ok) return res;
  const text = await res.text();
  let code = 'internal';
  let message = `HTTP ${res.status}: ${text.slice(0, 500)}`;
  let extra: Record<string, unknown> = {};
  try {
    const j = JSON.parse(text) as { error?: { code?: string; message?: string }; logs?: string };
    if (j.error?.message) { code = j.error.code ?? code; message = j.error.message; }
    extra = { status: res.status, logs: j.logs, remoteCode: j.error?.code };
  } catch { /* not JSON */ }
  throw new JiffyError((['not_found', 'invalid_argument', 'resource_exhausted', 'deadline_exceeded', 'unavailable', 'payload_too_large', 'unauthenticated', 'permission_denied'].includes(code) ? code : 'internal') as ErrorCode, `${message} (${code}, HTTP ${res.status})`, { details: extra });
}
