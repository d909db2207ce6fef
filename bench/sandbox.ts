/**
 * `npm run bench:sandbox`: sandbox latencies on a temp store (busybox image), in-process library
 * calls (the gateway adds one HTTP hop on loopback), in both boot modes side by side:
 * `runtime-cli` (no launcher: `jiffy-launch run` + jiffy-exec, what the CLI uses) and `launcher`
 * (the fork server: what `jiffy sandbox serve` and `jiffy up` use).
 *   create_to_first_output: create() + exec(['echo']) until the first stdout byte (e2b: ~150–200 ms)
 *     create_only / exec_first_byte / exec_total: the same split in its parts
 *     container_create / container_run: ContainerManager create alone / create + runtime boot
 *     launcher_boot / launcher_exec_first_byte: the launcher's boot / exec requests alone
 *   pooled_*: the same with a ready sandbox in the pool (SandboxManager pool option)
 *   snapshot_10mb: snapshot() of a sandbox whose rootfs gained a 10 MB file
 *   fork_1 / fork_16: create({from: snapshot, count}) until every fork runs
 * Flags: --n N (create samples, default 40), --m N (snapshot/fork samples, default 8), --json.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { intFlag, msSince, percentiles, printResults, wantsJson, type Percentiles } from './lib/stats.js';
import { ensureRuntimeImage } from '../src/build/runtime-images.js';
import { ContainerManager } from '../src/containers/manager.js';
import { Launcher, type OciRuntimeSpec } from '../src/launcher/index.js';
import { ImageStore } from '../src/images/store.js';
import { createLogger } from '../src/log.js';
import { collect } from '../src/sandboxes/exec.js';
import { SandboxManager } from '../src/sandboxes/manager.js';
import { mountsUnder, umount } from '../src/snapshots/mount.js';

type Samples = Record<string, number[]>;

async function createToFirstOutput(sm: SandboxManager, n: number, s: Samples): Promise<void> {
  for (let i = 0; i < n + 3; i++) {
    const t0 = process.hrtime.bigint();
    const [sb] = await sm.create({ ttlS: 60 });
    const created = msSince(t0);
    const x = await sm.exec(sb.id, { cmd: ['echo', 'ready'] });
    const first = await new Promise<number>((resolve) => x.stdout.once('data', () => resolve(msSince(t0))));
    await Promise.all([collect(x.stdout), x.done]);
    const total = msSince(t0);
    if (i >= 3) { // the first runs warm caches (image config, page cache)
      s.create_to_first_output.push(first);
      s.create_only.push(created);
      s.exec_first_byte.push(first - created);
      s.exec_total.push(total - created);
    }
    await sm.remove(sb.id);
  }
}

/** The same with a pool: each sample takes a ready sandbox (the pool is refilled between samples, untimed). */
async function pooledFirstOutput(sm: SandboxManager, n: number, s: Samples): Promise<void> {
  for (let i = 0; i < n; i++) {
    await sm.warm({});
    const t0 = process.hrtime.bigint();
    const [sb] = await sm.create({ ttlS: 60 });
    const created = msSince(t0);
    const x = await sm.exec(sb.id, { cmd: ['echo', 'ready'] });
    s.pooled_create_to_first_output.push(await new Promise<number>((resolve) => x.stdout.once('data', () => resolve(msSince(t0)))));
    s.pooled_create_only.push(created);
    await Promise.all([collect(x.stdout), x.done]);
    await sm.remove(sb.id);
  }
}

async function containerRun(containers: ContainerManager, n: number, s: Samples): Promise<void> {
  const image = (await containers.store.resolve('busybox:latest')).id;
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const rec = await containers.create({ image, entrypoint: ['/bin/sh'], cmd: ['-c', 'sleep 1000'], network: 'none', memoryBytes: 512 << 20, pidsLimit: 1024 });
    s.container_create.push(msSince(t0));
    await containers.remove(rec.id, { force: true });
  }
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const r = await containers.run({ image, entrypoint: ['/bin/sh'], cmd: ['-c', 'sleep 1000'], network: 'none', memoryBytes: 512 << 20, pidsLimit: 1024, stdio: ['ignore', 'ignore', 'ignore'] });
    s.container_run.push(msSince(t0));
    await containers.remove(r.id, { force: true });
  }
}

/** The launcher alone, on a sandbox's config.json: one boot request, one exec request. */
async function launcherRaw(containers: ContainerManager, launcher: Launcher, n: number, s: Samples): Promise<void> {
  const image = (await containers.store.resolve('busybox:latest')).id;
  const rec = await containers.create({ image, entrypoint: ['/bin/sh'], cmd: ['-c', 'sleep 1000'], network: 'none', memoryBytes: 512 << 20, pidsLimit: 1024 });
  const config = JSON.parse(await fs.readFile(path.join(rec.bundle!, 'config.json'), 'utf8')) as OciRuntimeSpec;
  try {
    for (let i = 0; i < n; i++) {
      const id = `benchraw${i}x${process.pid}`;
      const t0 = process.hrtime.bigint();
      const h = await launcher.boot({ id, config, stdin: 'null', stdout: 'null', stderr: 'null' });
      s.launcher_boot.push(msSince(t0));
      const t1 = process.hrtime.bigint();
      const x = await launcher.exec(id, { ...config.process, args: ['echo', 'ready'] }, { stdin: 'null' });
      await new Promise<void>((resolve) => x.stdout!.once('data', () => resolve()));
      s.launcher_exec_first_byte.push(msSince(t1));
      x.stdout!.resume();
      await x.wait();
      await h.kill('SIGKILL');
      await h.wait();
    }
  } finally {
    await containers.remove(rec.id, { force: true });
  }
}

