/**
 * Launcher conformance: what a process inside the container can see. Every case runs the probe
 * in a fresh container under each runtime in JIFFY_CONFORMANCE_RUNTIMES (default jiffy-cli and
 * jiffy-serve) and checks its answer, crun-test style.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ask, describeEachRuntime } from './support/conformance.js';

describeEachRuntime('launcher isolation', (ctx) => {

    test('the process is pid 1 and sees only itself in /proc', async () => {
      assert.equal((await ask(ctx.rt, ctx.env, ['pid'])).answer.pid, 1);
      assert.deepEqual((await ask(ctx.rt, ctx.env, ['ps'])).answer.pids, [1]);
    });

    test('/proc is the container’s own', async () => {
      const { answer } = await ask(ctx.rt, ctx.env, ['read', '/proc/1/cmdline']);
      assert.equal(answer.data.split('\0')[0], '/bin/probe');
      const mounts = (await ask(ctx.rt, ctx.env, ['mounts'])).answer.mounts as { mountpoint: string; fstype: string }[];
      assert.ok(mounts.some((m) => m.mountpoint === '/proc' && m.fstype === 'proc'), JSON.stringify(mounts));
    });

    test('the hostname is the configured one', async () => {
      const hostname = `h-${randomBytes(3).toString('hex')}`;
      assert.equal((await ask(ctx.rt, ctx.env, ['hostname'], { hostname })).answer.hostname, hostname);
    });

    test('the network namespace has only lo', async () => {
      assert.deepEqual((await ask(ctx.rt, ctx.env, ['netdevs'])).answer.netdevs, ['lo']);
    });

    test('host files outside the rootfs are invisible, also through ..', async () => {
      const marker = path.join(ctx.env.dir, `marker-${randomBytes(4).toString('hex')}`);
      await fs.writeFile(marker, 'host secret\n');
      const direct = (await ask(ctx.rt, ctx.env, ['read', marker])).answer;
      assert.equal(direct.error, 'ENOENT', JSON.stringify(direct));
      const dotdot = (await ask(ctx.rt, ctx.env, ['read', `/../../../../..${marker}`])).answer;
      assert.equal(dotdot.error, 'ENOENT', JSON.stringify(dotdot));
      const fromTmp = (await ask(ctx.rt, ctx.env, ['read', `/tmp/../../..${marker}`])).answer;
      assert.equal(fromTmp.error, 'ENOENT', JSON.stringify(fromTmp));
      const top = (await ask(ctx.rt, ctx.env, ['ls', '/..'])).answer.entries as string[];
      assert.deepEqual([...top].sort(), [...(await ask(ctx.rt, ctx.env, ['ls', '/'])).answer.entries].sort());
    });

    test('masked paths read empty', async () => {
      // /proc/kcore is absent on some kernels (this one included); timer_list and keys are not.
      for (const p of ['/proc/timer_list', '/proc/keys']) {
        assert.ok(existsSync(p), `${p} missing on the host: pick another masked path`);
        const { answer } = await ask(ctx.rt, ctx.env, ['read', p]);
        assert.equal(answer.ok, true, `${p}: ${JSON.stringify(answer)}`);
        assert.equal(answer.bytes, 0, `${p} is not masked inside the container`);
        const st = (await ask(ctx.rt, ctx.env, ['stat', p])).answer;
        assert.deepEqual([st.type, st.rdev], ['chr', '1:3'], `${p} is not /dev/null: ${JSON.stringify(st)}`);
      }
      // A masked directory is an empty read-only tmpfs (when the host has one to hide).
      const hostFirmware = readdirSync('/sys/firmware');
      const inside = (await ask(ctx.rt, ctx.env, ['ls', '/sys/firmware'])).answer;
      assert.deepEqual(inside.entries, [], `/sys/firmware shows ${JSON.stringify(inside)} (host: ${hostFirmware})`);
      assert.ok(readFileSync('/proc/timer_list', 'utf8').length > 0, 'host /proc/timer_list is empty: the check proves nothing');
    });

    test('readonly paths are read-only', async () => {
      const { answer } = await ask(ctx.rt, ctx.env, ['write', '/proc/sys/kernel/hostname']);
      assert.equal(answer.error, 'EROFS', JSON.stringify(answer));
    });

    test('a read-only root is read-only, a writable one is writable', async () => {
      const ro = (await ask(ctx.rt, ctx.env, ['write', '/ro-check'], { readonlyRoot: true })).answer;
      assert.equal(ro.error, 'EROFS', JSON.stringify(ro));
      const rw = (await ask(ctx.rt, ctx.env, ['write', '/tmp/rw-check'], { readonlyRoot: false })).answer;
      assert.equal(rw.ok, true, JSON.stringify(rw));
    });

    test('a read-only bind mount shows host data and refuses writes', async () => {
      const src = path.join(ctx.env.dir, 'shared');
      await fs.mkdir(src, { recursive: true });
      await fs.writeFile(path.join(src, 'hello'), 'from the host\n');
      const mounts = [{ destination: '/mnt/data', type: 'bind', source: src, options: ['rbind', 'ro'] }];
      const read = (await ask(ctx.rt, ctx.env, ['read', '/mnt/data/hello'], { mounts })).answer;
      assert.equal(read.data, 'from the host\n', JSON.stringify(read));
      const write = (await ask(ctx.rt, ctx.env, ['write', '/mnt/data/new'], { mounts })).answer;
      assert.equal(write.error, 'EROFS', JSON.stringify(write));
      assert.ok(!existsSync(path.join(src, 'new')));
    });

    test('the cgroup namespace hides the host cgroup paths', async () => {
      const lines = (await ask(ctx.rt, ctx.env, ['cgroup'])).answer.cgroup as string[];
      assert.ok(lines.length > 0);
      for (const l of lines) assert.ok(l.endsWith(':/'), `cgroup path visible: ${l}`);
    });

    test('/dev is minimal and has the OCI default devices', async () => {
      const entries = (await ask(ctx.rt, ctx.env, ['ls', '/dev'])).answer.entries as string[];
      for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty']) assert.ok(entries.includes(d), `/dev/${d} missing: ${entries}`);
      for (const d of ['kmsg', 'mem', 'port']) assert.ok(!entries.includes(d), `host device /dev/${d} visible`);
      const st = (await ask(ctx.rt, ctx.env, ['stat', '/dev/null'])).answer;
      assert.deepEqual([st.type, st.rdev], ['chr', '1:3']);
      const w = (await ask(ctx.rt, ctx.env, ['write', '/dev/null'])).answer;
      assert.equal(w.ok, true, JSON.stringify(w));
    });

    test('the working directory is the configured one', async () => {
      assert.equal((await ask(ctx.rt, ctx.env, ['cwd'], { cwd: '/tmp' })).answer.cwd, '/tmp');
      assert.equal((await ask(ctx.rt, ctx.env, ['cwd'])).answer.cwd, '/');
    });

    test('env and user are applied', async () => {
      const e = (await ask(ctx.rt, ctx.env, ['env'], { env: ['FOO=bar baz', 'PATH=/bin'] })).answer.env as string[];
      // runc adds HOME from /etc/passwd when the config has none; nothing else may appear.
      assert.deepEqual(e.filter((v) => !v.startsWith('HOME=')).sort(), ['FOO=bar baz', 'PATH=/bin']);
      const u = (await ask(ctx.rt, ctx.env, ['uid'], { uid: 65534, gid: 65534 })).answer;
      assert.deepEqual([u.uid, u.gid, u.euid, u.egid], [65534, 65534, 65534, 65534]);
    });
});
