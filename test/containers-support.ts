/**
 * Fixtures for the containers and snapshots tests: a temp JIFFY_ROOT with busybox:latest (H4's
 * runtime image), a ContainerManager on it, and a cleanup that removes every container and then
 * asserts that nothing of ours stays mounted or in a cgroup.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureRuntimeImage } from '../src/build/runtime-images.js';
import { cgroupsMatching } from '../src/containers/cgroup.js';
import { ContainerManager } from '../src/containers/manager.js';
import { ImageStore } from '../src/images/store.js';
import { mountsUnder } from '../src/snapshots/mount.js';

export interface Fixture {
  root: string;
  store: ImageStore;
  mgr: ContainerManager;
  cleanup(): Promise<void>;
}

/** A fresh store with busybox:latest and a manager (warm mounts off unless asked). */
export async function fixture(prefix: string, opts: { warm?: boolean } = {}): Promise<Fixture> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), `jiffy-${prefix}-`));
  const store = await ImageStore.open(root);
  await ensureRuntimeImage(store, 'busybox');
  const mgr = new ContainerManager({ store, warm: opts.warm ? { perImage: 1 } : false });
  return {
    root, store, mgr,
    cleanup: async () => {
      const ids = (await mgr.records.list()).map((r) => r.id);
      for (const id of ids) await mgr.remove(id, { force: true }).catch(() => undefined);
      await mgr.close();
      const leftMounts = await mountsUnder(root);
      const leftCgroups = (await Promise.all(ids.map((id) => cgroupsMatching(id)))).flat();
      for (const m of leftMounts.reverse()) await import('../src/snapshots/mount.js').then((x) => x.umount(m, { detach: true }));
      await fs.rm(root, { recursive: true, force: true });
      assert.deepEqual(leftMounts, [], 'no mounts left under the test root');
      assert.deepEqual(leftCgroups, [], 'no cgroups left for the test containers');
    },
  };
}

/** Collect a container's output while it runs in this process. */
export function collector(): { onOutput: (s: string, c: Buffer) => void; text: () => string } {
  const chunks: Buffer[] = [];
  return { onOutput: (_s, c) => chunks.push(c), text: () => Buffer.concat(chunks).toString() };
}

/** Poll `fn` until it returns a truthy value (bounded by the test timeout, not a timing assertion). */
export async function until<T>(fn: () => Promise<T | undefined | false>, what: string, limitMs = 20_000): Promise<T> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
