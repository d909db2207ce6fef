import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { hasCode } from '../src/errors.js';
import { repoRoot } from '../src/paths.js';
import { MediaTypes } from '../src/images/types.js';
import { pullImage } from '../src/registry/pull.js';
import { pushImage } from '../src/registry/push.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { storeWithRuntimeImages, tempStore } from './support/runtime-images.js';

const USERS = { alice: 'wonder-land-42' };
let basicReg: TestRegistry;
let plainReg: TestRegistry;
let src: Awaited<ReturnType<typeof storeWithRuntimeImages>>;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  basicReg = await startRegistry({ htpasswd: USERS });
  cleanups.push(basicReg.stop);
  plainReg = await startRegistry();
  cleanups.push(plainReg.stop);
  src = await storeWithRuntimeImages(['busybox'], 'authsrc');
  cleanups.push(src.cleanup);
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function fresh(label: string) {
  const t = await tempStore(label);
  cleanups.push(t.cleanup);
  return t;
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

test('htpasswd basic auth: refused without or with wrong credentials, works with them and via JIFFY_REGISTRY_AUTH', async () => {
  const dest = `${basicReg.host}/sec/busybox:1`;
  await assert.rejects(pushImage(src.store, 'busybox:latest', { dest }), (e) => hasCode(e, 'unauthenticated') && /jiffy login/.test((e as Error).message));
  await assert.rejects(pushImage(src.store, 'busybox:latest', { dest, credentials: { username: 'alice', password: 'nope' } }), (e) => hasCode(e, 'unauthenticated'));
  const pushed = await pushImage(src.store, 'busybox:latest', { dest, credentials: { username: 'alice', password: USERS.alice } });
  assert.equal(pushed.digest, (await src.store.resolve('busybox:latest')).manifestDigest);

  const dst = await fresh('authdst');
  await assert.rejects(pullImage(dst.store, dest), (e) => hasCode(e, 'unauthenticated'));
  process.env.JIFFY_REGISTRY_AUTH = `${basicReg.host}=alice:${USERS.alice}`;
  try {
    const p = await pullImage(dst.store, dest);
    assert.equal(p.image.manifestDigest, pushed.digest);
  } finally {
    delete process.env.JIFFY_REGISTRY_AUTH;
  }
});

test('jiffy login --password-stdin stores 0600 credentials that pull then uses; logout forgets them', async () => {
  const dst = await fresh('authcli');
  const dest = `${basicReg.host}/sec/busybox:1`;
  await pushImage(src.store, 'busybox:latest', { dest, credentials: { username: 'alice', password: USERS.alice } });
  const jiffy = (args: string[], input?: string) =>
    new Promise<{ code: number; out: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(repoRoot(), 'bin', 'jiffy'), ...args], { env: { ...process.env, JIFFY_ROOT: dst.root, JIFFY_REGISTRY_AUTH: '' } });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c));
      child.stderr.on('data', (c: Buffer) => (out += c));
      child.stdin.end(input ?? '');
      child.on('close', (code) => resolve({ code: code ?? -1, out }));
    });
  const bad = await jiffy(['login', basicReg.host, '-u', 'alice', '--password-stdin'], 'wrong\n');
  assert.notEqual(bad.code, 0);
  await assert.rejects(fs.access(path.join(dst.root, 'auth.json')), 'nothing stored for bad credentials');
  const ok = await jiffy(['login', basicReg.host, '-u', 'alice', '--password-stdin'], `${USERS.alice}\n`);
  assert.equal(ok.code, 0, ok.out);
  assert.equal((await fs.stat(path.join(dst.root, 'auth.json'))).mode & 0o777, 0o600);
  const pulled = await jiffy(['pull', dest]);
  assert.equal(pulled.code, 0, pulled.out);
  assert.match(pulled.out, /Digest: sha256:/);
  assert.equal((await jiffy(['logout', basicReg.host])).code, 0);
  const denied = await jiffy(['pull', dest]);
  assert.notEqual(denied.code, 0);
  assert.match(denied.out, /requires authentication/);
});

/**
 * A token-auth front for the plain registry, like Docker Hub's: /v2/ answers 401 with a Bearer
 * challenge, /token trades basic credentials for a token, requests with the token are proxied.
 */
