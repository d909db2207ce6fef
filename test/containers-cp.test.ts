/**
 * `cp` both ways, on a stopped and on a running container, and the escapes it must refuse:
 * `..` above the container root, and symlinks in the container that point at `/` or climb with
 * `..` — they resolve inside the container, so nothing on the host is read or written.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixture, type Fixture } from './containers-support.js';

describe('containers: cp', () => {
  let f: Fixture;
  let host: string;
  let id: string;
  before(async () => {
    f = await fixture('ctr-cp');
    host = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-cp-host-'));
    const r = await f.mgr.run({
      image: 'busybox',
      cmd: ['sh', '-c', 'mkdir -p /data/sub && echo inside > /data/sub/file.txt && ln -s / /rootlink && ln -s ../../../../.. /uplink && ln -s /etc/passwd /data/pw'],
    });
    assert.equal((await r.exit).exitCode, 0);
    id = r.id;
  });
  after(async () => {
    await fs.rm(host, { recursive: true, force: true });
    await f.cleanup();
  });

  it('copies a tree out and a file in (stopped container)', async () => {
    await f.mgr.copyOut(id, '/data', host);
    assert.equal(await fs.readFile(path.join(host, 'data', 'sub', 'file.txt'), 'utf8'), 'inside\n');
    // A symlink inside the copied tree is copied as a link, not followed.
    assert.equal(await fs.readlink(path.join(host, 'data', 'pw')), '/etc/passwd');
    await fs.writeFile(path.join(host, 'in.txt'), 'from host\n');
    await f.mgr.copyIn(id, path.join(host, 'in.txt'), '/data/sub/');
    await f.mgr.copyOut(id, '/data/sub/in.txt', path.join(host, 'back.txt'));
    assert.equal(await fs.readFile(path.join(host, 'back.txt'), 'utf8'), 'from host\n');
  });

  it('refuses path traversal above the container root', async () => {
    await assert.rejects(f.mgr.copyOut(id, '../../etc/passwd', path.join(host, 'x')), (e: { code?: string }) => e.code === 'permission_denied');
    await assert.rejects(f.mgr.copyIn(id, path.join(host, 'in.txt'), '/../../../tmp/escaped'), (e: { code?: string }) => e.code === 'permission_denied');
  });

  it('resolves symlinks to / and ../.. inside the container, never on the host', async () => {
    const marker = path.join(host, 'host-only.txt');
    await fs.writeFile(marker, 'host secret\n');
    // Through /rootlink the host path of our marker is looked up inside the container: absent.
    await assert.rejects(f.mgr.copyOut(id, `/rootlink${marker}`, path.join(host, 'leak1')), (e: { code?: string }) => e.code === 'not_found');
    await assert.rejects(f.mgr.copyOut(id, `/uplink${marker}`, path.join(host, 'leak2')), (e: { code?: string }) => e.code === 'not_found');
    // Copying in through the links lands inside the container's own /tmp.
    await f.mgr.copyIn(id, path.join(host, 'in.txt'), `/uplink${host}/planted.txt`);
    await assert.rejects(fs.access(path.join(host, 'planted.txt')), 'nothing was written on the host');
    await f.mgr.copyOut(id, `${host}/planted.txt`, path.join(host, 'planted-back.txt'));
    assert.equal(await fs.readFile(path.join(host, 'planted-back.txt'), 'utf8'), 'from host\n');
  });

  it('copies into a running container while it runs', async () => {
    const { id: live } = await f.mgr.run({ image: 'busybox', detach: true, cmd: ['sleep', '1000'] });
    await fs.writeFile(path.join(host, 'live.txt'), 'hot\n');
    await f.mgr.copyIn(live, path.join(host, 'live.txt'), '/tmp/live.txt');
    const r = await f.mgr.exec(live, ['cat', '/tmp/live.txt'], { stdio: 'pipe' });
    assert.equal(r.stdout.toString(), 'hot\n');
    assert.equal((await f.mgr.get(live)).state.status, 'running', 'thawed after the copy');
    await f.mgr.remove(live, { force: true });
  });
});
