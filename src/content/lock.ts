import fs from 'node:fs/promises';
import { constants as C } from 'node:fs';
import { JiffyError } from '../errors.js';

/**
 * Inter-process mutual exclusion with a lock file. Node has no flock(2), so the lock is a file
 * created with O_CREAT|O_EXCL holding the owner's pid; a lock whose owner is dead is stale and
 * is broken (rename-then-unlink, so two processes cannot both break and then both take it).
 */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  await acquire(lockPath, timeoutMs);
  try {
    return await fn();
  } finally {
    await fs.rm(lockPath, { force: true });
  }
}

async function acquire(lockPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    try {
      const fh = await fs.open(lockPath, C.O_CREAT | C.O_EXCL | C.O_WRONLY, 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (await breakIfStale(lockPath)) continue;
    if (Date.now() > deadline) {
      throw new JiffyError('unavailable', `timed out waiting for lock ${lockPath}; if no other jiffy process is running, delete that file`);
    }
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 50);
  }
}

/** Removes the lock when its owner process is gone; true if it did. */
async function breakIfStale(lockPath: string): Promise<boolean> {
  let text: string;
  try {
    text = await fs.readFile(lockPath, 'utf8');
  } catch {
    return true; // vanished meanwhile: retry at once
  }
  const pid = Number.parseInt(text, 10);
  // An empty file means the owner is between open and write; give it time unless it stays so.
  if (!Number.isFinite(pid)) {
    const st = await fs.stat(lockPath).catch(() => null);
    if (!st || Date.now() - st.mtimeMs < 5000) return false;
  } else if (pidAlive(pid)) {
    return false;
  }
  const aside = `${lockPath}.stale.${process.pid}.${Date.now()}`;
  try {
    await fs.rename(lockPath, aside);
  } catch {
    return true;
  }
  const again = await fs.readFile(aside, 'utf8').catch(() => '');
  if (again !== text) {
    // We moved a fresh lock someone else had just taken: put it back if the slot is still free.
    await fs.link(aside, lockPath).catch(() => {});
  }
  await fs.rm(aside, { force: true });
  return true;
}

/** True when process `pid` exists (EPERM means it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
