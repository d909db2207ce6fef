/**
 * Fixtures for the sandbox tests: a temp JIFFY_ROOT with busybox:latest, a ContainerManager and a
 * SandboxManager on it, and a cleanup that removes every sandbox and container and then asserts
 * that nothing of ours stays mounted or in a cgroup. Every suite runs in both boot modes:
 * `runtime-cli` (no launcher: the OCI runtime CLI, as the CLI uses it) and `launcher` (a fork
 * server Launcher started for the fixture, as `jiffy sandbox serve` uses it).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureRuntimeImage } from '../src/build/runtime-images.js';
import { cgroupsMatching } from '../src/containers/cgroup.js';
import { ContainerManager } from '../src/containers/manager.js';
import { Launcher } from '../src/launcher/index.js';
import { ImageStore } from '../src/images/store.js';
import { createLogger } from '../src/log.js';
import { SandboxManager, type SandboxManagerOptions } from '../src/sandboxes/manager.js';
import { collect } from '../src/sandboxes/exec.js';
import { mountsUnder, umount } from '../src/snapshots/mount.js';

/** How sandboxes boot: OCI runtime CLI (no launcher) or the launcher's fork server. */
export type SandboxMode = 'runtime-cli' | 'launcher';
export const SANDBOX_MODES: SandboxMode[] = ['runtime-cli', 'launcher'];

export interface SandboxFixture {
  root: string;
  mode: SandboxMode;
  launcher?: Launcher;
  /** The options the fixture's manager got (launcher, log): for further managers in a test. */
  managerOptions: Pick<SandboxManagerOptions, 'containers' | 'store' | 'launcher' | 'log'>;
  store: ImageStore;
  containers: ContainerManager;
  sm: SandboxManager;
  /** Run `cmd` in sandbox `id`; output as strings. */
  run(id: string, cmd: string[] | string, o?: { stdin?: string; env?: string[]; cwd?: string }): Promise<{ out: string; err: string; code: number }>;
  cleanup(): Promise<void>;
}

/** A fresh store with busybox and a SandboxManager (extra manager options allowed). */
export async function sandboxFixture(prefix: string, mode: SandboxMode = 'runtime-cli', opts: Partial<SandboxManagerOptions> = {}): Promise<SandboxFixture> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), `jiffy-sb-${prefix}-`));
  const store = await ImageStore.open(root);
  await ensureRuntimeImage(store, 'busybox');
  const log = createLogger('test-sandboxes', 'warn');
  const containers = new ContainerManager({ store, log, warm: { perImage: 1 } });
  const launcher = mode === 'launcher' ? await Launcher.start({ logger: log }) : undefined;
  const managerOptions = { containers, store, log, launcher };
  const sm = new SandboxManager({ ...managerOptions, reapIntervalMs: 0, ...opts });
  const run = async (id: string, cmd: string[] | string, o: { stdin?: string; env?: string[]; cwd?: string } = {}) => {
    const x = await sm.exec(id, { cmd: typeof cmd === 'string' ? ['/bin/sh', '-c', cmd] : cmd, ...o });
    const [out, err, r] = await Promise.all([collect(x.stdout), collect(x.stderr), x.done]);
    return { out: out.toString(), err: err.toString(), code: r.exitCode };
  };
  return {
    root, mode, launcher, managerOptions, store, containers, sm, run,
    cleanup: async () => {
      for (const s of await sm.records.list()) await sm.remove(s.id).catch(() => undefined);
      await sm.close();
      const ids = (await containers.records.list()).map((r) => r.id);
      for (const id of ids) await containers.remove(id, { force: true }).catch(() => undefined);
      await launcher?.close();
      await containers.close();
      const leftMounts = await mountsUnder(root);
      const leftCgroups = (await Promise.all(ids.map((id) => cgroupsMatching(id)))).flat();
      for (const m of leftMounts.reverse()) await umount(m, { detach: true }).catch(() => undefined);
      await fs.rm(root, { recursive: true, force: true });
      assert.deepEqual(leftMounts, [], 'no mounts left under the test root');
      assert.deepEqual(leftCgroups, [], 'no cgroups left for the test sandboxes');
    },
  };
}

/** Poll `fn` until truthy (bounded by a generous limit, not a timing assertion). */
export async function until<T>(fn: () => Promise<T | undefined | false>, what: string, limitMs = 20_000): Promise<T> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Disk usage of a directory tree in bytes (`du -sb`-like: allocated blocks × 512). */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = await fs.lstat(p);
      total += st.blocks * 512;
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return total;
}
