import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './functions-harness.js';

// Deploy, then sync / async / raw-HTTP invokes for every runtime, a throwing handler, and versions —
// real Redis, real gateway over HTTP, real containers from real images.
let s: Stack;
before(async () => { s = await Stack.start(); });
after(async () => {
  const leaks = await s?.stop();
  assert.deepEqual(leaks, [], 'no mounts or container dirs left behind');
});

const NODE_FN = `
export async function handler(event, context) {
  console.log('log line from node', JSON.stringify(event));
  if (event && event.fail) throw new TypeError('handler failed on purpose: ' + event.fail);
  if (event && event.method) {
    return { statusCode: 201, headers: { 'x-from-fn': 'node' }, body: JSON.stringify({ method: event.method, path: event.path, query: event.query, body: Buffer.from(event.body, 'base64').toString() }) };
  }
  return { echo: event, uid: process.getuid(), fn: context.functionName, v: context.functionVersion, remaining: context.getRemainingTimeInMillis() > 0 };
}`;

const PY_FN = `
import base64, os
def handler(event, context):
    print("log line from python", event)
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError("python failed on purpose: " + event["fail"])
    if isinstance(event, dict) and "method" in event:
        return {"statusCode": 202, "headers": {"x-from-fn": "python"}, "body": event["method"] + " " + event["path"] + " " + base64.b64decode(event["body"]).decode()}
    return {"echo": event, "uid": os.getuid(), "fn": context["functionName"]}
`;

const EXEC_FN = `#!/bin/sh
echo "log line from exec" >&2
input=$(cat)
case "$input" in *fail*) echo "exec failed on purpose" >&2; exit 3;; esac
printf '{"uid":%s,"input":%s}\\n' "$(id -u)" "$input"
`;

test('node: deploy, sync invoke (cold then warm), async + poll, raw HTTP', async () => {
  const d = await s.deploy('hello-node', { 'index.mjs': NODE_FN }, { runtime: 'node' });
  assert.equal(d.version, 1);
  assert.equal(d.preparedOn.length, 1, 'the worker confirmed it prepared the version');
  const r1 = await s.invoke('hello-node', { a: 1 });
  assert.equal(r1.status, 200);
  assert.equal(r1.headers.get('x-jiffy-cold-start'), 'true');
  assert.ok(r1.headers.get('x-jiffy-invocation-id')?.startsWith('hello-node.'));
  assert.ok(Number(r1.headers.get('x-jiffy-duration-ms')) > 0);
  assert.deepEqual(await r1.json(), { echo: { a: 1 }, uid: 65534, fn: 'hello-node', v: 1, remaining: true });
  const r2 = await s.invoke('hello-node', { a: 2 });
  assert.equal(r2.headers.get('x-jiffy-cold-start'), 'false');
  assert.deepEqual(((await r2.json()) as { echo: unknown }).echo, { a: 2 });

  const a = await s.invoke('hello-node', { later: true }, 'async');
  assert.equal(a.status, 202);
  const { id } = (await a.json()) as { id: string };
  const rec = await s.result(id);
  assert.equal(rec.status, 'succeeded');
  assert.deepEqual((rec.result as { echo: unknown }).echo, { later: true });
  assert.match(String(rec.logs), /log line from node \{"later":true\}/);
  const t = rec.timings as Record<string, number>;
  for (const k of ['queueWaitMs', 'bootMs', 'initMs', 'handlerMs', 'totalMs']) assert.equal(typeof t[k], 'number', k);

  const h = await fetch(`${s.url}/fn/hello-node/some/path?x=1&y=two`, { method: 'PUT', body: 'raw body' });
  assert.equal(h.status, 201);
  assert.equal(h.headers.get('x-from-fn'), 'node');
  assert.deepEqual(await h.json(), { method: 'PUT', path: '/some/path', query: { x: '1', y: 'two' }, body: 'raw body' });
});

test('python: sync, async and raw HTTP', async () => {
  await s.deploy('hello-py', { 'main.py': PY_FN }, { runtime: 'python' });
  const r = await s.invoke('hello-py', { b: [1, 2] });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { echo: { b: [1, 2] }, uid: 65534, fn: 'hello-py' });
  const { id } = (await (await s.invoke('hello-py', 'x', 'async')).json()) as { id: string };
  const rec = await s.result(id);
  assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
  assert.match(String(rec.logs), /log line from python/);
  const h = await fetch(`${s.url}/fn/hello-py/p?q=1`, { method: 'POST', body: 'hey' });
  assert.equal(h.status, 202);
  assert.equal(h.headers.get('x-from-fn'), 'python');
  assert.equal(await h.text(), 'POST /p hey');
});

test('exec: sync, async and raw HTTP; runs as uid 65534', async () => {
  await s.deploy('hello-exec', { handler: EXEC_FN }, { runtime: 'exec' });
  const r = await s.invoke('hello-exec', { c: 3 });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-jiffy-cold-start'), 'true');
  assert.deepEqual(await r.json(), { uid: 65534, input: { c: 3 } });
  const { id } = (await (await s.invoke('hello-exec', [1], 'async')).json()) as { id: string };
  const rec = await s.result(id);
  assert.equal(rec.status, 'succeeded');
  assert.deepEqual(rec.result, { uid: 65534, input: [1] });
  assert.match(String(rec.logs), /log line from exec/);
  const h = await fetch(`${s.url}/fn/hello-exec/x`, { method: 'POST', body: 'b' });
  assert.equal(h.status, 200);
  const j = (await h.json()) as { input: { method: string; path: string } };
  assert.equal(j.input.method, 'POST');
  assert.equal(j.input.path, '/x');
});