async function startBearerFront(backend: TestRegistry): Promise<{ host: string; scopes: string[]; close: () => Promise<void> }> {
  const token = crypto.randomBytes(16).toString('hex');
  const scopes: string[] = [];
  let port = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, `http://127.0.0.1:${port}`);
    if (url.pathname === '/token') {
      scopes.push(...url.searchParams.getAll('scope'));
      const ok = req.headers.authorization === `Basic ${Buffer.from(`alice:${USERS.alice}`).toString('base64')}`;
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(ok ? JSON.stringify({ token }) : '{"details":"bad credentials"}');
      return;
    }
    if (req.headers.authorization !== `Bearer ${token}`) {
      const repo = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//.exec(url.pathname)?.[1];
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="jiffy-test"${repo ? `,scope="repository:${repo}:pull,push"` : ''}`,
      });
      res.end();
      return;
    }
    const headers = { ...req.headers };
    delete headers.authorization;
    const up = http.request({ host: '127.0.0.1', port: backend.port, method: req.method, path: req.url, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  port = await listen(server);
  return { host: `127.0.0.1:${port}`, scopes, close: () => new Promise((r) => server.close(() => r())) };
}

test('bearer token auth: token fetched from the realm with basic credentials for the repository scope', async () => {
  const front = await startBearerFront(plainReg);
  cleanups.push(front.close);
  const dest = `${front.host}/tok/busybox:1`;
  await assert.rejects(pushImage(src.store, 'busybox:latest', { dest }), (e) => hasCode(e, 'unauthenticated'));
  const creds = { username: 'alice', password: USERS.alice };
  const pushed = await pushImage(src.store, 'busybox:latest', { dest, credentials: creds });
  assert.ok(front.scopes.includes('repository:tok/busybox:pull,push'));
  const dst = await fresh('authtok');
  const p = await pullImage(dst.store, dest, { credentials: creds });
  assert.equal(p.image.manifestDigest, pushed.digest);
});

test('a corrupted blob is refused with a digest mismatch and nothing is stored', async () => {
  const layer = Buffer.alloc(10240); // 10 KiB of zeros: refused at download, never unpacked
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: sha(config), size: config.length },
    layers: [{ mediaType: MediaTypes.ociLayer, digest: sha(layer), size: layer.length }],
  }));
  const evil = Buffer.from(layer);
  evil[100] = 1; // same size, different bytes
  const server = http.createServer((req, res) => {
    const p = req.url ?? '';
    if (p === '/v2/') res.end('{}');
    else if (p.endsWith('/manifests/1')) res.writeHead(200, { 'content-type': MediaTypes.ociManifest }).end(manifest);
    else if (p.endsWith('/manifests/2')) res.writeHead(200, { 'content-type': MediaTypes.ociManifest, 'docker-content-digest': sha(Buffer.from('other')) }).end(manifest);
    else if (p.endsWith(`/blobs/${sha(config)}`)) res.end(config);
    else if (p.endsWith(`/blobs/${sha(layer)}`)) res.end(evil);
    else res.writeHead(404).end();
  });
  const port = await listen(server);
  cleanups.push(() => new Promise((r) => server.close(() => r())));
  const dst = await fresh('authbad');
  await assert.rejects(pullImage(dst.store, `127.0.0.1:${port}/evil/img:1`), (e) => hasCode(e, 'data_loss') && /digest mismatch/.test((e as Error).message));
  assert.equal(await dst.store.content.has(sha(layer)), false, 'the bad layer is not in the store');
  assert.deepEqual(await fs.readdir(path.join(dst.root, 'ingest')), [], 'no temp file left behind');
  await assert.rejects(dst.store.resolve(`127.0.0.1:${port}/evil/img:1`), (e) => hasCode(e, 'not_found'));
  assert.deepEqual(await dst.store.list(), []);
  await assert.rejects(pullImage(dst.store, `127.0.0.1:${port}/evil/img:2`), (e) => hasCode(e, 'data_loss') && /digest mismatch for manifest/.test((e as Error).message));
});

function sha(b: Buffer): string {
  return `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
}
