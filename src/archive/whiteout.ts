import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Stats } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from '../paths.js';
import { JiffyError } from '../errors.js';

/**
 * Whiteouts, both ways. In an OCI layer tar a deleted file NAME is an empty entry `.wh.NAME`, and a
 * directory whose lower contents are hidden holds `.wh..wh..opq`. Overlayfs wants a char device
 * 0/0 named NAME, and the xattr `trusted.overlay.opaque=y` on the directory. Node cannot mknod or
 * setxattr, so the conversion is done by native/build/jiffy-fsutil, once per layer.
 */
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
export const OPAQUE_XATTR = 'trusted.overlay.opaque';

const run = promisify(execFile);

/** The helper binary (JIFFY_FSUTIL overrides). */
export function fsutilBinary(): string {
  return process.env.JIFFY_FSUTIL || path.join(repoRoot(), 'native', 'build', 'jiffy-fsutil');
}

/** True for an overlay whiteout: a character device with device number 0/0. */
export function isOverlayWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

async function fsutil(args: string[]): Promise<string> {
  const bin = fsutilBinary();
  try {
    await access(bin);
  } catch {
    throw new JiffyError('failed_precondition', `${bin} is missing; build it with \`make -C native\` (needs gcc)`);
  }
  try {
    const { stdout } = await run(bin, args, { maxBuffer: 256 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const msg = ((e as { stderr?: string }).stderr ?? '').trim() || (e as Error).message;
    throw new JiffyError('internal', `jiffy-fsutil ${args[0]} failed: ${msg}`, { cause: e });
  }
}

/** Runs `cmd` over `paths` in as few processes as the argument-size limit allows. */
async function batched(cmd: string, paths: string[]): Promise<void> {
  let batch: string[] = [];
  let bytes = 0;
  for (const p of paths) {
    if (bytes + p.length > 96 * 1024 && batch.length) {
      await fsutil([cmd, ...batch]);
      batch = [];
      bytes = 0;
    }
    batch.push(p);
    bytes += p.length + 1;
  }
  if (batch.length) await fsutil([cmd, ...batch]);
}

/** Creates overlay whiteouts (char 0/0) at the given absolute paths. */
export async function makeWhiteouts(paths: string[]): Promise<void> {
  await batched('whiteout', paths);
}

/** Marks the given absolute directory paths opaque for overlayfs. */
export async function makeOpaque(dirs: string[]): Promise<void> {
  await batched('opaque', dirs);
}

/** Overlay whiteouts and opaque dirs in a tree (e.g. a container's upper dir), as relative paths. */
export async function scanOverlay(dir: string): Promise<{ whiteouts: string[]; opaque: string[] }> {
  const out = await fsutil(['scan', '-z', dir]);
  const res = { whiteouts: [] as string[], opaque: [] as string[] };
  for (const rec of out.split('\0')) {
    if (rec.startsWith('whiteout ')) res.whiteouts.push(rec.slice(9));
    else if (rec.startsWith('opaque ')) res.opaque.push(rec.slice(7));
  }
  return res;
}
