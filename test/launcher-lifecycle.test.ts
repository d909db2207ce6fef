/**
 * Launcher conformance: exit codes and signals come back, stdio is wired, and (CLI runtimes)
 * the OCI lifecycle create → start → kill → delete reports valid state and writes --pid-file.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { cgroupsMatching, cliSignalStatus, cleanupGraceMs, eventuallyNone, describeEachRuntime } from './support/conformance.js';
import { waitForState, type ConformanceRuntime } from './support/oci-runtimes.js';

/** Checks an OCI state document (runtime-spec runtime.md "State"). */
function assertOciState(st: Record<string, any>, id: string, bundle: string, status: string): void {
  assert.equal(typeof st.ociVersion, 'string', JSON.stringify(st));
  assert.equal(st.id, id);
  assert.equal(st.status, status);
  assert.equal(path.resolve(st.bundle), path.resolve(bundle));
  if (status === 'created' || status === 'running') {
    assert.ok(Number.isInteger(st.pid) && st.pid > 0, `state.pid must be a positive pid: ${JSON.stringify(st)}`);
  }
}

/** True when `pid` exists and is not a zombie (an orphaned init may wait for its reaper). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describeEachRuntime('launcher lifecycle', (ctx) => {

    test('exit codes come back', async () => {
      for (const code of [0, 3, 42]) {
        const o = await ctx.rt.run(await ctx.env.bundle({ args: ['/bin/probe', 'exit', String(code)] }), ctx.env.id());
        assert.equal(o.exitCode, code, o.stderr);
        assert.equal(o.signal, null);
      }
    });

    test('a death by signal comes back (SIGSEGV from inside)', async () => {
      const o = await ctx.rt.run(await ctx.env.bundle({ args: ['/bin/probe', 'kill-self', 'SEGV'] }), ctx.env.id());
      if (ctx.rt.kind === 'binding') assert.equal(o.signal, 'SIGSEGV', JSON.stringify(o));
      else assert.equal(o.exitCode, cliSignalStatus('SIGSEGV'), o.stderr);
    });

    test('SIGKILL from outside comes back', async () => {
      const id = ctx.env.id();
      const running = await ctx.rt.start(await ctx.env.bundle({ args: ['/bin/sleep', '1000'] }), id);
      await running.kill('SIGKILL');
      const o = await running.wait();
      if (ctx.rt.kind === 'binding') assert.equal(o.signal, 'SIGKILL', JSON.stringify(o));
      else assert.equal(o.exitCode, cliSignalStatus('SIGKILL'), o.stderr);
      assert.equal(o.oomKilled ?? false, false);
      assert.deepEqual(await eventuallyNone(() => cgroupsMatching(id), cleanupGraceMs(ctx.rt)), []);
    });

    test('stdout and stderr are kept apart', async () => {
      const o = await ctx.rt.run(await ctx.env.bundle({ args: ['/bin/sh', '-c', 'echo out; echo err >&2; exit 5'] }), ctx.env.id());
      assert.equal(o.exitCode, 5);
      assert.equal(o.stdout, 'out\n');
      assert.match(o.stderr, /^err$/m);
      assert.doesNotMatch(o.stdout, /err/);
    });

    test('create/start/state/kill/delete report valid OCI state; --pid-file is written', async (t) => {
      if (ctx.rt.kind !== 'cli') return t.skip('the OCI lifecycle is a CLI feature; the binding is covered above');
      const id = ctx.env.id();
      const bundle = await ctx.env.bundle({ args: ['/bin/sleep', '1000'] });
      const pidFile = path.join(ctx.env.dir, `${id}.pid`);
      const created = await ctx.rt.cli!(['create', '--bundle', bundle, '--pid-file', pidFile, id]);
      assert.equal(created.code, 0, created.stderr);
      try {
        await lifecycle(ctx.rt, id, bundle, pidFile);
      } finally {
        await ctx.rt.cli!(['delete', '--force', id]);
      }
    });

    test('state, kill and delete of an unknown id fail and name it', async (t) => {
      if (ctx.rt.kind !== 'cli') return t.skip('CLI feature');
      const id = `${ctx.env.id()}-absent`;
      for (const args of [['state', id], ['kill', id, 'KILL'], ['delete', id]]) {
        const r = await ctx.rt.cli!(args);
        assert.notEqual(r.code, 0, `${args[0]} of an unknown container succeeded`);
        assert.ok(r.stderr.includes(id), `${args[0]}: error does not name the id: ${r.stderr}`);
      }
    });

    test('delete refuses a running container unless forced', async (t) => {
      if (ctx.rt.kind !== 'cli') return t.skip('CLI feature');
      const id = ctx.env.id();
      const running = await ctx.rt.start(await ctx.env.bundle({ args: ['/bin/sleep', '1000'] }), id);
      const plain = await ctx.rt.cli!(['delete', id]);
      assert.notEqual(plain.code, 0, 'delete of a running container succeeded without --force');
      assert.equal(running.pid > 0 && !!readFileSync(`/proc/${running.pid}/stat`, 'utf8'), true);
      const forced = await ctx.rt.cli!(['delete', '--force', id]);
      assert.equal(forced.code, 0, forced.stderr);
      const o = await running.wait();
      assert.equal(o.exitCode, cliSignalStatus('SIGKILL'));
      assert.deepEqual(await eventuallyNone(() => cgroupsMatching(id), cleanupGraceMs(ctx.rt)), []);
    });

    test('a duplicate id is refused while the first container exists', async (t) => {
      if (ctx.rt.kind !== 'cli') return t.skip('CLI feature');
      const id = ctx.env.id();
      const bundle = await ctx.env.bundle({ args: ['/bin/sleep', '1000'] });
      const first = await ctx.rt.cli!(['create', '--bundle', bundle, id]);
      assert.equal(first.code, 0, first.stderr);
      try {
        const second = await ctx.rt.cli!(['create', '--bundle', bundle, id]);
        assert.notEqual(second.code, 0);
        assert.match(second.stderr, /exist/i);
        assertOciState(JSON.parse((await ctx.rt.cli!(['state', id])).stdout), id, bundle, 'created');
      } finally {
        await ctx.rt.cli!(['delete', '--force', id]);
      }
    });
});

async function lifecycle(rt: ConformanceRuntime, id: string, bundle: string, pidFile: string): Promise<void> {
  const st1 = JSON.parse((await rt.cli!(['state', id])).stdout);
  assertOciState(st1, id, bundle, 'created');
  assert.equal(Number((await fs.readFile(pidFile, 'utf8')).trim()), st1.pid, '--pid-file disagrees with state.pid');

  const started = await rt.cli!(['start', id]);
  assert.equal(started.code, 0, started.stderr);
  assertOciState(await waitForState(rt, id, 'running'), id, bundle, 'running');

  const killed = await rt.cli!(['kill', id, 'KILL']);
  assert.equal(killed.code, 0, killed.stderr);
  assertOciState(await waitForState(rt, id, 'stopped'), id, bundle, 'stopped');
  assert.equal(running(st1.pid), false, `container init ${st1.pid} still exists after kill + stopped`);

  const deleted = await rt.cli!(['delete', id]);
  assert.equal(deleted.code, 0, deleted.stderr);
  const gone = await rt.cli!(['state', id]);
  assert.notEqual(gone.code, 0, 'state of a deleted container must fail');
  assert.ok(!existsSync(path.join(rt.stateRoot, id)), 'state dir left after delete');
  assert.deepEqual(await eventuallyNone(() => cgroupsMatching(id), cleanupGraceMs(rt)), [], 'cgroup left after delete');
}

