import type { Command } from 'commander';
import type { ApiKey, Scope } from '../../auth/api-keys.js';

interface RedisOpts { redis?: string; prefix: string }

// Keys are managed straight in Redis, not through the gateway: whoever can reach the gateway's
// Redis already controls it, and the first admin key has to come from somewhere.
async function withStore<T>(o: RedisOpts, fn: (s: import('../../auth/api-keys.js').ApiKeyStore) => Promise<T>): Promise<T> {
  const { ApiKeyStore } = await import('../../auth/api-keys.js');
  const { createAuthKeys } = await import('../../auth/keys.js');
  const { connectRedis, waitReady } = await import('../../queue/connection.js');
  const url = o.redis || process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  const redis = connectRedis(url, { retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await waitReady(redis, url);
    return await fn(new ApiKeyStore(redis, createAuthKeys(o.prefix)));
  } finally {
    redis.disconnect();
  }
}

function row(k: ApiKey): string {
  return [k.id, k.name || '-', k.scope, k.functions.length ? k.functions.join(',') : '*', k.createdAt, k.revokedAt ? `revoked ${k.revokedAt}` : 'active'].join('\t');
}

const redisOpts = (c: Command) =>
  c.option('--redis <url>', 'Redis the gateway uses (default $REDIS_URL or redis://127.0.0.1:6379; jiffy up prints its own)').option('--prefix <prefix>', 'Redis key prefix', 'jiffy');

/** `jiffy keys create|ls|revoke`: API keys (bearer tokens) the gateway checks when auth is on. */
export function register(program: Command): void {
  const keys = program.command('keys').description('create, list and revoke API keys for the gateway');
  redisOpts(
    keys
      .command('create')
      .description('create an API key and print its token (shown once: store it, e.g. as JIFFY_TOKEN)')
      .option('--scope <scope>', 'admin (deploy, remove, invoke, metrics) or invoke (invoke only)', 'invoke')
      .option('--functions <a,b>', 'only these functions may be invoked with it (default: all)')
      .option('--name <name>', 'a label to recognise the key by'),
  ).action(async (o: RedisOpts & { scope: string; functions?: string; name?: string }) => {
    const functions = o.functions ? o.functions.split(',').map((s) => s.trim()).filter(Boolean) : [];
    const created = await withStore(o, (s) => s.create({ scope: o.scope as Scope, functions, name: o.name }));
    console.error(`created API key ${created.key.id} (scope ${created.key.scope}${functions.length ? `, functions ${functions.join(',')}` : ''}); the token below is not stored and cannot be shown again:`);
    console.log(created.token);
  });
  redisOpts(keys.command('ls').description('list API keys (never their secrets)')).action(async (o: RedisOpts) => {
    const list = await withStore(o, (s) => s.list());
    console.log(['ID', 'NAME', 'SCOPE', 'FUNCTIONS', 'CREATED', 'STATUS'].join('\t'));
    for (const k of list) console.log(row(k));
  });
  redisOpts(keys.command('revoke').description('revoke an API key at once').argument('<id>')).action(async (id: string, o: RedisOpts) => {
    const k = await withStore(o, (s) => s.revoke(id));
    console.log(`revoked ${k.id}${k.name ? ` (${k.name})` : ''}`);
  });
}
