/**
 * The sandbox HTTP API in-process through `app.request()` (no port): create, streamed exec
 * (NDJSON), files up and down, snapshot, fork with `from` + `count`, list, get, delete, and the
 * error statuses (400 bad body, 403 traversal, 404 unknown, 413 too large).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Hono } from 'hono';
import { sandboxApp } from '../src/sandboxes/server.js';
import { SANDBOX_MODES, sandboxFixture, type SandboxFixture } from './sandboxes-support.js';

interface ExecLine { stream?: 'stdout' | 'stderr'; data?: string; exit?: { code: number; signal: string | null; timedOut: boolean; truncated: boolean } }

const json = (body: unknown) => ({ method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

for (const mode of SANDBOX_MODES) describe(`sandboxes: HTTP API (${mode})`, () => {
  let f: SandboxFixture;
  let app: Hono;
  before(async () => {
    f = await sandboxFixture('http', mode);
    app = sandboxApp(f.sm, 1024 * 1024);
  });
  after(async () => f?.cleanup());

  async function exec(id: string, body: unknown): Promise<{ out: string; err: string; exit: ExecLine['exit']; lines: ExecLine[] }> {
    const res = await app.request(`/v1/sandboxes/${id}/exec`, json(body));
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as ExecLine);
    const text = (s: string) => Buffer.concat(lines.filter((l) => l.stream === s).map((l) => Buffer.from(l.data!, 'base64'))).toString();
    assert.ok(lines.at(-1)?.exit, 'the last line is the exit line');
    return { out: text('stdout'), err: text('stderr'), exit: lines.at(-1)!.exit, lines };
  }

  it('creates, execs with streamed output, moves files, snapshots, forks, lists and deletes', async () => {
    const res = await app.request('/v1/sandboxes', json({ memory: 128, ttl: 120, env: { MODE: 'test' } }));
    assert.equal(res.status, 201);
    const { sandboxes: [sb] } = (await res.json()) as { sandboxes: Array<{ id: string; memoryMb: number; network: boolean }> };
    assert.equal(sb.memoryMb, 128);
    assert.equal(sb.network, false);

    const r1 = await exec(sb.id, { cmd: ['sh', '-c', 'echo out-$MODE; echo err >&2; exit 3'] });
    assert.deepEqual([r1.out, r1.err, r1.exit], ['out-test\n', 'err\n', { code: 3, signal: null, timedOut: false, truncated: false }]);
    const r2 = await exec(sb.id, { cmd: 'cat; cat /proc/self/cgroup >/dev/null', stdinBase64: Buffer.from([0, 1, 2, 255]).toString('base64') });
    assert.deepEqual([...Buffer.from(r2.lines.filter((l) => l.stream === 'stdout').map((l) => l.data!).join(''), 'base64')], [0, 1, 2, 255]);
    assert.equal((await exec(sb.id, { cmd: 'cat', stdin: 'plain text' })).out, 'plain text');

    const put = await app.request(`/v1/sandboxes/${sb.id}/files/srv/app/main.sh?mode=0755`, { method: 'PUT', body: 'echo main ran' });
    assert.equal(put.status, 201);
    assert.deepEqual(await put.json(), { path: '/srv/app/main.sh', bytes: 13 });
    assert.equal((await exec(sb.id, { cmd: ['/bin/sh', '/srv/app/main.sh'] })).out, 'main ran\n');
    const get = await app.request(`/v1/sandboxes/${sb.id}/files/srv/app/main.sh`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('content-length'), '13');
    assert.equal(await get.text(), 'echo main ran');

    const snapRes = await app.request(`/v1/sandboxes/${sb.id}/snapshot`, json({ ref: 'myapp:ready', message: 'app installed' }));
    assert.equal(snapRes.status, 201);
    const snap = (await snapRes.json()) as { ref: string; id: string };
    assert.equal(snap.ref, 'myapp:ready');
    assert.equal((await f.store.resolve('myapp:ready')).config.history?.at(-1)?.comment, 'app installed');
    await app.request(`/v1/sandboxes/${sb.id}/files/srv/app/main.sh`, { method: 'PUT', body: 'echo changed later' });

    const forkRes = await app.request('/v1/sandboxes', json({ from: 'myapp:ready', count: 3, ttl: 60 }));
    assert.equal(forkRes.status, 201);
    const forks = ((await forkRes.json()) as { sandboxes: Array<{ id: string; from: string }> }).sandboxes;
    assert.equal(forks.length, 3);
    const outs = await Promise.all(forks.map((fk) => exec(fk.id, { cmd: ['sh', '/srv/app/main.sh'] })));
    assert.deepEqual(outs.map((o) => o.out), ['main ran\n', 'main ran\n', 'main ran\n']);

    const list = (await (await app.request('/v1/sandboxes')).json()) as { sandboxes: Array<{ id: string }> };
    assert.deepEqual(new Set(list.sandboxes.map((s) => s.id)), new Set([sb.id, ...forks.map((x) => x.id)]));
    const one = (await (await app.request(`/v1/sandboxes/${forks[0].id}`)).json()) as { from: string; status: string };
    assert.deepEqual([one.from, one.status], ['myapp:ready', 'running']);

    for (const id of [sb.id, ...forks.map((x) => x.id)]) assert.equal((await app.request(`/v1/sandboxes/${id}`, { method: 'DELETE' })).status, 200);
    assert.deepEqual(await (await app.request('/v1/sandboxes')).json(), { sandboxes: [] });
  });

  it('streams a bounded exec and reports timeout and truncation in the exit line', async () => {
    const [sb] = await f.sm.create({ ttlS: 60 });
    const flood = await exec(sb.id, { cmd: ['yes'], maxOutputBytes: 10_000 });
    assert.equal(flood.out.length, 10_000);
    assert.deepEqual(flood.exit, { code: 137, signal: 'SIGKILL', timedOut: false, truncated: true });
    const slow = await exec(sb.id, { cmd: 'echo started; sleep 600', timeout: 0.5 });
    assert.equal(slow.out, 'started\n');
    assert.equal(slow.exit?.timedOut, true);
  });

  it('maps errors to statuses with clear messages', async () => {
    const [sb] = await f.sm.create({ ttlS: 60 });
    const err = async (res: Response, status: number, code: string) => {
      assert.equal(res.status, status);
      const b = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(b.error.code, code);
      assert.ok(b.error.message.length > 10);
      return b.error.message;
    };
    assert.match(await err(await app.request('/v1/sandboxes', json({ memory: 'lots' })), 400, 'invalid_argument'), /memory/);
    assert.match(await err(await app.request('/v1/sandboxes', json({ bogus: 1 })), 400, 'invalid_argument'), /bogus|unrecognized/i);
    await err(await app.request('/v1/sandboxes', { method: 'POST', body: '{not json' }), 400, 'invalid_argument');
    await err(await app.request('/v1/sandboxes', json({ image: 'busybox', from: 'x' })), 400, 'invalid_argument');
    await err(await app.request('/v1/sandboxes', json({ from: 'never-snapshotted:1' })), 404, 'not_found');
    await err(await app.request(`/v1/sandboxes/${sb.id}/exec`, json({ cmd: [] })), 400, 'invalid_argument');
    await err(await app.request('/v1/sandboxes/zzzzzzzzzzzz/exec', json({ cmd: ['true'] })), 404, 'not_found');
    await err(await app.request('/v1/sandboxes/zzzzzzzzzzzz'), 404, 'not_found');
    await err(await app.request(`/v1/sandboxes/${sb.id}/files/..%2F..%2Fetc%2Fpasswd`), 403, 'permission_denied');
    await err(await app.request(`/v1/sandboxes/${sb.id}/files/tmp%2F..%2F..%2Fx`, { method: 'PUT', body: 'x' }), 403, 'permission_denied');
    await err(await app.request(`/v1/sandboxes/${sb.id}/files/nope`), 404, 'not_found');
    await err(await app.request(`/v1/sandboxes/${sb.id}/files/tmp/x?mode=rwx`, { method: 'PUT', body: 'x' }), 400, 'invalid_argument');
    // Too large: refused by length up front, and by counting for a chunked body; the old file stays.
    await app.request(`/v1/sandboxes/${sb.id}/files/tmp/keep`, { method: 'PUT', body: 'old' });
    await err(await app.request(`/v1/sandboxes/${sb.id}/files/tmp/keep`, { method: 'PUT', body: Buffer.alloc(2 * 1024 * 1024) }), 413, 'payload_too_large');
    const chunked = new ReadableStream({ start(c) { for (let i = 0; i < 3; i++) c.enqueue(new Uint8Array(512 * 1024)); c.close(); } });
    await err(await app.request(`/v1/sandboxes/${sb.id}/files/tmp/keep`, { method: 'PUT', body: chunked, duplex: 'half' } as RequestInit), 413, 'payload_too_large');
    assert.equal(await (await app.request(`/v1/sandboxes/${sb.id}/files/tmp/keep`)).text(), 'old');
    assert.equal((await f.run(sb.id, 'ls -a /tmp | grep -c jiffy-upload')).out.trim(), '0', 'no temp upload left behind');
  });
});
