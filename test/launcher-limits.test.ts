/**
 * Launcher conformance: limits and privileges — memory (OOM kill), pids (fork bomb), rlimits,
 * capabilities, no_new_privs — checked from inside by the probe, under each selected runtime.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ask, cgroupFileOf, cgroupsMatching, cleanupGraceMs, eventuallyNone, cliSignalStatus, probeAnswer, describeEachRuntime } from './support/conformance.js';

/** Capability bit numbers (linux/capability.h) for the caps these tests grant. */
const CAP_BITS: Record<string, number> = { CAP_KILL: 5, CAP_NET_BIND_SERVICE: 10, CAP_SYS_CHROOT: 18, CAP_AUDIT_WRITE: 29 };

function capMask(names: string[]): string {
  const v = names.reduce((acc, n) => acc | (1n << BigInt(CAP_BITS[n])), 0n);
  return v.toString(16).padStart(16, '0');
}

describeEachRuntime('launcher limits', (ctx) => {

    test('a memory limit ends in a reported OOM kill', async () => {
      const bundle = await ctx.env.bundle({ args: ['/bin/probe', 'alloc', '256'], memoryBytes: 32 << 20 });
      const id = ctx.env.id();
      const o = await ctx.rt.run(bundle, id);
      assert.ok(!o.stdout.includes('allocated_mb'), `allocation of 256 MiB survived a 32 MiB limit: ${o.stdout}`);
      if (ctx.rt.kind === 'binding') {
        assert.equal(o.oomKilled, true, JSON.stringify(o));
        assert.equal(o.signal, 'SIGKILL', JSON.stringify(o));
      } else {
        assert.equal(o.exitCode, cliSignalStatus('SIGKILL'), o.stderr);
      }
      assert.deepEqual(await eventuallyNone(() => cgroupsMatching(id), cleanupGraceMs(ctx.rt)), [], 'cgroup left behind after the OOM kill');
    });

    test('the memory limit lets a smaller allocation through', async () => {
      const { answer } = await ask(ctx.rt, ctx.env, ['alloc', '8'], { memoryBytes: 64 << 20 });
      assert.equal(answer.allocated_mb, 8);
    });

    test('memory, pids and cpu limits are written to the container’s cgroups', async () => {
      const bundle = await ctx.env.bundle({
        args: ['/bin/sleep', '1000'], memoryBytes: 48 << 20, pidsLimit: 20, cpu: { quota: 50000, period: 100000 },
      });
      const running = await ctx.rt.start(bundle, ctx.env.id());
      try {
        assert.equal(await cgroupFileOf(running.pid, 'memory', 'memory.limit_in_bytes', 'memory.max'), String(48 << 20));
        // pids.max itself is not compared: jiffy-serve adds one for its spawner, which shares the
        // container's cgroup; the fork-bomb test checks that the container gets exactly its limit.
        const quota = await cgroupFileOf(running.pid, 'cpu', 'cpu.cfs_quota_us', 'cpu.max');
        assert.match(quota, /^50000( 100000)?$/);
      } finally {
        await running.kill('SIGKILL');
        await running.wait();
      }
    });

    test('the exit status reports peak memory and cpu time (binding)', async (t) => {
      if (ctx.rt.kind !== 'binding') return t.skip('a CLI reports only an exit code');
      const o = await ctx.rt.run(await ctx.env.bundle({ args: ['/bin/probe', 'alloc', '24'], memoryBytes: 128 << 20 }), ctx.env.id());
      assert.equal(o.exitCode, 0, o.stderr);
      const st = o.status!;
      assert.ok(st.peakMemoryBytes >= 24 << 20, `peakMemoryBytes ${st.peakMemoryBytes} < the 24 MiB touched`);
      assert.ok(st.cpuTimeUs > 0, `cpuTimeUs ${st.cpuTimeUs}`);
      assert.ok(st.wallTimeUs > 0, `wallTimeUs ${st.wallTimeUs}`);
    });

    test('a pids limit stops a fork bomb', async () => {
      const { answer } = await ask(ctx.rt, ctx.env, ['forkbomb', '200'], { pidsLimit: 16 });
      assert.equal(answer.ok, false, JSON.stringify(answer));
      assert.equal(answer.error, 'EAGAIN', JSON.stringify(answer));
      // The kernel enforces pids.max exactly: the probe plus 15 children, not one more or less.
      assert.equal(answer.forked, 15, `forked ${answer.forked} children under a pids limit of 16`);
    });

    test('rlimits hold', async () => {
      const rlimits = [{ type: 'RLIMIT_NOFILE', soft: 123, hard: 456 }, { type: 'RLIMIT_CORE', soft: 0, hard: 0 }];
      const nofile = (await ask(ctx.rt, ctx.env, ['rlimit', 'NOFILE'], { rlimits })).answer;
      assert.deepEqual([nofile.soft, nofile.hard], [123, 456]);
      const core = (await ask(ctx.rt, ctx.env, ['rlimit', 'CORE'], { rlimits })).answer;
      assert.deepEqual([core.soft, core.hard], [0, 0]);
    });

    test('capability drops hold: mount and chroot fail with EPERM', async () => {
      const mount = (await ask(ctx.rt, ctx.env, ['try-mount'])).answer;
      assert.equal(mount.error, 'EPERM', JSON.stringify(mount));
      const chroot = (await ask(ctx.rt, ctx.env, ['try-chroot'])).answer;
      assert.equal(chroot.error, 'EPERM', JSON.stringify(chroot));
    });

    test('the configured capability sets are exactly what the process has', async () => {
      const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
      const a = (await ask(ctx.rt, ctx.env, ['caps'], { capabilities: caps })).answer;
      assert.equal(a.CapEff, capMask(caps), JSON.stringify(a));
      assert.equal(a.CapBnd, capMask(caps), JSON.stringify(a));
      const granted = (await ask(ctx.rt, ctx.env, ['try-chroot'], { capabilities: [...caps, 'CAP_SYS_CHROOT'] })).answer;
      assert.equal(granted.ok, true, `chroot denied although CAP_SYS_CHROOT was granted: ${JSON.stringify(granted)}`);
    });

    test('noNewPrivileges is applied as configured', async () => {
      assert.equal((await ask(ctx.rt, ctx.env, ['nnp'], { noNewPrivileges: true })).answer.nnp, 1);
      assert.equal((await ask(ctx.rt, ctx.env, ['nnp'], { noNewPrivileges: false })).answer.nnp, 0);
    });

    test('a non-root user keeps no capabilities', async () => {
      const a = (await ask(ctx.rt, ctx.env, ['caps'], { uid: 65534, gid: 65534 })).answer;
      assert.equal(a.CapEff, '0000000000000000', JSON.stringify(a));
      const probe = probeAnswer((await ctx.rt.run(await ctx.env.bundle({ args: ['/bin/probe', 'try-mount'], uid: 65534, gid: 65534 }), ctx.env.id())));
      assert.equal(probe.error, 'EPERM');
    });
});
