/**
 * Container lifecycle against the real kernel: run, exit codes, stop/kill/rm, names, a restart of
 * the jiffy process in between (a new ContainerManager on the same root), reconcile after the
 * container's process dies behind our back, and a leak check (mounts, cgroups) after many runs.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ContainerManager } from '../src/containers/manager.js';
import { cgroupsMatching } from '../src/containers/cgroup.js';
import { readLogs } from '../src/containers/logs.js';
import { UNWATCHED_EXIT_CODE } from '../src/containers/reconcile.js';
import { mountsUnder } from '../src/snapshots/mount.js';
import { collector, fixture, until, type Fixture } from './containers-support.js';

describe('containers: lifecycle', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture('ctr-life');
  });
  after(async () => f.cleanup());

  it('passes the exit code through and keeps the output in the log', async () => {
    const out = collector();
    const { id, exit } = await f.mgr.run({ image: 'busybox', cmd: ['sh', '-c', 'echo hello; echo oops >&2; exit 3'], onOutput: out.onOutput });
    const info = await exit;
    assert.equal(info.exitCode, 3);
    assert.equal(info.oomKilled, false);
    assert.match(out.text(), /hello/);
    const rec = await f.mgr.get(id);
    assert.equal(rec.state.status, 'exited');
    assert.equal(rec.state.exitCode, 3);
    const lines = await readLogs(await f.mgr.logDir(id));
    assert.deepEqual(lines.map((l) => [l.s, l.log]), [['stdout', 'hello\n'], ['stderr', 'oops\n']]);
    await f.mgr.remove(id);
    await assert.rejects(f.mgr.get(id), (e: { code?: string }) => e.code === 'not_found');
  });

  it('honours the image config and -u/-w/-e', async () => {
    const out = collector();
    const { exit } = await f.mgr.run({
      image: 'busybox', user: 'nobody', workdir: '/tmp', env: ['GREETING=hi'], autoRemove: true,
      cmd: ['sh', '-c', 'id -u; id -g; pwd; echo $GREETING; echo $PATH'], onOutput: out.onOutput,
    });
    assert.equal((await exit).exitCode, 0);
    const [uid, gid, cwd, greeting, p] = out.text().trim().split('\n');
    assert.deepEqual([uid, gid, cwd, greeting], ['65534', '65534', '/tmp', 'hi']);
    assert.match(p, /\/bin/);
    await assert.rejects(f.mgr.run({ image: 'busybox', user: 'nosuchuser', cmd: ['true'] }), /unable to find user nosuchuser/);
  });

  it('keeps names unique', async () => {
    const a = await f.mgr.create({ image: 'busybox', name: 'uniq-name', cmd: ['true'] });
    await assert.rejects(f.mgr.create({ image: 'busybox', name: 'uniq-name', cmd: ['true'] }), (e: { code?: string }) => e.code === 'already_exists');
    assert.equal((await f.mgr.get('uniq-name')).id, a.id);
    await f.mgr.remove('uniq-name');
    const b = await f.mgr.create({ image: 'busybox', name: 'uniq-name', cmd: ['true'] });
    await f.mgr.remove(b.id);
  });

  it('stops (TERM then KILL), kills, and refuses rm of a running container without -f', async () => {
    const { id } = await f.mgr.run({ image: 'busybox', detach: true, cmd: ['sleep', '1000'] });
    assert.equal((await f.mgr.get(id)).state.status, 'running');
    await assert.rejects(f.mgr.remove(id), (e: { code?: string }) => e.code === 'failed_precondition');
    // sleep as pid 1 ignores SIGTERM, so stop must fall back to SIGKILL after the grace period.
    const stopped = await f.mgr.stop(id, { timeoutSec: 1 });
    assert.equal(stopped.state.status, 'exited');
    assert.equal(stopped.state.signal, 'SIGKILL');
    const trap = await f.mgr.run({ image: 'busybox', detach: true, cmd: ['sh', '-c', 'trap "exit 7" TERM; while true; do sleep 0.05; done'] });
    await f.mgr.kill(trap.id, 'TERM');
    assert.equal((await trap.exit).exitCode, 7);
    await f.mgr.remove(id);
    await f.mgr.remove(trap.id);
  });

  it('survives a restart of the jiffy process and reconciles a container that died unwatched', async () => {
    const { id } = await f.mgr.run({ image: 'busybox', detach: true, name: 'survivor', cmd: ['sleep', '1000'] });
    const again = new ContainerManager({ store: f.store, warm: false });
    const seen = await again.get('survivor');
    assert.equal(seen.state.status, 'running');
    assert.ok((await again.list({ all: false })).some((r) => r.id === id));
    // Kill the container's process behind the manager's back: the monitor records the exit.
    process.kill(seen.state.pid!, 'SIGKILL');
    const rec = await until(async () => {
      const r = await again.get(id);
      return r.state.status === 'exited' && r;
    }, 'the container to be marked exited');
    assert.equal(rec.state.signal, 'SIGKILL');
    assert.deepEqual(await mountsUnder(f.mgr.records.path(id)), [], 'rootfs unmounted after exit');

    // Now kill both the monitor and the container: reconcile on load marks it exited.
    const r2 = await again.start(id);
    assert.equal(r2.state.status, 'running');
    process.kill(r2.state.monitorPid!, 'SIGKILL');
    process.kill(r2.state.pid!, 'SIGKILL');
    const third = new ContainerManager({ store: f.store, warm: false });
    const gone = await until(async () => {
      const r = await third.get(id);
      return r.state.status === 'exited' && r;
    }, 'reconcile to mark the orphan exited');
    assert.equal(gone.state.exitCode, UNWATCHED_EXIT_CODE);
    assert.deepEqual(await cgroupsMatching(id), []);
    assert.deepEqual(await mountsUnder(f.mgr.records.path(id)), []);
    const ps = await third.list({ all: true });
    assert.ok(ps.some((r) => r.id === id && r.state.status === 'exited'), 'ps -a still lists it');
    await third.remove(id);
  });

  it('creates a missing working directory in the container\'s upper dir, never through a symlink to the host', async () => {
    const out = collector();
    const { id, exit } = await f.mgr.run({ image: 'busybox', workdir: '/srv/app/data', user: 'nobody', cmd: ['sh', '-c', 'pwd; stat -c %U:%a .'], onOutput: out.onOutput });
    assert.equal((await exit).exitCode, 0, out.text());
    assert.equal(out.text(), '/srv/app/data\nroot:755\n');
    const upper = (await f.mgr.snapshots.get(id)).upper!;
    assert.ok((await fs.stat(path.join(upper, 'srv/app/data'))).isDirectory(), 'created in the upper dir');
    await f.mgr.remove(id);
    // An image whose /escape is a symlink to a host directory: the workdir lands in the rootfs.
    const outside = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-workdir-outside-'));
    try {
      const maker = await f.mgr.run({ image: 'busybox', cmd: ['ln', '-s', outside, '/escape'] });
      assert.equal((await maker.exit).exitCode, 0);
      await f.mgr.commit(maker.id, { ref: 'workdir-escape:1' });
      await f.mgr.remove(maker.id);
      const r = await f.mgr.run({ image: 'workdir-escape:1', workdir: '/escape/w', cmd: ['pwd'], autoRemove: true });
      assert.equal((await r.exit).exitCode, 0);
      assert.deepEqual(await fs.readdir(outside), [], 'nothing created on the host');
    } finally {
      await fs.rm(outside, { recursive: true, force: true });
    }
    await assert.rejects(f.mgr.create({ image: 'busybox', readonlyRoot: true, workdir: '/nope', cmd: ['true'] }), /does not exist in the image and the rootfs is read-only/);
  });

  it('leaves no mounts or cgroups behind after many runs', async () => {
    const before = (await mountsUnder(f.root)).length;
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const { id, exit } = await f.mgr.run({ image: 'busybox', cmd: ['sh', '-c', `echo ${i} > /f`], autoRemove: i % 2 === 0 });
      assert.equal((await exit).exitCode, 0);
      ids.push(id);
    }
    const roOut = collector();
    const ro = await f.mgr.run({ image: 'busybox', readonlyRoot: true, cmd: ['sh', '-c', 'touch /x'], onOutput: roOut.onOutput });
    assert.notEqual((await ro.exit).exitCode, 0, 'a read-only rootfs refuses writes');
    assert.match(roOut.text(), /Read-only file system/);
    ids.push(ro.id);
    for (const id of ids.filter((_, i) => i % 2 === 1 || i === ids.length - 1)) await f.mgr.remove(id);
    assert.equal((await mountsUnder(f.root)).length, before);
    for (const id of ids) assert.deepEqual(await cgroupsMatching(id), []);
    assert.deepEqual(await f.mgr.list(), []);
  });
});
