import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkContainerPath, ensureDirInRoot, resolveInRoot } from './rootfs-path.js';

describe('resolveInRoot', () => {
  let root: string;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-rootfs-path-'));
    await fs.mkdir(path.join(root, 'etc'), { recursive: true });
    await fs.symlink('/', path.join(root, 'toroot'));
    await fs.symlink('../../../..', path.join(root, 'up'));
    await fs.symlink('/etc', path.join(root, 'abs-etc'));
    await fs.symlink('loop2', path.join(root, 'loop1'));
    await fs.symlink('loop1', path.join(root, 'loop2'));
  });
  after(async () => fs.rm(root, { recursive: true, force: true }));

  it('keeps symlinks inside the root', async () => {
    assert.equal(await resolveInRoot(root, '/toroot/etc/passwd'), path.join(root, 'etc', 'passwd'));
    assert.equal(await resolveInRoot(root, '/up/etc'), path.join(root, 'etc'));
    assert.equal(await resolveInRoot(root, '/abs-etc/x'), path.join(root, 'etc', 'x'));
    assert.equal(await resolveInRoot(root, '/abs-etc', { followLast: false }), path.join(root, 'abs-etc'));
  });

  it('refuses explicit traversal and symlink loops', async () => {
    assert.throws(() => checkContainerPath('../../etc/passwd'), (e: { code?: string }) => e.code === 'permission_denied');
    assert.equal(checkContainerPath('/a/../b'), '/b');
    await assert.rejects(resolveInRoot(root, '/loop1/x'), /too many symlinks/);
  });

  it('creates a missing working directory inside the root, never through a symlink to the host', async () => {
    const outside = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-rootfs-outside-'));
    try {
      await fs.symlink(outside, path.join(root, 'hostlink'));
      assert.equal(await ensureDirInRoot(root, '/toroot/work/a'), path.join(root, 'work', 'a'));
      assert.equal(await ensureDirInRoot(root, '/up/deep/b'), path.join(root, 'deep', 'b'));
      // An absolute link is the container's path: it lands under the root, not in `outside`.
      assert.equal(await ensureDirInRoot(root, '/hostlink/c'), path.join(root, outside, 'c'));
      assert.deepEqual(await fs.readdir(outside), []);
      assert.equal((await fs.stat(path.join(root, 'work', 'a'))).mode & 0o777, 0o755);
      await fs.writeFile(path.join(root, 'afile'), 'x');
      await assert.rejects(ensureDirInRoot(root, '/afile/sub'), /cannot create the working directory/);
      await assert.rejects(ensureDirInRoot(root, '/afile'), /cannot create the working directory|is not a directory/);
    } finally {
      await fs.rm(outside, { recursive: true, force: true });
    }
  });
});
