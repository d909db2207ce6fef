import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Hono } from 'hono';
import { ApiKeyStore } from '../src/auth/api-keys.js';
import { createAuthKeys } from '../src/auth/keys.js';
import { createAuth, needFor } from '../src/auth/middleware.js';
import { authRequired } from '../src/auth/policy.js';
import { onError } from '../src/gateway/errors.js';
import { connectRedis } from '../src/queue/connection.js';
import { repoRoot } from '../src/paths.js';
import { startTestRedis, type TestRedis } from './support/redis.js';

// API keys against a real Redis; the middleware in a Hono app with the gateway's own onError
// (app.request(), no port); the `jiffy keys` CLI as a real process.
const run = promisify(execFile);
let r: TestRedis;
let redis: ReturnType<typeof connectRedis>;

before(async () => {
  r = await startTestRedis();
  redis = connectRedis(r.url);
});
after(async () => {
  redis?.disconnect();
  await r?.stop();
});

function app(prefix: string, required = true): Hono {
  const a = new Hono();
  a.onError(onError);
  a.use('*', createAuth({ redis, prefix, required }));
  a.get('/healthz', (c) => c.json({ ok: true }));
  a.post('/v1/functions/:ref/invoke', (c) => c.json({ invoked: c.req.param('ref') }));
  a.get('/v1/invocations/:id', (c) => c.json({ id: c.req.param('id') }));
  a.put('/v1/functions/:name', (c) => c.json({ deployed: true }, 201));
  a.post('/v1/queues/:q/jobs', (c) => c.json({ queued: true }, 202));
  a.get('/metrics', (c) => c.text('m 1'));
  return a;
}

const auth = (t: string) => ({ authorization: `Bearer ${t}` });

