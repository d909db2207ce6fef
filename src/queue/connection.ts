import { Redis, type RedisOptions } from 'ioredis';
import { JiffyError } from '../errors.js';

/**
 * Opens one ioredis connection from a redis:// URL. BullMQ needs `maxRetriesPerRequest: null`
 * on connections it blocks on; we set it everywhere so one factory serves all uses.
 */
export function connectRedis(url: string, extra: RedisOptions = {}): Redis {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new JiffyError('invalid_argument', `REDIS_URL ${JSON.stringify(url)} is not a URL; use redis://host:port`, {
      cause: e,
    });
  }
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false, ...extra, ...(u.protocol === 'rediss:' ? { tls: {} } : {}) });
}

/** Waits until `redis` is connected, or throws `unavailable` naming the URL. */
export async function waitReady(redis: Redis, label: string, timeoutMs = 5000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      reject(new JiffyError('unavailable', `cannot reach Redis at ${label} within ${timeoutMs} ms; start redis-server or set REDIS_URL`));
    }, timeoutMs);
    const ok = () => { cleanup(); resolve(); };
    const cleanup = () => { clearTimeout(t); redis.off('ready', ok); };
    redis.on('ready', ok);
  });
}
