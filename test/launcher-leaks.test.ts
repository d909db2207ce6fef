/**
 * Launcher conformance: many boots leave nothing behind — no mounts, no cgroups, no processes,
 * no network namespaces (nsfs mounts) — while the runtime runs and after it is closed.
 * The fork-server (binding) does 200 boots; CLI runtimes 25, since each boot is a process exec.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { cgroupsMatching, ConformanceEnv, cleanupGraceMs, eventuallyNone, mountsMatching, processesWithEnv } from './support/conformance.js';
import { openRuntime, selectedRuntimes, type ConformanceRuntime } from './support/oci-runtimes.js';

/** nsfs mounts (pinned namespaces) whose line mentions "jiffy". */
function jiffyNsfsMounts(): Set<string> {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  return new Set(lines.filter((l) => l.includes(' - nsfs ') && l.includes('jiffy')).map((l) => l.split(' ')[4]));
}

/** Pids of every process descended from `root` (walks /proc/<pid>/stat ppid links). */
function descendantsOf(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone while we looked
    }
  }
  const isDesc = (p: number): boolean => {
    for (let q = parent.get(p); q !== undefined && q > 1; q = parent.get(q)) if (q === root) return true;
    return false;
  };
  return [...parent.keys()].filter(isDesc);
}

for (const name of selectedRuntimes()) {
  describe(`launcher leaks [${name}]`, () => {
    let rt: ConformanceRuntime;
    let env: ConformanceEnv;
    let nsfsBefore: Set<string>;
    before(async () => {
      env = await ConformanceEnv.create();
      nsfsBefore = jiffyNsfsMounts();
      rt = await openRuntime(name);
    });
    after(async () => {
      await rt?.close();
      await env?.cleanup();
    });

    async function assertNothingLeft(marker: string, graceMs: number): Promise<void> {
      assert.deepEqual(await eventuallyNone(() => cgroupsMatching(env.prefix), graceMs), [], 'cgroups left behind');
      assert.deepEqual(await mountsMatching(env.prefix), [], 'mounts naming container ids left behind');
      assert.deepEqual(await mountsMatching(env.dir), [], 'mounts under the bundle dir left behind');
      assert.deepEqual(await processesWithEnv(marker), [], 'container processes left behind');
    }

    test('closing the fork-server kills its running containers (binding)', async (t) => {
      if (rt.kind !== 'binding') return t.skip('fork-server feature');
      const marker = `JIFFY_CONF_MARK=${env.prefix}-close`;
      const bundle = await env.bundle({ args: ['/bin/sleep', '1000'], env: ['PATH=/bin', marker], memoryBytes: 64 << 20 });
      const own = await openRuntime(name);
      const ids = [env.id(), env.id()];
      const running = await Promise.all(ids.map((id) => own.start(bundle, id)));
      assert.equal((await processesWithEnv(marker)).length, 2);
      await own.close();
      for (const r of running) assert.equal((await r.wait()).signal, 'SIGKILL');
      assert.deepEqual(await processesWithEnv(marker), [], 'containers survived the server');
      for (const id of ids) assert.deepEqual(await eventuallyNone(() => cgroupsMatching(id), 0), [], `cgroup of ${id} left after close`);
    });

    test('many boots leave no mounts, cgroups, processes or namespaces', async () => {
      const boots = rt.kind === 'binding' ? 200 : 25;
      const marker = `JIFFY_CONF_MARK=${env.prefix}`;
      const bundle = await env.bundle({
        args: ['/bin/true'], env: ['PATH=/bin', marker], memoryBytes: 64 << 20, pidsLimit: 32,
      });
      for (let i = 0; i < boots; i++) {
        const o = await rt.run(bundle, env.id());
        assert.equal(o.exitCode, 0, `boot ${i}: ${JSON.stringify(o)}`);
      }
      await assertNothingLeft(marker, cleanupGraceMs(rt));
      if (rt.kind === 'cli') {
        const state = readdirSync(rt.stateRoot).filter((n) => n.includes(env.prefix));
        assert.deepEqual(state, [], 'state dirs left after run');
      }
      await rt.close();
      rt = undefined as unknown as ConformanceRuntime; // closed: after() must not close twice
      await assertNothingLeft(marker, 0);
      assert.deepEqual(descendantsOf(process.pid), [], 'processes left under the test after close');
      const nsfsNew = [...jiffyNsfsMounts()].filter((m) => !nsfsBefore.has(m));
      assert.deepEqual(nsfsNew, [], 'pinned namespaces (nsfs mounts) left after close');
    });
  });
}
