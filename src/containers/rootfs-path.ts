/**
 * Resolving a container path on the host, safely. The path is walked one component at a time
 * inside the rootfs: symlinks are read and followed *as the container would see them* (an absolute
 * target restarts at the rootfs, `..` never climbs above it — docker's FollowSymlinkInScope), so a
 * symlink to `/` means the container's root, never the host's (CVE-2018-15664 class). An explicit
 * `..` in the caller's path that would leave the root is refused outright.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { JiffyError } from '../errors.js';

const MAX_LINKS = 40; // same bound as the kernel's ELOOP

/** Refuse a user path whose `..` components climb above `/`; returns the normalized absolute path. */
export function checkContainerPath(p: string): string {
  if (!p) throw new JiffyError('invalid_argument', 'empty container path: give an absolute path such as /tmp/file');
  let depth = 0;
  for (const part of p.split('/')) {
    if (part === '..') depth--;
    else if (part && part !== '.') depth++;
    if (depth < 0) {
      throw new JiffyError('permission_denied', `container path ${JSON.stringify(p)} escapes the container root with "..": use a path inside the container`);
    }
  }
  return path.posix.resolve('/', p);
}

/**
 * The host path of container path `p` under `rootfs`, with every symlink resolved in scope.
 * With `followLast: false` the final component is not followed (for lstat-like callers).
 * Missing components are allowed (the rest of the path is appended as is).
 */
export async function resolveInRoot(rootfs: string, p: string, opts: { followLast?: boolean } = {}): Promise<string> {
  const followLast = opts.followLast ?? true;
  const todo = checkContainerPath(p).split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (todo.length) {
    const part = todo.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = path.join(rootfs, ...done, part);
    const st = await fs.lstat(host).catch(() => undefined);
    if (!st?.isSymbolicLink() || (!followLast && todo.length === 0)) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) throw new JiffyError('invalid_argument', `too many symlinks resolving ${p} in the container`);
    const target = await fs.readlink(host);
    if (target.startsWith('/')) done.length = 0;
    todo.unshift(...target.split('/').filter(Boolean));
  }
  const out = path.join(rootfs, ...done);
  if (out !== rootfs && !out.startsWith(rootfs + path.sep)) {
    throw new JiffyError('permission_denied', `container path ${p} resolves outside the container root`);
  }
  return out;
}

/**
 * Make directory `p` exist inside `rootfs` (`mkdir -p` as the container would see it: symlinks
 * resolved in scope by resolveInRoot, so a link to `/` or `../..` cannot make us create host
 * directories). New directories are root-owned 0755, as runc creates a missing `process.cwd`.
 * Only for a rootfs no container process runs in yet (nothing can swap a component meanwhile).
 */
export async function ensureDirInRoot(rootfs: string, p: string): Promise<string> {
  const host = await resolveInRoot(rootfs, p);
  try {
    await fs.mkdir(host, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new JiffyError('invalid_argument', `cannot create the working directory ${p} in the container: ${(e as Error).message}; use a directory path (a file is in the way?)`, { cause: e });
  }
  const st = await fs.lstat(host);
  if (!st.isDirectory()) throw new JiffyError('invalid_argument', `working directory ${p} is not a directory in the container`);
  return host;
}
