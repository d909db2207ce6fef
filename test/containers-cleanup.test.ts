/**
 * A container whose cleanup fails after it exited must still be recorded exited (with an `error`
 * saying what failed), so wait() returns and rm (which retries the cleanup) works — never a
 * record left "running" that every wait/remove would poll forever.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMountPoint } from '../src/snapshots/mount.js';
import { fixture, until, type Fixture } from './containers-support.js';

describe('containers: exit recorded even when cleanup fails', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture('cleanup');
  });
  after(async () => {
    await f.cleanup();
  });

  it('records the exit with an error when the rootfs unmount fails; wait returns and rm retries', async () => {
    const run = await f.mgr.run({ image: 'busybox:latest', cmd: ['sleep', '1000'] });
    const merged = (await f.mgr.snapshots.get(run.id)).merged;
    assert.equal(await isMountPoint(merged), true);
    // The unmount helper is the launcher binary; a non-executable one fails with EACCES, as when
    // the launcher is being rebuilt while a container exits.
    const broken = path.join(f.root, 'jiffy-launch-broken');
    await fs.writeFile(broken, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    const saved = process.env.JIFFY_LAUNCHER;
    process.env.JIFFY_LAUNCHER = broken;
    let info;
    try {
      await f.mgr.kill(run.id, 'SIGKILL');
      info = await f.mgr.wait(run.id);
      assert.deepEqual(await run.exit.then((i) => i.error), info.error, 'the in-process exit resolves too');
    } finally {
      if (saved === undefined) delete process.env.JIFFY_LAUNCHER;
      else process.env.JIFFY_LAUNCHER = saved;
    }
    assert.equal(info.signal, 'SIGKILL');
    assert.match(info.error ?? '', /rootfs unmount .*failed/);
    const rec = await f.mgr.get(run.id);
    assert.equal(rec.state.status, 'exited');
    assert.equal(rec.state.monitorPid, undefined);
    assert.equal(await isMountPoint(merged), true, 'the failed unmount left the rootfs mounted');
    await f.mgr.remove(run.id);
    assert.equal(await isMountPoint(merged), false);
    await assert.rejects(f.mgr.get(run.id), /no such container/);
  });

  it('reconciles a running record whose monitor is this process but whose exit nobody watches', async () => {
    const rec = await f.mgr.create({ image: 'busybox:latest', cmd: ['true'] });
    const dead = spawnSync('/bin/true').pid!; // a pid that no longer runs
    await until(async () => !(await fs.stat(`/proc/${dead}`).catch(() => undefined)), 'the helper process to be reaped');
    await f.mgr.records.update(rec.id, (r) => {
      r.state = { ...r.state, status: 'running', pid: dead, monitorPid: process.pid, startedAt: new Date().toISOString() };
    });
    const info = await f.mgr.wait(rec.id);
    assert.equal(info.exitCode, 255);
    assert.match(info.error ?? '', /no monitor was watching/);
    await f.mgr.remove(rec.id);
    await assert.rejects(f.mgr.get(rec.id), /no such container/);
  });
});