test('tokens are stored hashed, verify, list and revoke', async () => {
  const prefix = r.prefix('keys');
  const store = new ApiKeyStore(redis, createAuthKeys(prefix));
  const { key, token } = await store.create({ scope: 'admin', name: 'ci' });
  assert.match(token, /^jfy_[0-9a-z]{12}_[A-Za-z0-9_-]{43}$/);
  const dump = JSON.stringify(await redis.hgetall(createAuthKeys(prefix).apiKey(key.id)));
  assert.ok(!dump.includes(token.slice(-43)), 'the secret itself must not be in Redis');
  assert.equal((await store.verify(token)).id, key.id);
  assert.deepEqual((await store.list()).map((k) => k.name), ['ci']);
  await assert.rejects(store.verify(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')), { code: 'unauthenticated' });
  await store.revoke(key.id);
  await assert.rejects(store.verify(token), (e: Error & { code?: string }) => e.code === 'unauthenticated' && /revoked/.test(e.message));
  await assert.rejects(store.revoke('nosuchkey000'), { code: 'not_found' });
  await assert.rejects(store.create({ functions: ['Bad Name'] }), { code: 'invalid_argument' });
});

test('401 with WWW-Authenticate for missing, malformed, unknown and revoked tokens', async () => {
  const prefix = r.prefix('mw');
  const a = app(prefix);
  const store = new ApiKeyStore(redis, createAuthKeys(prefix));
  const { key, token } = await store.create({ scope: 'invoke' });
  await store.revoke(key.id);
  for (const headers of [{}, auth('nonsense'), auth(`jfy_aaaaaaaaaaaa_${'x'.repeat(43)}`), auth(token), { authorization: 'Basic abc' }]) {
    const res = await a.request('/v1/functions/f/invoke', { method: 'POST', headers });
    assert.equal(res.status, 401, JSON.stringify(headers));
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
    const j = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(j.error.code, 'unauthenticated');
    assert.match(j.error.message, /jiffy keys create/);
  }
  assert.equal((await a.request('/healthz')).status, 200, '/healthz stays public');
});

test('scopes and function lists give 403 with what to do', async () => {
  const prefix = r.prefix('scope');
  const a = app(prefix);
  const store = new ApiKeyStore(redis, createAuthKeys(prefix));
  const admin = (await store.create({ scope: 'admin' })).token;
  const inv = (await store.create({ scope: 'invoke' })).token;
  const only = (await store.create({ scope: 'invoke', functions: ['hello'] })).token;
  const cases: Array<[string, string, string, number]> = [
    [admin, 'PUT', '/v1/functions/x', 201],
    [admin, 'GET', '/metrics', 200],
    [admin, 'POST', '/v1/functions/anything/invoke', 200],
    [inv, 'PUT', '/v1/functions/x', 403],
    [inv, 'GET', '/metrics', 403],
    [inv, 'POST', '/v1/functions/anything/invoke', 200],
    [inv, 'POST', '/v1/queues/orders/jobs', 202],
    [only, 'POST', '/v1/functions/hello/invoke', 200],
    [only, 'POST', '/v1/functions/hello@3/invoke', 200],
    [only, 'GET', '/v1/invocations/hello.abc123', 200],
    [only, 'POST', '/v1/functions/other/invoke', 403],
    [only, 'GET', '/v1/invocations/other.abc123', 403],
    [only, 'POST', '/v1/queues/orders/jobs', 403],
  ];
  for (const [t, method, url, want] of cases) {
    const res = await a.request(url, { method, headers: auth(t) });
    assert.equal(res.status, want, `${method} ${url}`);
    if (want === 403) {
      const j = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(j.error.code, 'permission_denied');
      assert.match(j.error.message, /jiffy keys create|admin key|without --functions/);
    }
  }
});

test('required:false lets everything through; policy follows the listen address', async () => {
  const a = app(r.prefix('off'), false);
  assert.equal((await a.request('/v1/functions/x', { method: 'PUT' })).status, 201);
  assert.equal(authRequired('127.0.0.1'), false);
  assert.equal(authRequired('::1'), false);
  assert.equal(authRequired('localhost'), false);
  assert.equal(authRequired('0.0.0.0'), true);
  assert.equal(authRequired('::'), true);
  assert.equal(authRequired('192.168.1.5'), true);
  assert.equal(authRequired('0.0.0.0', 'off'), false);
  assert.equal(authRequired('127.0.0.1', 'on'), true);
  assert.throws(() => authRequired('127.0.0.1', 'maybe'), { code: 'invalid_argument' });
  assert.deepEqual(needFor('GET', '/v1/functions'), { kind: 'admin' });
  assert.deepEqual(needFor('GET', '/unknown/route'), { kind: 'admin' });
  assert.deepEqual(needFor('DELETE', '/fn/hello/path'), { kind: 'invoke', fn: 'hello' });
});

test('jiffy keys create / ls / revoke against Redis', async () => {
  const jiffy = path.join(repoRoot(), 'bin', 'jiffy');
  const prefix = r.prefix('cli');
  const base = ['--redis', r.url, '--prefix', prefix];
  const c = await run(jiffy, ['keys', 'create', '--scope', 'admin', '--name', 'ops', '--functions', 'a,b', ...base]);
  const token = c.stdout.trim();
  assert.match(token, /^jfy_/);
  assert.match(c.stderr, /cannot be shown again/);
  const key = await new ApiKeyStore(redis, createAuthKeys(prefix)).verify(token);
  assert.deepEqual([key.scope, key.name, key.functions], ['admin', 'ops', ['a', 'b']]);
  const ls = await run(jiffy, ['keys', 'ls', ...base]);
  assert.match(ls.stdout, new RegExp(`${key.id}\\tops\\tadmin\\ta,b\\t.*\\tactive`));
  assert.ok(!ls.stdout.includes(token.slice(18)), 'ls never prints secrets');
  await run(jiffy, ['keys', 'revoke', key.id, ...base]);
  assert.match((await run(jiffy, ['keys', 'ls', ...base])).stdout, /revoked/);
  await assert.rejects(run(jiffy, ['keys', 'create', '--scope', 'root', ...base]), (e: { stderr: string }) => /use admin or invoke/.test(e.stderr));
});