test('a handler that throws is a 500 carrying its message and logs', async () => {
  const r = await s.invoke('hello-node', { fail: 'xyz' });
  assert.equal(r.status, 500);
  const j = (await r.json()) as { error: { code: string; message: string }; logs: string };
  assert.equal(j.error.code, 'function_error');
  assert.match(j.error.message, /TypeError: handler failed on purpose: xyz/);
  assert.match(j.logs, /log line from node/);
  const p = await s.invoke('hello-py', { fail: 'abc' });
  assert.equal(p.status, 500);
  assert.match(((await p.json()) as { error: { message: string } }).error.message, /ValueError: python failed on purpose: abc/);
  const e = await s.invoke('hello-exec', 'fail');
  assert.equal(e.status, 500);
  assert.match(((await e.json()) as { error: { message: string } }).error.message, /exited with code 3:[\s\S]*exec failed on purpose/);
  const ok = await s.invoke('hello-node', { after: 'failure' });
  assert.equal(ok.status, 200, 'a thrown error does not break the instance');
  const { id } = (await (await s.invoke('hello-node', { fail: 'async' }, 'async')).json()) as { id: string };
  const rec = await s.result(id);
  assert.equal(rec.status, 'failed');
  assert.match((rec.error as { message: string }).message, /failed on purpose: async/);
});

test('versions: NAME is the newest, NAME@1 the old one', async () => {
  await s.deploy('versioned', { 'index.mjs': 'export const handler = () => "v1";' }, { runtime: 'node' });
  const d2 = await s.deploy('versioned', { 'index.mjs': 'export const handler = () => "v2";' }, { runtime: 'node' });
  assert.equal(d2.version, 2);
  assert.equal(await (await s.invoke('versioned', null)).json(), 'v2');
  const old = await s.invoke('versioned@1', null);
  assert.equal(await old.json(), 'v1');
  assert.equal(old.headers.get('x-jiffy-function-version'), '1');
  assert.equal((await s.invoke('versioned@3', null)).status, 404);
  const info = (await (await fetch(`${s.url}/v1/functions/versioned`)).json()) as { latest: number; versions: Array<{ version: number }> };
  assert.deepEqual(info.versions.map((v) => v.version), [1, 2]);
  const del = await fetch(`${s.url}/v1/functions/versioned`, { method: 'DELETE' });
  assert.equal(del.status, 200);
  assert.equal((await s.invoke('versioned', null)).status, 404);
});

test('a deploy whose handler file is missing is a 400 naming the handler', async () => {
  await assert.rejects(s.deploy('nohandler', { 'other.mjs': 'export const x = 1;' }, { runtime: 'node' }), /400.*handler/);
});

const PROBE_FN = `
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
export async function handler(event) {
  if (event && event.child) { execSync('echo from-a-child-on-fd-1; echo "{\\"type\\":\\"result\\"}"', { stdio: 'inherit' }); return 'child ran'; }
  if (event && event.spam) { console.log('x'.repeat(event.spam)); return 'spammed'; }
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const field = (k) => status.split('\\n').find((l) => l.startsWith(k + ':')).split(/\\s+/)[1];
  return { foo: process.env.FOO, capEff: field('CapEff'), noNewPrivs: field('NoNewPrivs'), uid: process.getuid(), ifaces: Object.keys(os.networkInterfaces()).sort() };
}`;

test('functions run unprivileged, without network, with their env; big logs are truncated with a note', async () => {
  await s.deploy('probe', { 'index.mjs': PROBE_FN }, { runtime: 'node', env: { FOO: 'bar baz' }, memoryMb: 128 });
  const r = await s.invoke('probe', {});
  assert.equal(r.status, 200);
  const j = (await r.json()) as { foo: string; capEff: string; noNewPrivs: string; uid: number; ifaces: string[] };
  assert.equal(j.foo, 'bar baz');
  assert.equal(j.uid, 65534);
  assert.equal(j.capEff, '0000000000000000', 'no capabilities');
  assert.equal(j.noNewPrivs, '1');
  assert.ok(j.ifaces.every((i) => i === 'lo'), `only loopback in the function's network namespace, got ${j.ifaces.join(',')}`);
  const { id } = (await (await s.invoke('probe', { spam: 200_000 }, 'async')).json()) as { id: string };
  const rec = await s.result(id);
  assert.equal(rec.result, 'spammed');
  const logs = String(rec.logs);
  assert.ok(logs.length < 70_000, `logs are bounded (got ${logs.length} chars)`);
  assert.match(logs, /\[jiffy: logs truncated, 200001 bytes written\]/);
  // A child process writing straight to fd 1 (even protocol-looking JSON) cannot corrupt replies.
  const c = await s.invoke('probe', { child: true });
  assert.equal(c.status, 200);
  assert.equal(await c.json(), 'child ran');
  const again = await s.invoke('probe', {});
  assert.equal(again.status, 200);
  assert.equal(((await again.json()) as { foo: string }).foo, 'bar baz');
});
