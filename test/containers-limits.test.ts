/**
 * Limits and logs: a memory hog under `-m 16m` is OOM-killed and inspect says so (with peak
 * memory); the log rotates by size and says how many lines rotation dropped; exec runs inside the
 * container's namespaces and cgroup with its env, and as another user.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { droppedMarker, readLogs } from '../src/containers/logs.js';
import { collector, fixture, type Fixture } from './containers-support.js';

describe('containers: limits, logs, exec', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture('ctr-limits');
  });
  after(async () => f.cleanup());

  it('marks an OOM-killed container in its record', async () => {
    const { id, exit } = await f.mgr.run({ image: 'busybox', memoryBytes: 16 * 1024 * 1024, cmd: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'] });
    const info = await exit;
    assert.equal(info.oomKilled, true);
    assert.equal(info.exitCode, 137);
    const rec = await f.mgr.get(id);
    assert.equal(rec.state.oomKilled, true);
    assert.ok(rec.state.peakMemoryBytes! > 8 * 1024 * 1024, `peak memory recorded (${rec.state.peakMemoryBytes})`);
    assert.ok(rec.state.peakMemoryBytes! <= 16 * 1024 * 1024, 'peak stays within the limit');
    const ok = await f.mgr.run({ image: 'busybox', memoryBytes: 16 * 1024 * 1024, cmd: ['true'], autoRemove: true });
    assert.equal((await ok.exit).oomKilled, false);
  });

  it('applies the pids limit and bind mounts (-v, read-only)', async () => {
    const pids = collector();
    const r = await f.mgr.run({
      image: 'busybox', pidsLimit: 4, autoRemove: true, onOutput: pids.onOutput,
      cmd: ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait'],
    });
    await r.exit;
    assert.match(pids.text(), /can't fork|Resource temporarily unavailable/);
    const host = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-bind-'));
    try {
      await fs.writeFile(path.join(host, 'in.txt'), 'from host\n');
      const out = collector();
      const b = await f.mgr.run({
        image: 'busybox', autoRemove: true, onOutput: out.onOutput,
        binds: [{ source: host, destination: '/mnt/ro', readonly: true }, { source: host, destination: '/mnt/rw', readonly: false }],
        cmd: ['sh', '-c', 'cat /mnt/ro/in.txt; touch /mnt/ro/x 2>/dev/null || echo ro-refused; echo written > /mnt/rw/out.txt'],
      });
      assert.equal((await b.exit).exitCode, 0);
      assert.equal(out.text(), 'from host\nro-refused\n');
      assert.equal(await fs.readFile(path.join(host, 'out.txt'), 'utf8'), 'written\n');
    } finally {
      await fs.rm(host, { recursive: true, force: true });
    }
  });

  it('rotates the log by size and reports dropped lines', async () => {
    const { id, exit } = await f.mgr.run({
      image: 'busybox', logMaxBytes: 4096, detach: true,
      cmd: ['sh', '-c', 'i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done'],
    });
    assert.equal((await exit).exitCode, 0);
    const dir = await f.mgr.logDir(id);
    const lines = await readLogs(dir);
    const m = /^\[jiffy: (\d+) earlier lines dropped by log rotation\]\n$/.exec(lines[0].log);
    assert.ok(m, `first line is the rotation marker, got ${JSON.stringify(lines[0].log)}`);
    const dropped = Number(m[1]);
    assert.equal(lines[0].log, `${droppedMarker(dropped)}\n`);
    const kept = lines.slice(1).map((l) => l.log.trim());
    assert.equal(dropped + kept.length, 400, 'every line is either kept or counted');
    assert.equal(kept[0], `line-${dropped}`, 'kept lines follow the dropped ones without a gap');
    assert.equal(kept.at(-1), 'line-399');
    const files = await fs.readdir(dir);
    assert.ok(files.includes('container.log.1'));
    const tail = await readLogs(dir, { tail: 3 });
    assert.deepEqual(tail.map((l) => l.log), ['line-397\n', 'line-398\n', 'line-399\n']);
  });

  it('execs in the running container with its env, cwd, cgroup and a chosen user', async () => {
    const { id } = await f.mgr.run({ image: 'busybox', detach: true, env: ['FROM_RUN=1'], workdir: '/tmp', memoryBytes: 64 * 1024 * 1024, cmd: ['sleep', '1000'] });
    const r = await f.mgr.exec(id, ['sh', '-c', 'echo $FROM_RUN $EXTRA; pwd; id -u; hostname; cat /proc/1/cmdline | tr "\\0" " "'], { stdio: 'pipe', env: ['EXTRA=2'] });
    assert.equal(r.exitCode, 0, r.stderr.toString());
    assert.deepEqual(r.stdout.toString().trim().split('\n'), ['1 2', '/tmp', '0', 'jiffy', 'sleep 1000']);
    const nobody = await f.mgr.exec(id, ['id', '-u'], { stdio: 'pipe', user: 'nobody' });
    assert.equal(nobody.stdout.toString(), '65534\n');
    const code = await f.mgr.exec(id, ['sh', '-c', 'exit 5'], { stdio: 'pipe' });
    assert.equal(code.exitCode, 5);
    const top = await f.mgr.top(id);
    assert.ok(top.some((p) => p.cmd === 'sleep 1000'));
    await f.mgr.remove(id, { force: true });
    await assert.rejects(f.mgr.exec(id, ['true']), (e: { code?: string }) => e.code === 'not_found');
  });
});
