/**
 * What is particular to launcher mode (the other sandbox suites run in both modes): an exec gets
 * exactly the sandbox init's security settings, never the launcher's; the service factory that
 * `jiffy sandbox serve` and `jiffy up` use leaves no process, mount or cgroup behind on close; and
 * sandboxes die with their server — a launcher that dies, or a server process killed outright —
 * after which they are recorded exited and their mounts and cgroups are gone.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureRuntimeImage } from '../src/build/runtime-images.js';
import { cgroupsMatching } from '../src/containers/cgroup.js';
import { ContainerManager } from '../src/containers/manager.js';
import { hasCode } from '../src/errors.js';
import { ImageStore } from '../src/images/store.js';
import { SandboxManager } from '../src/sandboxes/manager.js';
import { createSandboxService } from '../src/sandboxes/service.js';
import { mountsUnder, umount } from '../src/snapshots/mount.js';
import { sandboxFixture, until, type SandboxFixture } from './sandboxes-support.js';

const alive = (pid: number) => fs.readFile(`/proc/${pid}/stat`, 'utf8').then((s) => !/\) [ZX] /.test(s), () => false);
const status = (s: string, key: string) => new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(s)?.[1];

describe('sandboxes: launcher mode', () => {
  let f: SandboxFixture;
  before(async () => {
    f = await sandboxFixture('lmode', 'launcher');
  });
  after(async () => f?.cleanup());

  it('gives an exec the init\'s user, capabilities and no_new_privs, not the launcher\'s', async () => {
    const [sb] = await f.sm.create({ ttlS: 60 });
    const mine = (await f.run(sb.id, 'cat /proc/self/status')).out;
    const init = (await f.run(sb.id, 'cat /proc/1/status')).out;
    const host = await fs.readFile('/proc/self/status', 'utf8');
    for (const k of ['CapEff', 'CapPrm', 'CapBnd', 'NoNewPrivs', 'Uid', 'Gid']) assert.equal(status(mine, k), status(init, k), k);
    assert.notEqual(status(mine, 'CapBnd'), status(host, 'CapBnd'), 'the exec must not keep the host\'s full bounding set');
    // The exec is in the sandbox's cgroup, so its limits apply to it.
    assert.match((await f.run(sb.id, 'cat /proc/self/cgroup')).out, new RegExp(`jiffy/${sb.id}`));
  });

  it('runs execs issued while a snapshot freezes the sandbox (after the thaw, not refused)', async () => {
    const [sb] = await f.sm.create({ ttlS: 60 });
    await f.run(sb.id, 'head -c 4194304 /dev/zero > /tmp/blob');
    const snap = f.sm.snapshot(sb.id, { ref: 'during-exec:1' });
    const execs = Promise.all([1, 2, 3].map((i) => f.run(sb.id, `echo ${i}`)));
    await snap;
    assert.deepEqual((await execs).map((r) => r.out), ['1\n', '2\n', '3\n']);
  });

  it('records the sandboxes exited when the launcher dies, and cleans their mounts and cgroups', async () => {
    const other = await sandboxFixture('ldeath', 'launcher');
    try {
      const [a, b] = await other.sm.create({ count: 2, ttlS: 60 });
      const pids = await Promise.all([a, b].map(async (s) => (await other.containers.get(s.id)).state.pid!));
      process.kill(other.launcher!.serverPid!, 'SIGKILL');
      for (const id of [a.id, b.id]) await until(async () => (await other.sm.get(id)).status === 'exited', `sandbox ${id} recorded exited`);
      for (const pid of pids) assert.equal(await alive(pid), false, 'the sandbox init died with the launcher');
      await assert.rejects(other.sm.exec(a.id, { cmd: ['true'] }), (e) => hasCode(e, 'failed_precondition'));
      assert.deepEqual((await mountsUnder(other.root)).filter((m) => m.includes(a.id) || m.includes(b.id)), []);
      assert.deepEqual([...(await cgroupsMatching(a.id)), ...(await cgroupsMatching(b.id))], []);
      // Still snapshot-able: the upper dir outlives the process.
      await other.sm.snapshot(a.id, { ref: 'after-death:1' });
    } finally {
      await other.cleanup();
    }
  });
});

describe('sandboxes: createSandboxService and server restarts', () => {
  let root: string;
  let store: ImageStore;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-sb-svc-'));
    store = await ImageStore.open(root);
    await ensureRuntimeImage(store, 'busybox');
  });
  after(async () => {
    const left = await mountsUnder(root);
    for (const m of left.reverse()) await umount(m, { detach: true }).catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no mounts left under the test root');
  });

  it('serves the routes; close() leaves no process, mount or cgroup of its sandboxes', async () => {
    const svc = await createSandboxService({ store, pool: { size: 1 } });
    let ids: string[] = [];
    try {
      const res = await svc.routes.request('/v1/sandboxes', { method: 'POST', body: JSON.stringify({ count: 2, ttl: 60 }), headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 201);
      ids = ((await res.json()) as { sandboxes: Array<{ id: string }> }).sandboxes.map((s) => s.id);
      const out = await svc.routes.request(`/v1/sandboxes/${ids[0]}/exec`, { method: 'POST', body: JSON.stringify({ cmd: 'echo hi' }), headers: { 'content-type': 'application/json' } });
      assert.match(await out.text(), /"data":"aGkK"/);
    } finally {
      await svc.close();
    }
    const containers = new ContainerManager({ store, warm: false });
    const all = await containers.records.list();
    assert.ok(all.length >= 2);
    for (const rec of all) {
      assert.notEqual(rec.state.status, 'running', `${rec.name} still running after close`);
      assert.deepEqual(await cgroupsMatching(rec.id), [], `cgroup of ${rec.name} left`);
    }
    assert.deepEqual(await mountsUnder(root), []);
    const sm = new SandboxManager({ containers, store, reapIntervalMs: 0 });
    for (const id of ids) {
      assert.equal((await sm.get(id)).status, 'exited');
      await sm.remove(id);
    }
    for (const rec of await containers.records.list()) await containers.remove(rec.id, { force: true });
  });

  it('a server process killed outright takes its sandboxes with it; the next manager sees them exited', async () => {
    const service = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'sandboxes', 'service.js');
    const images = path.join(path.dirname(service), '..', 'images', 'store.js');
    const script = `
      const { createSandboxService } = await import(${JSON.stringify(service)});
      const { ImageStore } = await import(${JSON.stringify(images)});
      const svc = await createSandboxService({ store: await ImageStore.open(${JSON.stringify(root)}), pool: { size: 0 } });
      const [sb] = await svc.sandboxes.create({ ttlS: 60 });
      // Killed when idle: no warm-mount refill in flight (a crash mid-mount is the warm pool's sweep's business).
      await svc.sandboxes.containers.prewarm('busybox:latest');
      console.log(sb.id);
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const id = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (c: Buffer) => resolve(c.toString().trim()));
      child.once('exit', (code) => reject(new Error(`the server process exited early (${code})`)));
    });
    const containers = new ContainerManager({ store, warm: false });
    const pid = (await containers.records.load(id)).state.pid!;
    assert.equal(await alive(pid), true, 'positive control: the sandbox runs');
    child.kill('SIGKILL');
    await until(async () => !(await alive(pid)), 'the sandbox init to die with its server');
    const sm = new SandboxManager({ containers, store, reapIntervalMs: 0 });
    assert.equal((await sm.get(id)).status, 'exited');
    await containers.list(); // sweeps the dead server's warm rootfs spares
    await until(async () => (await cgroupsMatching(id)).length === 0, 'the launcher to remove the cgroup');
    assert.deepEqual((await mountsUnder(root)).filter((m) => m.includes(id)), []);
    await sm.remove(id);
    for (const rec of await containers.records.list()) await containers.remove(rec.id, { force: true });
  });
});
