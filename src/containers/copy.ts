/**
 * `jiffy cp` both ways. Container paths resolve in scope (./rootfs-path.ts). Copying in never
 * follows a symlink that is already in the container: every directory on the way is checked with
 * lstat (a symlink where a directory is needed is refused) and an existing file or link at the
 * destination is unlinked before the new file is written — so a hostile container cannot redirect
 * a copy onto the host. Callers pause a running container around the copy so nothing changes
 * between check and write.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { JiffyError } from '../errors.js';
import { resolveInRoot } from './rootfs-path.js';

/** Copy container path `ctrPath` (file or tree) to `hostPath`, like `cp -a` (into it when it is a dir). */
export async function copyOut(rootfs: string, ctrPath: string, hostPath: string): Promise<void> {
  const src = await resolveInRoot(rootfs, ctrPath);
  const st = await fs.lstat(src).catch(() => undefined);
  if (!st) throw new JiffyError('not_found', `${ctrPath} does not exist in the container`);
  const destSt = await fs.stat(hostPath).catch(() => undefined);
  const dest = destSt?.isDirectory() ? path.join(hostPath, path.basename(src)) : hostPath;
  // verbatimSymlinks: links inside the copied tree are copied, never followed (they point into the container).
  await fs.cp(src, dest, { recursive: true, verbatimSymlinks: true, dereference: false, preserveTimestamps: true, force: true });
}

/** Copy host `hostPath` (file or tree) to container path `ctrPath` (into it when it is a dir). */
export async function copyIn(rootfs: string, hostPath: string, ctrPath: string): Promise<void> {
  const srcSt = await fs.lstat(hostPath).catch(() => undefined);
  if (!srcSt) throw new JiffyError('not_found', `${hostPath} does not exist on the host`);
  const resolved = await resolveInRoot(rootfs, ctrPath);
  const destSt = await fs.lstat(resolved).catch(() => undefined);
  const into = destSt?.isDirectory() || ctrPath.endsWith('/');
  const rel = path.relative(rootfs, into ? path.join(resolved, path.basename(hostPath)) : resolved);
  const parts = rel.split(path.sep).filter(Boolean);
  if (parts.length === 0) throw new JiffyError('invalid_argument', 'cannot replace the container root itself: copy into a directory such as /tmp/');
  const parent = await ensureDirs(rootfs, parts.slice(0, -1));
  await copyTree(hostPath, path.join(parent, parts[parts.length - 1]));
}

/** Walk `parts` under `root`, creating missing directories and refusing symlinks on the way. */
async function ensureDirs(root: string, parts: string[]): Promise<string> {
  let cur = root;
  for (const part of parts) {
    cur = path.join(cur, part);
    const st = await fs.lstat(cur).catch(() => undefined);
    if (!st) await fs.mkdir(cur, { mode: 0o755 });
    else if (!st.isDirectory()) {
      throw new JiffyError('permission_denied', `${path.relative(root, cur)} in the container is not a plain directory (a symlink?): refusing to copy through it`);
    }
  }
  return cur;
}

async function copyTree(src: string, dest: string): Promise<void> {
  const st = await fs.lstat(src);
  const existing = await fs.lstat(dest).catch(() => undefined);
  if (st.isDirectory()) {
    if (existing && !existing.isDirectory()) await fs.rm(dest, { force: true });
    if (!existing || !existing.isDirectory()) await fs.mkdir(dest, { mode: st.mode & 0o7777 });
    for (const name of await fs.readdir(src)) await copyTree(path.join(src, name), path.join(dest, name));
    await fs.chmod(dest, st.mode & 0o7777);
  } else {
    if (existing) await fs.rm(dest, { recursive: true, force: true });
    if (st.isSymbolicLink()) await fs.symlink(await fs.readlink(src), dest);
    else if (st.isFile()) await fs.copyFile(src, dest, fs.constants.COPYFILE_EXCL);
    else throw new JiffyError('invalid_argument', `${src} is a special file; only files, directories and symlinks can be copied`);
    if (!st.isSymbolicLink()) await fs.chmod(dest, st.mode & 0o7777);
  }
  await fs.lchown(dest, st.uid, st.gid).catch(() => undefined);
  await fs.lutimes(dest, st.atime, st.mtime).catch(() => undefined);
}
