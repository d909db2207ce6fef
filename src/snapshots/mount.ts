/**
 * Overlay mount and unmount, and reading the host mount table. Mounts go through the launcher's
 * one-shot `jiffy-launch mount-overlay` when it is built (one exec, mount(2) directly), else through
 * util-linux mount(8). Both run with cwd = the store root so lowerdirs can be the store's short
 * relative `l/<id>` links: the option string must fit in one page (4096 bytes), and short relative
 * paths are what let images with many layers (≥ 60) mount at all.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { JiffyError } from '../errors.js';
import { mountOverlay as launcherMount, umount as launcherUmount, type OverlayMountOptions } from '../launcher/oneshot.js';
import { launcherBinary } from '../paths.js';

const run = promisify(execFile);

/** One overlay mount: lower layers top first; no upper means a read-only mount; cwd = the store root. */
export type OverlayMountSpec = OverlayMountOptions;

/** The launcher binary when it supports mount-overlay (JIFFY_MOUNT_HELPER=mount forces mount(8)). */
function launcherMountHelper(): string | undefined {
  if (process.env.JIFFY_MOUNT_HELPER === 'mount') return undefined;
  const bin = launcherBinary();
  return existsSync(bin) ? bin : undefined;
}

/** Mount an overlay at `spec.target`; the error names the target and the lowerdir count. */
export async function mountOverlay(spec: OverlayMountSpec): Promise<void> {
  if (spec.lower.length === 0) throw new JiffyError('invalid_argument', `overlay at ${spec.target} needs at least one lower layer`);
  const opts = overlayOptions(spec);
  if (opts.length > 4000) {
    throw new JiffyError('invalid_argument', `overlay options for ${spec.target} are ${opts.length} bytes (> one page): use short lowerPaths relative to the store root`);
  }
  const helper = launcherMountHelper();
  const writable = Boolean(spec.upper && spec.work && !spec.readonly);
  try {
    if (helper) await launcherMount({ ...spec, readonly: !writable, ...(writable ? {} : { upper: undefined, work: undefined }) }, helper);
    else await run('mount', ['-t', 'overlay', 'overlay', '-o', opts, spec.target], { cwd: spec.cwd });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new JiffyError('internal', `mounting overlay (${spec.lower.length} layers) at ${spec.target} failed: ${(err.stderr || err.message).trim()}; check that overlayfs is available (modprobe overlay)`, { cause: e });
  }
}

/** The mount(8) option string: lowerdir top first, then upper and work when writable. */
export function overlayOptions(spec: OverlayMountSpec): string {
  const parts = [`lowerdir=${spec.lower.join(':')}`];
  if (spec.upper && spec.work && !spec.readonly) parts.push(`upperdir=${spec.upper}`, `workdir=${spec.work}`);
  else parts.push('ro');
  return parts.join(',');
}

/** Unmount `target` (lazily with detach); a target that is not mounted is not an error. */
export async function umount(target: string, opts: { detach?: boolean } = {}): Promise<void> {
  if (!(await isMountPoint(target))) return;
  const helper = launcherMountHelper();
  try {
    if (helper) await launcherUmount(target, opts, helper);
    else await run('umount', opts.detach ? ['-l', target] : [target]);
  } catch (e) {
    if (!(await isMountPoint(target))) return;
    const err = e as { stderr?: string; message: string };
    throw new JiffyError('unavailable', `unmounting ${target} failed: ${(err.stderr || err.message).trim()}; a process may still use it (stop the container, then retry)`, { cause: e });
  }
}

/** Mount points from /proc/self/mountinfo (field 5, octal escapes decoded). */
export async function mountPoints(): Promise<string[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').filter(Boolean).map((line) => decodeMountPath(line.split(' ')[4]));
}

function decodeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below `dir` (used for cleanup and by the leak tests). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const base = path.resolve(dir);
  return (await mountPoints()).filter((m) => m === base || m.startsWith(base + path.sep));
}

/** True when `target` is a mount point right now. */
export async function isMountPoint(target: string): Promise<boolean> {
  const t = path.resolve(target);
  return (await mountPoints()).includes(t);
}
