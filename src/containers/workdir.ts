/**
 * The container's working directory must exist before boot: jiffy-launch (like crun) fails on
 * chdir to a missing `process.cwd`, while runc and docker create it. We create it at create time,
 * in the merged rootfs (so it lands in the container's upper dir and nowhere else), resolving
 * every component inside the rootfs (./rootfs-path.ts): an image symlink cannot redirect it
 * to the host. A cwd on a mount the runtime adds (a bind, the read-only root's /tmp) is left to
 * the runtime: it is not in the rootfs.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { JiffyError } from '../errors.js';
import { ensureDirInRoot, resolveInRoot } from './rootfs-path.js';
import type { ContainerSpecOptions } from './types.js';

const under = (p: string, dir: string) => p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);

/** Check `cwd` and create it in `rootfs` when missing (a read-only rootfs cannot get it: error). */
export async function ensureWorkdir(rootfs: string, cwd: string, opts: ContainerSpecOptions): Promise<void> {
  if (!path.posix.isAbsolute(cwd)) {
    throw new JiffyError('invalid_argument', `working directory ${JSON.stringify(cwd)} is not absolute: use a path such as /app`);
  }
  const mounted = [...(opts.binds ?? []).map((b) => b.destination), ...(opts.readonlyRoot ? ['/tmp'] : []), '/proc', '/dev', '/sys'];
  if (cwd === '/' || mounted.some((d) => under(path.posix.normalize(cwd), path.posix.normalize(d)))) return;
  if (!opts.readonlyRoot) {
    await ensureDirInRoot(rootfs, cwd);
    return;
  }
  const st = await fs.stat(await resolveInRoot(rootfs, cwd)).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new JiffyError('invalid_argument', `working directory ${cwd} does not exist in the image and the rootfs is read-only: pick an existing directory or drop --read-only`);
  }
}