async function snapshotAndFork(sm: SandboxManager, m: number, s: Samples): Promise<void> {
  let lastRef = '';
  for (let i = 0; i < m; i++) {
    const [sb] = await sm.create({ ttlS: 120 });
    const x = await sm.exec(sb.id, { cmd: ['sh', '-c', 'mkdir -p /data && head -c 10485760 /dev/urandom > /data/blob'] });
    await x.done;
    const t0 = process.hrtime.bigint();
    lastRef = (await sm.snapshot(sb.id, { message: 'bench' })).ref;
    s.snapshot_10mb.push(msSince(t0));
    await sm.remove(sb.id);
  }
  for (const count of [1, 16]) {
    for (let i = 0; i < m; i++) {
      const t0 = process.hrtime.bigint();
      const forks = await sm.create({ from: lastRef, count, ttlS: 120 });
      s[`fork_${count}`].push(msSince(t0));
      for (const f of forks) await sm.remove(f.id);
    }
  }
}

type Mode = 'runtime-cli' | 'launcher';

async function runMode(mode: Mode, containers: ContainerManager, launcher: Launcher, n: number, m: number): Promise<Record<string, Percentiles>> {
  const store = containers.store;
  const log = createLogger('bench-sandbox', 'warn');
  const base = { containers, store, log, reapIntervalMs: 0, ...(mode === 'launcher' ? { launcher } : {}) };
  const sm = new SandboxManager(base);
  const pooled = new SandboxManager({ ...base, pool: { size: 1 } });
  const s: Samples = {
    create_to_first_output: [], create_only: [], exec_first_byte: [], exec_total: [],
    pooled_create_to_first_output: [], pooled_create_only: [], snapshot_10mb: [], fork_1: [], fork_16: [],
    ...(mode === 'launcher' ? { launcher_boot: [], launcher_exec_first_byte: [] } : { container_create: [], container_run: [] }),
  };
  try {
    await createToFirstOutput(sm, n, s);
    await pooledFirstOutput(pooled, n, s);
    if (mode === 'launcher') await launcherRaw(containers, launcher, Math.min(n, 20), s);
    else await containerRun(containers, Math.min(n, 20), s);
    await snapshotAndFork(sm, m, s);
  } finally {
    for (const sb of await sm.records.list()) await sm.remove(sb.id).catch(() => undefined);
    await pooled.close();
    await sm.close();
  }
  const results: Record<string, Percentiles> = {};
  for (const [k, v] of Object.entries(s)) results[k] = percentiles(v);
  return results;
}

async function main(): Promise<void> {
  const n = intFlag('n', 40);
  const m = intFlag('m', 8);
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-bench-sandbox-'));
  const log = createLogger('bench-sandbox', 'warn');
  const store = await ImageStore.open(root);
  await ensureRuntimeImage(store, 'busybox');
  const containers = new ContainerManager({ store, log, warm: { perImage: 2 } });
  const launcher = await Launcher.start({ logger: log });
  const all: Record<Mode, Record<string, Percentiles>> = { 'runtime-cli': {}, launcher: {} };
  try {
    for (const mode of ['runtime-cli', 'launcher'] as const) all[mode] = await runMode(mode, containers, launcher, n, m);
  } finally {
    await launcher.close();
    await containers.close();
    for (const mnt of (await mountsUnder(root)).reverse()) await umount(mnt, { detach: true }).catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  }
  const title = `(busybox, ${os.cpus().length} cores; target create→first output ≤ 10 ms p50, e2b ~150–200 ms)`;
  printResults(all['runtime-cli'], {
    title: `Sandboxes, CLI mode: OCI runtime CLI boot + jiffy-exec ${title}`,
    notes: ['create_only = container create (warm overlay mount from the pool, records, lease, config.json; container_create alone) + `jiffy-launch run` until the init pid is known + sandbox record; exec_first_byte = node spawns sh, cgroup join, jiffy-exec setns, exec of echo.'],
  });
  printResults(all.launcher, {
    title: `Sandboxes, launcher mode (jiffy sandbox serve, jiffy up): fork-server boot + exec ${title}`,
    notes: [
      'create_only = the same container create + one launcher boot request (launcher_boot alone) + running/sandbox records; exec_first_byte = record lookups + one launcher exec request (launcher_exec_first_byte alone).',
      'pooled_* = a booted sandbox was ready in the pool (steady state of a server with --pool N); the pool refills in the background.',
    ],
  });
  if (wantsJson()) console.log(JSON.stringify(all));
}

await main();
