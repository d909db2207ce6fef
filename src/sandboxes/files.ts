/**
 * Files in and out of a running sandbox, through its mounted rootfs on the host. Every path is
 * resolved the way the sandbox sees it (H5's resolveInRoot: `..` that climbs above `/` is refused,
 * symlinks are followed in scope — an absolute target restarts at the sandbox root), and the
 * file is then opened with O_NOFOLLOW and its real path re-checked through /proc/self/fd: if
 * the sandbox swapped a directory for a symlink between our check and our open (CVE-2018-15664
 * class), the open lands outside the root, the check sees it, and nothing is read or written.
 */
import { constants as C } from 'node:fs';
import crypto from 'node:crypto';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { JiffyError } from '../errors.js';
import { checkContainerPath, resolveInRoot } from '../containers/rootfs-path.js';

/** Open `p` in the sandbox rooted at `rootfs` for reading; a stream of a regular file. */
export async function readSandboxFile(rootfs: string, p: string): Promise<{ stream: Readable; size: number }> {
  const root = await fs.realpath(rootfs);
  const host = await resolveInRoot(root, p);
  const fh = await fs.open(host, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK).catch((e: NodeJS.ErrnoException) => {
    throw openError(e, p);
  });
  try {
    await checkInside(fh, root, p);
    const st = await fh.stat();
    if (!st.isFile()) throw new JiffyError('invalid_argument', `${p} in the sandbox is not a regular file: only files can be read`);
    return { stream: fh.createReadStream({ autoClose: true }), size: st.size };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/**
 * Write `data` to `p` in the sandbox (parents created as 0755 dirs, file mode `mode`, default 0644).
 * The data goes to a temp file beside the target, renamed over it at the end: a failed or too
 * large upload leaves the old file as it was.
 */
export async function writeSandboxFile(rootfs: string, p: string, data: Buffer | string | Readable, mode = 0o644): Promise<number> {
  const norm = checkContainerPath(p);
  const root = await fs.realpath(rootfs);
  const parts = path.relative(root, await resolveInRoot(root, norm)).split(path.sep).filter(Boolean);
  if (parts.length === 0) throw new JiffyError('invalid_argument', `${p} is the sandbox root: give a file path such as /tmp/file`);
  const parent = await ensureParents(root, parts.slice(0, -1));
  const target = path.join(parent, parts[parts.length - 1]);
  const tmp = path.join(parent, `.jiffy-upload-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
  const fh = await fs.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode).catch((e: NodeJS.ErrnoException) => {
    throw openError(e, p);
  });
  let ok = false;
  try {
    await checkInside(fh, root, p);
    await fh.chmod(mode);
    const bytes = await writeAll(fh, data);
    await fh.close();
    const st = await fs.lstat(target).catch(() => undefined);
    if (st?.isDirectory()) throw new JiffyError('invalid_argument', `${p} in the sandbox is a directory: give a file path`);
    // rename(2) replaces a symlink at `target` itself, never what it points to.
    await fs.rename(tmp, target);
    ok = true;
    return bytes;
  } finally {
    if (!ok) {
      await fh.close().catch(() => undefined);
      await fs.rm(tmp, { force: true });
    }
  }
}

async function writeAll(fh: FileHandle, data: Buffer | string | Readable): Promise<number> {
  if (typeof data === 'string' || Buffer.isBuffer(data)) {
    const buf = Buffer.from(data);
    await fh.write(buf, 0, buf.length, 0);
    return buf.length;
  }
  // Plain writes, not fh.createWriteStream: a stream keeps a ref that makes fh.close() wait forever.
  let bytes = 0;
  for await (const chunk of data) {
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    await fh.write(c, 0, c.length, bytes);
    bytes += c.length;
  }
  return bytes;
}

/** Create the (already resolved) directories `rel` under `root`, refusing a non-directory on the way. */
async function ensureParents(root: string, rel: string[]): Promise<string> {
  let cur = root;
  for (const [i, part] of rel.entries()) {
    cur = path.join(cur, part);
    const st = await fs.lstat(cur).catch(() => undefined);
    if (!st) await fs.mkdir(cur, { mode: 0o755 }).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'EEXIST') throw e; });
    else if (!st.isDirectory()) {
      throw new JiffyError('invalid_argument', `/${rel.slice(0, i + 1).join('/')} in the sandbox is not a directory: cannot create a file below it`);
    }
  }
  const real = await fs.realpath(cur);
  if (real !== root && !real.startsWith(root + path.sep)) {
    throw new JiffyError('permission_denied', `/${rel.join('/')} resolves outside the sandbox (a symlink was swapped in): refusing`);
  }
  return real;
}

/** The opened file must still be inside the sandbox root (see the header). */
async function checkInside(fh: FileHandle, root: string, p: string): Promise<void> {
  const real = await fs.readlink(`/proc/self/fd/${fh.fd}`);
  if (!real.startsWith(root + path.sep)) {
    throw new JiffyError('permission_denied', `${p} resolves outside the sandbox: refusing`);
  }
}

function openError(e: NodeJS.ErrnoException, p: string): JiffyError {
  if (e.code === 'ENOENT') return new JiffyError('not_found', `${p} does not exist in the sandbox`, { cause: e });
  if (e.code === 'ELOOP') return new JiffyError('permission_denied', `${p} is a symlink that changed while it was opened: refusing`, { cause: e });
  if (e.code === 'EISDIR') return new JiffyError('invalid_argument', `${p} in the sandbox is a directory: give a file path`, { cause: e });
  if (e.code === 'ENOTDIR') return new JiffyError('invalid_argument', `a parent of ${p} in the sandbox is not a directory`, { cause: e });
  return new JiffyError('internal', `opening ${p} in the sandbox failed: ${e.message}`, { cause: e });
}
