/**
 * Sandboxes end to end on a real store, real overlay mounts and real containers: create, exec
 * (argv, stdin, env, cwd, exit codes), files in and out, snapshot and fork (a fork sees the
 * snapshot, not its parent's later changes, and costs a small directory), isolation between
 * sandboxes, TTL expiry (also across a manager restart), removal.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hasCode } from '../src/errors.js';
import { SandboxManager } from '../src/sandboxes/manager.js';
import { collect } from '../src/sandboxes/exec.js';
import { SANDBOX_MODES, diskUsage, sandboxFixture, until, type SandboxFixture } from './sandboxes-support.js';

for (const mode of SANDBOX_MODES) describe(`sandboxes: lifecycle (${mode})`, () => {
  let f: SandboxFixture;
  before(async () => {
    f = await sandboxFixture('life', mode);
  });
  after(async () => f?.cleanup());

  it('creates a running sandbox and runs commands in it', async () => {
    const [sb] = await f.sm.create({ ttlS: 120, env: ['GREETING=hi'] });
    assert.equal(sb.status, 'running');
    assert.equal(sb.network, false);
    assert.ok(Date.parse(sb.expiresAt) > Date.now());
    assert.deepEqual(await f.run(sb.id, ['echo', 'hello']), { out: 'hello\n', err: '', code: 0 });
    assert.deepEqual(await f.run(sb.id, 'echo $GREETING-$EXTRA; echo oops >&2; exit 7', { env: ['EXTRA=x'] }), { out: 'hi-x\n', err: 'oops\n', code: 7 });
    assert.equal((await f.run(sb.id, ['tr', 'a-z', 'A-Z'], { stdin: 'shout' })).out, 'SHOUT');
    await f.run(sb.id, 'mkdir -p /work/dir');
    assert.equal((await f.run(sb.id, ['pwd'], { cwd: '/work/dir' })).out, '/work/dir\n');
    assert.equal((await f.run(sb.id, 'hostname')).out, 'sandbox\n');
    // Network off: the sandbox has its own network namespace with loopback only.
    const ifaces = (await f.run(sb.id, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")).out.trim().split('\n');
    assert.deepEqual(ifaces, ['lo']);
    const got = await f.sm.get(sb.id.slice(0, 8));
    assert.equal(got.id, sb.id);
  });

  it('writes and reads files (parents created, mode kept, streams both ways)', async () => {
    const [sb] = await f.sm.create({ ttlS: 120 });
    assert.equal(await f.sm.writeFile(sb.id, '/app/bin/run.sh', '#!/bin/sh\necho ran $1\n', 0o755), 22);
    assert.equal((await f.run(sb.id, ['/app/bin/run.sh', 'ok'])).out, 'ran ok\n');
    assert.equal((await f.run(sb.id, 'stat -c %a /app/bin/run.sh')).out, '755\n');
    await f.run(sb.id, 'seq 1 20000 > /tmp/seq.txt');
    const back = await collect(await f.sm.readFile(sb.id, '/tmp/seq.txt'));
    assert.equal(back.toString().split('\n').length, 20001);
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const { Readable } = await import('node:stream');
    await f.sm.writeFile(sb.id, '/tmp/big.bin', Readable.from([big.subarray(0, 1_000_000), big.subarray(1_000_000)]));
    assert.equal((await f.run(sb.id, 'wc -c < /tmp/big.bin')).out.trim(), String(big.length));
    await assert.rejects(f.sm.readFile(sb.id, '/nope'), (e) => hasCode(e, 'not_found'));
    await assert.rejects(f.sm.readFile(sb.id, '/tmp'), (e) => hasCode(e, 'invalid_argument'));
    await assert.rejects(f.sm.writeFile(sb.id, '/tmp', 'x'), (e) => hasCode(e, 'invalid_argument'));
  });

  it('snapshots a sandbox and forks many: each fork sees the snapshot, not later changes, and costs a small dir', async () => {
    const [parent] = await f.sm.create({ ttlS: 120 });
    await f.run(parent.id, 'mkdir /data && echo one > /data/a && head -c 4194304 /dev/zero > /data/blob');
    const snap = await f.sm.snapshot(parent.id, { message: 'deps installed' });
    assert.match(snap.id, /^sha256:[0-9a-f]{64}$/);
    const img = await f.store.resolve(snap.ref);
    const last = img.config.history?.at(-1);
    assert.equal(last?.comment, 'deps installed');
    assert.ok(!last?.empty_layer);
    assert.equal((await f.sm.get(parent.id)).snapshots[0].ref, snap.ref);
    // Later changes of the parent must not reach the forks.
    await f.run(parent.id, 'echo two > /data/a && touch /data/later');
    const forks = await f.sm.create({ from: snap.ref, count: 4, ttlS: 120 });
    assert.equal(forks.length, 4);
    assert.equal(new Set(forks.map((s) => s.id)).size, 4);
    for (const fk of forks) {
      assert.equal(fk.from, snap.ref);
      assert.deepEqual(await f.run(fk.id, 'cat /data/a; ls /data'), { out: 'one\na\nblob\n', err: '', code: 0 });
    }
    // Forks are independent of each other too.
    await f.run(forks[0].id, 'echo mine > /data/a');
    assert.equal((await f.run(forks[1].id, 'cat /data/a')).out, 'one\n');
    // Cheap: a fresh fork's own state is its (empty) upper and work dirs, far below the 4 MiB blob it sees.
    for (const fk of forks.slice(1)) {
      const dir = f.containers.snapshots.dir(fk.id);
      const own = (await diskUsage(path.join(dir, 'upper'))) + (await diskUsage(path.join(dir, 'work')));
      assert.ok(own < 64 * 1024, `fork ${fk.id} uses ${own} bytes of its own`);
    }
    // …and all forks share one unpacked copy of the snapshot layer.
    const snaps = await Promise.all(forks.map((fk) => f.containers.snapshots.get(fk.id)));
    assert.equal(new Set(snaps.map((s) => s.lower.join(':'))).size, 1);
    assert.equal(snaps[0].lower.length, img.layers.length);
  });

  it('keeps sandboxes apart: no access to another sandbox\'s files or processes', async () => {
    const [a, b] = await f.sm.create({ count: 2, ttlS: 120 });
    await f.sm.writeFile(a.id, '/secret', 'only-a');
    await f.run(a.id, 'sleep 31337 >/dev/null 2>&1 &');
    assert.match((await f.run(a.id, 'ps')).out, /sleep 31337/, 'positive control: a sees its own process');
    assert.equal((await f.run(b.id, 'cat /secret')).code, 1);
    assert.doesNotMatch((await f.run(b.id, 'ps')).out, /31337/);
    const aPid = (await f.containers.get(a.id)).state.pid!;
    assert.notEqual((await f.run(b.id, `kill -9 ${aPid}`)).code, 0, 'b cannot signal a\'s host pid');
    assert.equal((await f.containers.get(a.id)).state.status, 'running');
    // Capabilities are the container default set: no CAP_SYS_ADMIN, so no mount.
    assert.notEqual((await f.run(b.id, 'mount -t tmpfs x /mnt')).code, 0);
  });

  it('removes a sandbox: container, mounts and record gone', async () => {
    const [sb] = await f.sm.create({ ttlS: 120 });
    const dir = f.containers.snapshots.dir(sb.id);
    await f.sm.remove(sb.id);
    await assert.rejects(f.sm.get(sb.id), (e) => hasCode(e, 'not_found'));
    await assert.rejects(f.containers.get(sb.id), (e) => hasCode(e, 'not_found'));
    await assert.rejects(fs.stat(dir), { code: 'ENOENT' });
    await assert.rejects(f.sm.exec(sb.id, { cmd: ['true'] }), (e) => hasCode(e, 'not_found'));
  });

  it('rejects bad create options with clear errors', async () => {
    await assert.rejects(f.sm.create({ image: 'no-such-image:1' }), (e) => hasCode(e, 'not_found') && /pull or build/.test((e as Error).message));
    await assert.rejects(f.sm.create({ from: 'no-such-snapshot:1' }), (e) => hasCode(e, 'not_found') && /snapshot/.test((e as Error).message));
    await assert.rejects(f.sm.create({ count: 0 }), (e) => hasCode(e, 'invalid_argument'));
    await assert.rejects(f.sm.create({ ttlS: 0 }), (e) => hasCode(e, 'invalid_argument'));
  });

  it('hands out ready sandboxes from a pool, and leaves no spares behind', async () => {
    const pooled = new SandboxManager({ ...f.managerOptions, reapIntervalMs: 0, pool: { size: 2 } });
    let spares: string[] = [];
    try {
      await pooled.warm({ memoryMb: 64 });
      spares = (await f.containers.list()).filter((c) => c.name.startsWith(`sbpool-${process.pid}-`)).map((c) => c.id);
      assert.equal(spares.length, 2);
      const [a] = await pooled.create({ memoryMb: 64, env: ['WHO=pooled'], ttlS: 60 });
      assert.ok(spares.includes(a.id), 'the sandbox is one of the ready containers');
      assert.equal((await f.run(a.id, 'echo $WHO')).out, 'pooled\n', 'the sandbox env applies to a pooled container');
      const [b] = await pooled.create({ memoryMb: 96, ttlS: 60 });
      assert.ok(!spares.includes(b.id), 'another configuration boots its own');
    } finally {
      await pooled.close();
    }
    const handedOut = new Set((await f.sm.list()).map((s) => s.id));
    const left = (await f.containers.list()).filter((c) => c.name.startsWith(`sbpool-${process.pid}-`) && !handedOut.has(c.id));
    assert.deepEqual(left.map((c) => c.name), [], 'close() removed the unused spares');
    // Spares of a dead owner are swept by the next manager.
    const dead = 4_000_000;
    const rec = await f.containers.run({ image: 'busybox:latest', name: `sbpool-${dead}-x`, cmd: ['sleep', '1000'], stdio: ['ignore', 'ignore', 'ignore'] });
    const next = new SandboxManager({ ...f.managerOptions, reapIntervalMs: 0 });
    await next.reap();
    await next.close();
    await assert.rejects(f.containers.get(rec.id), (e) => hasCode(e, 'not_found'));
  });

  it('reaps expired sandboxes, also ones created before a manager restart', async () => {
    // Created by a manager without a reaper (like a CLI call), with a short TTL…
    const [sb] = await f.sm.create({ ttlS: 1 });
    const [keep] = await f.sm.create({ ttlS: 120 });
    // …and removed by a later manager whose reaper reads the expiry from the record on disk.
    const later = new SandboxManager({ ...f.managerOptions, reapIntervalMs: 100 });
    try {
      await until(async () => !(await f.sm.list()).some((s) => s.id === sb.id), 'the expired sandbox to be reaped');
    } finally {
      await later.close();
    }
    await assert.rejects(f.containers.get(sb.id), (e) => hasCode(e, 'not_found'));
    assert.equal((await f.sm.get(keep.id)).status, 'running');
  });
});
