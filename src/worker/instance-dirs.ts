import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Per-instance directories of function containers: `<root>/fn-instances/<id>/` (upper, work, and
 * for the CLI spawner the bundle and rootfs mountpoint). Kept apart from containers/ (owned by
 * `jiffy run` containers) so cleanup here can never touch those. Each records its owning worker
 * process (pid + start time) so a later worker can tell a dead worker's leftovers from a live one's.
 */
export function instancesDir(storeRoot: string): string {
  return path.join(storeRoot, 'fn-instances');
}

/** Start time of a live pid (field 22 of /proc/<pid>/stat): tells a reused pid from ours. */
export async function startTime(pid: number): Promise<string | undefined> {
  if (!pid) return undefined;
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat ? stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] : undefined;
}

/** Creates an instance dir owned by this process. */
export async function makeInstanceDir(dir: string, subdirs: string[]): Promise<void> {
  for (const d of subdirs) await fs.mkdir(path.join(dir, d), { recursive: true });
  await fs.writeFile(path.join(dir, 'owner'), `${process.pid} ${await startTime(process.pid)}`);
}

/** Instance dirs whose owning worker process is gone. */
export async function staleInstanceDirs(storeRoot: string): Promise<string[]> {
  const root = instancesDir(storeRoot);
  const out: string[] = [];
  for (const id of await fs.readdir(root).catch(() => [] as string[])) {
    const dir = path.join(root, id);
    const [owner, start] = (await fs.readFile(path.join(dir, 'owner'), 'utf8').catch(() => '')).split(' ');
    if (owner && start && (await startTime(Number(owner))) === start) continue;
    out.push(dir);
  }
  return out;
}
