/**
 * Helpers for the launcher's own tests: a throwaway busybox rootfs, unique ids, and leak probes
 * that look only at this test's resources (cgroups and mounts whose names carry its ids/paths).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeBusyboxRootfs } from '../../test/support/bundle.js';

/** A temp dir with a busybox rootfs at `<dir>/rootfs`. */
export async function tempRootfs(prefix: string): Promise<{ dir: string; rootfs: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
  const rootfs = path.join(dir, 'rootfs');
  await makeBusyboxRootfs(rootfs);
  return { dir, rootfs };
}

/** A container id unique to this run, carrying `tag` so leak checks can find it. */
export function uniqueId(tag: string): string {
  return `h1t-${tag}-${randomBytes(4).toString('hex')}`;
}

const CG = '/sys/fs/cgroup';

/** cgroup directories (any hierarchy) named after something containing `needle`. */
export function cgroupsMatching(needle: string): string[] {
  const parents = [path.join(CG, 'jiffy'), ...readdirSync(CG).map((h) => path.join(CG, h, 'jiffy'))];
  const found: string[] = [];
  for (const p of parents) {
    if (!existsSync(p)) continue;
    for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory() && e.name.includes(needle)) found.push(path.join(p, e.name));
  }
  return found;
}

/** Mount points in the host mount namespace under `prefix`. */
export function mountsUnder(prefix: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m && m.startsWith(prefix));
}

/** The freezer state file of a container's cgroup ("FROZEN"/"THAWED" on v1, "frozen 0|1" on v2). */
export function freezerState(id: string): string {
  const v1 = path.join(CG, 'freezer', 'jiffy', id, 'freezer.state');
  if (existsSync(v1)) return readFileSync(v1, 'utf8').trim();
  const ev = readFileSync(path.join(CG, 'jiffy', id, 'cgroup.events'), 'utf8');
  return /frozen 1/.test(ev) ? 'FROZEN' : 'THAWED';
}

export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** Poll `f` until it returns true (hang guard, not a timing assertion). */
export async function eventually(f: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (f()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`never happened: ${what}`);
}
