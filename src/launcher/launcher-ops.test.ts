/**
 * Binding-level tests of the other server ops: exec into a running container, pause/resume,
 * stats, overlay mounts (host namespace, one-shot CLI, and rootfsOverlay inside a container),
 * server death and leak-free close.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Readable } from 'node:stream';
import { hasCode } from '../errors.js';
import { Launcher, type ContainerHandle } from './launcher.js';
import { defaultSpec } from './oci-spec.js';
import { mountOverlay, umount } from './oneshot.js';
import { cgroupsMatching, eventually, freezerState, mountsUnder, processAlive, tempRootfs, uniqueId } from './test-support.js';

function collect(s: Readable | null): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s!.on('data', (c: Buffer) => chunks.push(c));
    s!.on('error', reject);
    s!.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** Pids whose parent is `ppid`. */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(e));
    } catch { /* exited meanwhile */ }
  }
  return out;
}

describe('Launcher ops', () => {
  let l: Launcher;
  let dir: string;
  let rootfs: string;
  const tag = uniqueId('ops');
  const spec = (args: string[]) => defaultSpec({ args, rootPath: rootfs, hostname: 'opsbox', memoryBytes: 64 << 20, pidsLimit: 64 });

  before(async () => {
    ({ dir, rootfs } = await tempRootfs('jiffy-launcher-ops'));
    l = await Launcher.start();
  });
  after(async () => {
    await l?.close();
    for (const m of mountsUnder(dir).reverse()) await umount(m, { detach: true }).catch(() => undefined);
    assert.deepEqual(cgroupsMatching(tag), [], 'cgroups left behind');
    assert.deepEqual(mountsUnder(dir), [], 'mounts left behind');
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('exec joins the running container: namespaces, root, cgroup; exit code comes back', async () => {
    const id = `${tag}-exec`;
    const init = await l.boot({ id, config: spec(['/bin/sh', '-c', 'echo ready > /tmp/mark; exec sleep 100']) });
    await eventually(() => existsSync(path.join(rootfs, 'tmp', 'mark')), 'container wrote its mark');
    const e = await l.exec(id, { args: ['/bin/sh', '-c', 'hostname; cat /tmp/mark; cat /proc/1/cmdline | tr "\\0" " "; echo; exit 7'], env: ['PATH=/bin'], cwd: '/tmp' });
    const out = collect(e.stdout);
    const st = await e.wait();
    assert.equal(st.exitCode, 7);
    assert.equal(await out, 'opsbox\nready\nsleep 100 \n');
    const asNobody = await l.exec(id, { args: ['/bin/sh', '-c', 'id -u; grep CapEff /proc/self/status'], user: { uid: 65534, gid: 65534 }, noNewPrivileges: true }, { stdin: 'null' });
    const nobodyOut = collect(asNobody.stdout);
    assert.equal((await asNobody.wait()).exitCode, 0);
    assert.equal(await nobodyOut, '65534\nCapEff:\t0000000000000000\n');
    const stats = await l.stats(id);
    assert.equal(stats.pids, 1, 'only the init is left after the exec exited');
    assert.ok(stats.memoryBytes > 0);
    await init.kill('SIGKILL');
    assert.equal((await init.wait()).signal, 'SIGKILL');
    await assert.rejects(l.exec(id, { args: ['/bin/true'] }), (err: Error) => hasCode(err, 'not_found'));
  });

  test('namespaces can be joined by path, and sysctls are written in the container', async () => {
    const id = `${tag}-nsa`;
    const a = await l.boot({ id, config: spec(['/bin/sleep', '100']) });
    const config = spec(['/bin/sh', '-c', 'readlink /proc/self/ns/net; cat /proc/sys/net/ipv4/ip_forward']);
    config.linux!.namespaces = config.linux!.namespaces!.map((n) => (n.type === 'network' ? { type: 'network', path: `/proc/${a.pid}/ns/net` } : n));
    config.linux!.sysctl = { 'net.ipv4.ip_forward': '1' };
    const b = await l.boot({ id: `${tag}-nsb`, config });
    const out = collect(b.stdout);
    assert.equal((await b.wait()).exitCode, 0);
    const [netns, forward] = (await out).trim().split('\n');
    assert.equal(netns, (await fs.readlink(`/proc/${a.pid}/ns/net`)));
    assert.notEqual(netns, await fs.readlink('/proc/self/ns/net'), 'the container shares the host netns');
    assert.equal(forward, '1');
    await a.kill('SIGKILL');
    await a.wait();
  });

  test('pause freezes the container and resume thaws it', async () => {
    const id = `${tag}-pause`;
    const h = await l.boot({ id, config: spec(['/bin/sh', '-c', 'while :; do echo tick; sleep 0.01; done']), stdout: 'null' });
    await l.pause(id);
    assert.equal(freezerState(id), 'FROZEN');
    await assert.rejects(l.exec(id, { args: ['/bin/true'] }), (err: Error) => hasCode(err, 'failed_precondition'));
    await l.resume(id);
    assert.equal(freezerState(id), 'THAWED');
    await h.kill('SIGKILL');
    await h.wait();
  });

  test('mountOverlay/umount in the host namespace, through the server and one-shot', async () => {
    const base = path.join(dir, 'ov');
    for (const d of ['l1', 'l2', 'up', 'wk', 'm1', 'm2', 'up2', 'wk2']) await fs.mkdir(path.join(base, d), { recursive: true });
    await fs.writeFile(path.join(base, 'l1', 'a'), 'from l1');
    await fs.writeFile(path.join(base, 'l2', 'a'), 'from l2');
    await fs.writeFile(path.join(base, 'l2', 'b'), 'only l2');
    const m1 = path.join(base, 'm1');
    await l.mountOverlay({ lower: ['l1', 'l2'], upper: 'up', work: 'wk', cwd: base, target: m1 });
    assert.equal(readFileSync(path.join(m1, 'a'), 'utf8'), 'from l1', 'the first lower layer wins');
    assert.equal(readFileSync(path.join(m1, 'b'), 'utf8'), 'only l2');
    await fs.writeFile(path.join(m1, 'c'), 'new');
    assert.equal(readFileSync(path.join(base, 'up', 'c'), 'utf8'), 'new', 'writes land in the upper dir');
    await l.umount(m1);
    const m2 = path.join(base, 'm2');
    await mountOverlay({ lower: [path.join(base, 'l2')], target: m2, readonly: true });
    assert.equal(readFileSync(path.join(m2, 'b'), 'utf8'), 'only l2');
    await assert.rejects(fs.writeFile(path.join(m2, 'x'), 'y'), /EROFS/);
    await umount(m2);
    assert.deepEqual(mountsUnder(base), []);
    await assert.rejects(l.umount(m2), (err: Error) => hasCode(err, 'invalid_argument'));
    await assert.rejects(mountOverlay({ lower: [path.join(base, 'nope')], target: m2 }), (err: Error) => hasCode(err, 'not_found'));
  });

  test('rootfsOverlay is mounted inside the container and dies with it', async () => {
    const base = path.join(dir, 'rov');
    for (const d of ['up', 'wk', 'merged']) await fs.mkdir(path.join(base, d), { recursive: true });
    const config = spec(['/bin/sh', '-c', 'echo written > /hello; ls /bin/busybox']);
    config.root.path = path.join(base, 'merged');
    const h = await l.boot({ id: `${tag}-rov`, config, rootfsOverlay: { lower: [rootfs], upper: path.join(base, 'up'), work: path.join(base, 'wk') } });
    const out = collect(h.stdout);
    assert.equal((await h.wait()).exitCode, 0);
    assert.equal(await out, '/bin/busybox\n');
    assert.equal(readFileSync(path.join(base, 'up', 'hello'), 'utf8'), 'written\n');
    assert.deepEqual(mountsUnder(base), [], 'the overlay was mounted in the host namespace');
  });

  test('close() kills running containers and removes their cgroups', async () => {
    const l2 = await Launcher.start();
    const id = `${tag}-close`;
    const h = await l2.boot({ id, config: spec(['/bin/sleep', '1000']) });
    assert.equal(cgroupsMatching(id).length > 0, true);
    const waited = h.wait();
    await l2.close();
    assert.equal((await waited).signal, 'SIGKILL');
    assert.equal(processAlive(h.pid), false);
    assert.deepEqual(cgroupsMatching(id), []);
    await assert.rejects(l2.boot({ id, config: spec(['/bin/true']) }), (err: Error) => hasCode(err, 'unavailable'));
  });

  test('an id can be booted again right after wait(); the old cgroups are still removed', async () => {
    const id = `${tag}-again`;
    for (let i = 0; i < 5; i++) {
      const h = await l.boot({ id, config: spec(['/bin/sh', '-c', `echo round ${i}`]) });
      const out = collect(h.stdout);
      assert.equal((await h.wait()).exitCode, 0);
      assert.equal(await out, `round ${i}\n`);
    }
    // Removal happens after wait() resolves (at the server's next idle moment): poll, hang guard only.
    await eventually(() => cgroupsMatching(id).length === 0, `cgroups of ${id} removed`);
    await eventually(() => cgroupsMatching(`.pool-${l.serverPid}-d`).length === 0, 'renamed-away cgroups removed');
  });

  test('close() right after many exits still removes every cgroup', async () => {
    const l2 = await Launcher.start();
    const ids = Array.from({ length: 8 }, (_, i) => `${tag}-burst${i}`);
    const hs = await Promise.all(ids.map((id) => l2.boot({ id, config: spec(['/bin/true']), stdin: 'null' })));
    for (const h of hs) assert.equal((await h.wait()).exitCode, 0);
    const helpers = childrenOf(l2.serverPid!); // the netns helper (no container is left running)
    assert.equal(helpers.length, 1, `expected only the netns helper under the server, got ${helpers}`);
    await l2.close();
    assert.equal(processAlive(helpers[0]), false, 'the netns helper outlived its server');
    assert.deepEqual(cgroupsMatching(`${tag}-burst`), []);
    assert.deepEqual(cgroupsMatching(`.pool-${l2.serverPid}-`), [], 'pooled or renamed cgroups left by the server');
  });

  test('every container gets its own fresh netns, also after the netns helper died', async () => {
    const l2 = await Launcher.start();
    // All stay alive until the end: a freed namespace's inode number may be reused by a later one.
    const live: { h: ContainerHandle; out: Promise<string> }[] = [];
    const boot = async (i: number) => {
      const h = await l2.boot({ id: `${tag}-net${i}`, config: spec(['/bin/sh', '-c', 'readlink /proc/self/ns/net; cat']) });
      live.push({ h, out: collect(h.stdout) });
    };
    try {
      for (let i = 0; i < 3; i++) await boot(i);
      const helpers = childrenOf(l2.serverPid!).filter((pid) => !live.some((c) => c.h.pid === pid));
      assert.equal(helpers.length, 1, `expected the netns helper under the server, got ${helpers}`);
      process.kill(helpers[0], 'SIGKILL');
      for (let i = 3; i < 10; i++) await boot(i); // beyond the pool: made inline now
      for (const c of live) c.h.stdin!.end();
      const seen = new Set<string>();
      for (const c of live) {
        assert.equal((await c.h.wait()).exitCode, 0);
        seen.add((await c.out).trim());
      }
      assert.equal(seen.size, 10, 'a network namespace was handed to two containers');
      assert.ok(!seen.has(await fs.readlink('/proc/self/ns/net')), 'a container ran in the host netns');
    } finally {
      await l2.close();
    }
  });

  test('stdin: writes complete within the credit window, and stall beyond it until the process reads', { timeout: 60_000 }, async () => {
    const id = `${tag}-window`;
    const go = path.join(rootfs, 'tmp', `go-${id}`);
    const script = `while [ ! -e /tmp/go-${id} ]; do sleep 0.02; done; wc -c`;
    const h = await l.boot({ id, config: spec(['/bin/sh', '-c', script]) });
    const out = collect(h.stdout);
    const write = (n: number) => {
      const s = { done: false, p: Promise.resolve() };
      s.p = new Promise<void>((resolve, reject) => h.stdin!.write(Buffer.alloc(n, 'a'), (e) => (e ? reject(e) : resolve())));
      void s.p.then(() => { s.done = true; });
      return s;
    };
    // 512 KiB is far more than the pipe holds, and the process is not reading: only the window lets it complete.
    await write(512 * 1024).p;
    const big = write(2 * 1024 * 1024);
    await l.stats(id); // one server round trip: every ack the server could send so far has arrived
    assert.equal(big.done, false, 'a write beyond the window completed while the process read nothing');
    await fs.writeFile(go, '');
    await big.p;
    h.stdin!.end();
    assert.equal((await h.wait()).exitCode, 0);
    assert.equal((await out).trim(), String(512 * 1024 + 2 * 1024 * 1024));
  });

  test('a dead server fails pending calls with unavailable and takes its containers along', async () => {
    const l3 = await Launcher.start();
    const h = await l3.boot({ id: `${tag}-death`, config: spec(['/bin/sleep', '1000']) });
    process.kill(l3.serverPid!, 'SIGKILL');
    await assert.rejects(h.wait(), (err: Error) => hasCode(err, 'unavailable') && /launcher server stopped/.test(err.message));
    await assert.rejects(l3.stats(`${tag}-death`), (err: Error) => hasCode(err, 'unavailable'));
    await eventually(() => !processAlive(h.pid), 'container died with its server (parent-death signal)');
    await l3.close();
    // The cgroups of a killed server are its only leftovers; remove them like a restart would.
    for (const cg of cgroupsMatching(`${tag}-death`)) {
      await eventually(() => {
        try {
          rmdirSync(cg);
          return true;
        } catch {
          return false;
        }
      }, `rmdir ${cg}`);
    }
  });
  test('a server start removes pool cgroups a dead server left, even in only some hierarchies', async () => {
    // A server SIGKILLed while creating a pool cgroup leaves it in some hierarchies only.
    const dead = (await import('node:child_process')).spawnSync('true').pid!;
    const name = `.pool-${dead}-${uniqueId("t").slice(-6)}`;
    const dir = '/sys/fs/cgroup/memory/jiffy';
    assert.ok(existsSync(dir), `${dir} missing: this test expects the cgroup v1 memory hierarchy (hybrid host)`);
    await fs.mkdir(path.join(dir, name));
    let l: Launcher | undefined;
    try {
      l = await Launcher.start();
      await eventually(() => !existsSync(path.join(dir, name)), `stale ${name} was not removed`);
    } finally {
      await l?.close();
      if (existsSync(path.join(dir, name))) rmdirSync(path.join(dir, name));
    }
  });
});
