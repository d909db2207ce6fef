import type { MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import { JiffyError } from '../errors.js';
import { HttpError } from '../gateway/errors.js';
import { ApiKeyStore, type ApiKey } from './api-keys.js';
import { createAuthKeys } from './keys.js';

/** What a request needs: nothing, any key that may invoke `fn` (or any function), or an admin key. */
export type Need = { kind: 'public' } | { kind: 'invoke'; fn?: string } | { kind: 'admin' };

function seg(s: string | undefined): string {
  try { return decodeURIComponent(s ?? ''); } catch { return s ?? ''; }
}

/**
 * Classifies a gateway route. Invoking, reading an invocation's result and enqueueing a queue job
 * are `invoke`; everything else under /v1 (deploy, remove, list, dead letters) and /metrics is
 * `admin`; only /healthz is public. Unknown paths count as admin so a new route is closed by default.
 */
export function needFor(method: string, path: string): Need {
  const p = path.split('/');
  if (path === '/healthz') return { kind: 'public' };
  if (p[1] === 'fn' && p[2]) return { kind: 'invoke', fn: seg(p[2]).split('@')[0] };
  if (p[1] !== 'v1') return { kind: 'admin' };
  if (p[2] === 'functions' && p[4] === 'invoke' && p.length === 5 && method === 'POST') return { kind: 'invoke', fn: seg(p[3]).split('@')[0] };
  if (p[2] === 'invocations' && p[3] && method === 'GET') {
    const id = seg(p[3]);
    return { kind: 'invoke', fn: id.slice(0, Math.max(0, id.lastIndexOf('.'))) || '?' };
  }
  if (p[2] === 'queues' && p[4] === 'jobs' && method === 'POST') return { kind: 'invoke' };
  return { kind: 'admin' };
}

/** Throws permission_denied (403) unless `key` may do what `need` asks. */
export function authorize(key: ApiKey, need: Need): void {
  if (need.kind === 'public' || key.scope === 'admin') return;
  if (need.kind === 'admin') {
    throw new JiffyError('permission_denied', `API key ${key.id} has scope "invoke" and cannot manage functions; use an admin key (jiffy keys create --scope admin)`);
  }
  if (!key.functions.length) return;
  if (need.fn === undefined) {
    throw new JiffyError('permission_denied', `API key ${key.id} is limited to functions ${key.functions.join(', ')} and cannot enqueue queue jobs; use a key without --functions`);
  }
  if (!key.functions.includes(need.fn)) {
    throw new JiffyError('permission_denied', `API key ${key.id} may not invoke function ${need.fn} (allowed: ${key.functions.join(', ')}); create a key with: jiffy keys create --functions ${need.fn}`);
  }
}

export interface AuthOptions {
  redis: Redis;
  /** Redis key prefix (default "jiffy", as the gateway's). */
  prefix?: string;
  /** false = accept every request (loopback-only gateways); see authRequired(). */
  required: boolean;
}

const CHALLENGE = { 'www-authenticate': 'Bearer realm="jiffy"' };

function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

/**
 * Hono middleware checking `Authorization: Bearer <token>` against the API keys in Redis:
 * 401 (with WWW-Authenticate) for a missing, unknown or revoked token, 403 for a key whose scope
 * or function list does not cover the route. Errors are thrown as the gateway's HttpError so its
 * one onError renders them as `{error: {code, message}}`.
 */
export function createAuth(o: AuthOptions): MiddlewareHandler {
  const store = new ApiKeyStore(o.redis, createAuthKeys(o.prefix));
  return async function auth(c, next) {
    if (!o.required) return next();
    const need = needFor(c.req.method, c.req.path);
    if (need.kind === 'public') return next();
    const token = bearer(c.req.header('authorization'));
    if (!token) {
      throw new HttpError('unauthenticated', 'this gateway requires an API key: send "Authorization: Bearer <token>" (create a key with jiffy keys create; the CLI reads $JIFFY_TOKEN)', { headers: CHALLENGE });
    }
    let key: ApiKey;
    try {
      key = await store.verify(token);
    } catch (e) {
      if ((e as JiffyError).code !== 'unauthenticated') throw e;
      throw new HttpError('unauthenticated', (e as Error).message, { headers: { 'www-authenticate': 'Bearer realm="jiffy", error="invalid_token"' } });
    }
    authorize(key, need);
    return next();
  };
}
