/**
 * `exec` security: an exec'd process gets exactly the container's process settings (capability
 * sets, no_new_privs, rlimits, user and groups from config.json), not the host root's; it cannot
 * mount, sees only the container's processes, holds no host file descriptor, and cannot see
 * another container's files. The container's own init (read from the host's /proc) is the reference.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { fixture, type Fixture } from './containers-support.js';

const FIELDS = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Uid', 'Gid', 'Groups'];

/** The security fields of a /proc/<pid>/status text. */
function securityFields(status: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of status.split('\n')) {
    const i = line.indexOf(':');
    const key = line.slice(0, i);
    if (FIELDS.includes(key)) out[key] = line.slice(i + 1).trim().split(/\s+/).join(' ');
  }
  return out;
}

describe('containers: exec security', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture('ctr-exec');
  });
  after(async () => f.cleanup());

  async function execText(id: string, cmd: string[], o: { user?: string } = {}): Promise<{ code: number; out: string }> {
    const r = await f.mgr.exec(id, cmd, { stdio: 'pipe', ...o });
    return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
  }

  it('gives exec the container init\'s capabilities and no_new_privs (default set: not full), and no mount', async () => {
    const { id } = await f.mgr.run({ image: 'busybox', detach: true, cmd: ['sleep', '1000'] });
    const rec = await f.mgr.get(id);
    const init = securityFields(await fs.readFile(`/proc/${rec.state.pid}/status`, 'utf8'));
    const inside = securityFields((await execText(id, ['cat', '/proc/self/status'])).out);
    assert.deepEqual(inside, init);
    const host = securityFields(await fs.readFile('/proc/self/status', 'utf8'));
    assert.notEqual(inside.CapEff, host.CapEff, 'exec must not keep the host root\'s capability set');
    assert.equal(BigInt(`0x${inside.CapEff}`) & (1n << 21n), 0n, 'no CAP_SYS_ADMIN');
    const mount = await execText(id, ['mount', '-t', 'tmpfs', 'tmpfs', '/tmp']);
    assert.notEqual(mount.code, 0, `mount must fail, got: ${mount.out}`);
    assert.match(mount.out, /permission denied|not permitted/i);
    await f.mgr.remove(id, { force: true });
  });

  it('follows config.json: reduced caps, no_new_privs, rlimits, groups, and the -u override', async () => {
    const rec = await f.mgr.create({ image: 'busybox', cmd: ['sleep', '1000'] });
    const cfgFile = f.mgr.records.path(rec.id, 'config.json');
    const cfg = JSON.parse(await fs.readFile(cfgFile, 'utf8'));
    const caps = ['CAP_KILL', 'CAP_SETUID', 'CAP_SETGID'];
    cfg.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
    cfg.process.noNewPrivileges = true;
    cfg.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 123, hard: 456 }];
    cfg.process.user.additionalGids = [10, 20];
    await fs.writeFile(cfgFile, JSON.stringify(cfg));
    const started = await f.mgr.start(rec.id);
    const init = securityFields(await fs.readFile(`/proc/${started.state.pid}/status`, 'utf8'));
    assert.equal(init.NoNewPrivs, '1', 'the launcher applied the edited config');
    const inside = securityFields((await execText(rec.id, ['cat', '/proc/self/status'])).out);
    assert.deepEqual(inside, init);
    assert.equal(inside.CapBnd, (1n << 5n | 1n << 6n | 1n << 7n).toString(16).padStart(16, '0'));
    assert.deepEqual((await execText(rec.id, ['sh', '-c', 'ulimit -n; ulimit -Hn'])).out.trim().split('\n'), ['123', '456']);
    const chroot = await execText(rec.id, ['chroot', '/', 'true']);
    assert.notEqual(chroot.code, 0, 'no CAP_SYS_CHROOT in this container: chroot must fail');
    const nobody = securityFields((await execText(rec.id, ['cat', '/proc/self/status'], { user: 'nobody' })).out);
    assert.equal(nobody.Uid, '65534 65534 65534 65534');
    assert.equal(nobody.CapBnd, init.CapBnd);
    assert.equal(nobody.NoNewPrivs, '1');
    await f.mgr.remove(rec.id, { force: true });
  });

  it('sees only the container\'s processes, holds no host fd, and cannot reach another container\'s files', async () => {
    const a = await f.mgr.run({ image: 'busybox', detach: true, cmd: ['sh', '-c', 'echo secret > /secret-a; exec sleep 1000'] });
    const b = await f.mgr.run({ image: 'busybox', detach: true, cmd: ['sleep', '1000'] });
    const aRoot = (await f.mgr.snapshots.get(a.id)).merged;
    // Wait (bounded by the test timeout) until A has written its file.
    while ((await execText(a.id, ['cat', '/secret-a'])).out.trim() !== 'secret') await new Promise((r) => setTimeout(r, 20));
    const procs = (await execText(b.id, ['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline; echo; done'])).out;
    const cmdlines = procs.split('\n').filter((l) => l.trim());
    assert.ok(cmdlines.some((l) => l.startsWith('sleep 1000')), procs);
    assert.ok(!cmdlines.some((l) => /node|jiffy-exec|nsenter/.test(l)), `host processes visible in the container: ${procs}`);
    assert.ok(cmdlines.length <= 3, `only the container's processes: ${procs}`);
    const fds = (await execText(b.id, ['ls', '/proc/self/fd'])).out.trim().split(/\s+/).map(Number);
    assert.ok(fds.every((n) => n <= 3), `unexpected inherited fds: ${fds}`);
    const peek = await execText(b.id, ['sh', '-c', `cat /secret-a; cat ${aRoot}/secret-a; ls /proc/${(await f.mgr.get(a.id)).state.pid}/root/secret-a`]);
    assert.doesNotMatch(peek.out, /^secret$/m);
    await f.mgr.remove(a.id, { force: true });
    await f.mgr.remove(b.id, { force: true });
  });
});
