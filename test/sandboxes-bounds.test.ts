/**
 * What a sandbox must not be able to do to its host: file paths that climb out with `..` are
 * refused, symlinks planted inside the sandbox that point at host paths never reach the host
 * (they resolve in the sandbox's own root), and execs that flood output or never end are bounded.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hasCode } from '../src/errors.js';
import { collect } from '../src/sandboxes/exec.js';
import { SANDBOX_MODES, sandboxFixture, type SandboxFixture } from './sandboxes-support.js';

for (const mode of SANDBOX_MODES) describe(`sandboxes: bounds (${mode})`, () => {
  let f: SandboxFixture;
  let hostDir: string;
  let id: string;
  before(async () => {
    f = await sandboxFixture('bounds', mode);
    hostDir = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-sb-host-'));
    await fs.writeFile(path.join(hostDir, 'secret'), 'host-secret');
    [{ id }] = await f.sm.create({ ttlS: 120 });
  });
  after(async () => {
    await f?.cleanup();
    if (hostDir) await fs.rm(hostDir, { recursive: true, force: true });
  });

  it('refuses paths that climb above the sandbox root', async () => {
    for (const p of ['../../etc/passwd', '/../../../etc/passwd', '/tmp/../../etc/hostname', '..']) {
      await assert.rejects(f.sm.readFile(id, p), (e) => hasCode(e, 'permission_denied'), `read ${p}`);
      await assert.rejects(f.sm.writeFile(id, p, 'x'), (e) => hasCode(e, 'permission_denied'), `write ${p}`);
    }
    const rel = path.relative('/', path.join(hostDir, 'secret'));
    await assert.rejects(f.sm.writeFile(id, `/${'../'.repeat(12)}${rel}`, 'pwned'), (e) => hasCode(e, 'permission_denied'));
    assert.equal(await fs.readFile(path.join(hostDir, 'secret'), 'utf8'), 'host-secret');
  });

  it('never follows a planted symlink out to the host', async () => {
    const secret = path.join(hostDir, 'secret');
    const up = `${'../'.repeat(16)}${path.relative('/', hostDir)}`;
    await f.run(id, `ln -s ${secret} /tmp/abs; ln -s ${up}/secret /tmp/rel; ln -s ${hostDir} /tmp/dir; ln -s ${up} /tmp/reldir`);
    // Reads: the links resolve in the sandbox root, where those paths do not exist.
    for (const p of ['/tmp/abs', '/tmp/rel', '/tmp/dir/secret', '/tmp/reldir/secret']) {
      await assert.rejects(f.sm.readFile(id, p), (e) => hasCode(e, 'not_found'), `read ${p}`);
    }
    // Writes land inside the sandbox (at the in-scope target), never on the host.
    await f.sm.writeFile(id, '/tmp/abs', 'inside-1');
    await f.sm.writeFile(id, '/tmp/dir/new', 'inside-2');
    assert.equal(await fs.readFile(secret, 'utf8'), 'host-secret');
    assert.deepEqual((await fs.readdir(hostDir)).sort(), ['secret']);
    assert.equal((await f.run(id, `cat ${secret} ${hostDir}/new`)).out, 'inside-1inside-2');
    // A link to the sandbox's own file is followed as the sandbox would.
    await f.run(id, 'echo mine > /tmp/own; ln -s /tmp/own /tmp/ownlink');
    assert.equal((await collect(await f.sm.readFile(id, '/tmp/ownlink'))).toString(), 'mine\n');
  });

  it('refuses special files instead of blocking on them', async () => {
    await f.run(id, 'mkfifo /tmp/fifo');
    await assert.rejects(f.sm.readFile(id, '/tmp/fifo'), (e) => hasCode(e, 'invalid_argument'));
  });

  it('truncates a flood of output at maxOutputBytes and kills the command', async () => {
    const x = await f.sm.exec(id, { cmd: ['yes', 'flood'], maxOutputBytes: 100_000 });
    const [out, err, r] = await Promise.all([collect(x.stdout), collect(x.stderr), x.done]);
    assert.equal(out.length + err.length, 100_000);
    assert.equal(r.truncated, true);
    assert.equal(r.timedOut, false);
    assert.equal(r.signal, 'SIGKILL');
    assert.doesNotMatch((await f.run(id, 'ps')).out, /yes flood/);
  });

  it('kills a command that runs past its timeout, with its children', async () => {
    const x = await f.sm.exec(id, { cmd: ['/bin/sh', '-c', 'sleep 4242 & sleep 4343; echo never'], timeoutS: 0.5 });
    const [out, r] = await Promise.all([collect(x.stdout), x.done]);
    assert.equal(out.length, 0);
    assert.deepEqual({ timedOut: r.timedOut, truncated: r.truncated, signal: r.signal }, { timedOut: true, truncated: false, signal: 'SIGKILL' });
    const ps = (await f.run(id, 'ps')).out;
    assert.doesNotMatch(ps, /sleep 4242|sleep 4343/);
    // A normal exec is not bounded by these limits.
    const ok = await f.sm.exec(id, { cmd: ['sh', '-c', 'head -c 50000 /dev/zero'], timeoutS: 30, maxOutputBytes: 50_000 });
    const [o2, r2] = await Promise.all([collect(ok.stdout), ok.done]);
    assert.equal(o2.length, 50_000);
    assert.deepEqual(r2, { exitCode: 0, signal: null, timedOut: false, truncated: false });
  });
});
